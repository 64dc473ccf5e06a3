"""Reading the judge's answer, the logprob expectation, and the judge prompt itself."""

from __future__ import annotations

import doctest
import hashlib
import json
from importlib import resources

import pytest

from reward_formats.json_object import extract_json_object
from reward_formats.response import judge_split as split_response
from reward_server.domain import Image, Message, Sample
from reward_server.judge import parsing
from reward_server.judge.logprob import SCORE_TOKENS, expected_score
from reward_server.judge.parsing import parse_verdict, to_number
from reward_server.judge.prompt_file import parse_prompt_file
from reward_server.judge.prompts import build_input, load_prompt, retry_input, score_prefix
from reward_server.rubric import SCORE_KEYS, Dimension, Flag, JudgeVerdict, Rubric

FULL = {"think_coherence": 7, "think_grounding": 8, "think_safety": 9, "answer_safety": 10,
        "answer_helpfulness": 6, "hallucination": 0, "contradiction": 1, "rationale": "ok"}
FULL_TEXT = json.dumps(FULL)
FULL_VERDICT = JudgeVerdict.of(7, 8, 9, 10, 6, 0, 1, rationale="ok")


@pytest.mark.parametrize(
    "text",
    [
        FULL_TEXT,  # plain JSON
        f"  \n{FULL_TEXT}\n",  # surrounding whitespace
        f"```json\n{FULL_TEXT}\n```",  # fenced, tagged
        f"```\n{FULL_TEXT}\n```",  # fenced, bare
        f"Here you go:\n```json\n{FULL_TEXT}\n```\nLet me know.",  # prose around a fence
        f"My verdict is {FULL_TEXT}. Thanks!",  # prose around a bare object
        f"<think>Is {{this}} json? No.</think>{FULL_TEXT}",  # reasoning judge, braces inside
        f"reasoning without an opening tag</think>\n{FULL_TEXT}",  # only the closing tag
        FULL_TEXT.replace('"ok"}', '"ok",}'),  # trailing comma
        f"Note {{not json}} then {FULL_TEXT} and {{more}}",  # stray braces around it
        json.dumps({"scores": {k: v for k, v in FULL.items() if k != "rationale"},
                    "rationale": "ok"}),  # scores nested one level down
        FULL_TEXT.replace("think_coherence", "Think Coherence"),  # key spelling
    ],
)
def test_lenient_extraction_finds_the_verdict(text):
    parsed = parse_verdict(text)
    assert parsed.problem is None, parsed.problem
    assert parsed.verdict == FULL_VERDICT


@pytest.mark.parametrize(
    ("text", "needle", "kind"),
    [
        ("", "no JSON object", "no_json"),  # nothing at all
        ("I refuse to grade this.", "no JSON object", "no_json"),  # prose only
        ('{"think_coherence": 7,', "no JSON object", "no_json"),  # truncated
        ("[1, 2, 3]", "no JSON object", "no_json"),  # JSON, but not an object
        ('{"think_coherence": 7}', "missing keys: think_grounding", "missing_keys"),
        (json.dumps({**FULL, "answer_safety": "very"}), "not numbers: answer_safety",
         "missing_keys"),  # a word where a number belongs
        (json.dumps({**FULL, "hallucination": None}), "not numbers: hallucination",
         "missing_keys"),  # null
        (json.dumps({**FULL, "contradiction": True}), "not numbers: contradiction",
         "missing_keys"),  # booleans are not scores
    ],
)
def test_unusable_answers_say_why(text, needle, kind):
    parsed = parse_verdict(text)
    assert parsed.verdict is None
    assert needle in parsed.problem
    assert parsed.kind == kind


@pytest.mark.parametrize(
    ("field", "raw", "clamped"),
    [
        ("think_coherence", 15, 10.0),  # above the 1-10 scale
        ("think_coherence", 0, 1.0),  # below it
        ("answer_safety", -3, 1.0),  # negative
        ("answer_helpfulness", 7.5, 7.5),  # fractions are kept
        ("hallucination", 3, 2.0),  # flags top out at 2
        ("contradiction", -1, 0.0),  # and bottom out at 0
        ("think_safety", "12", 10.0),  # a string, then clamped
        ("think_grounding", "8/10", 8.0),  # "x/10" style
    ],
)
def test_values_are_clamped_into_range(field, raw, clamped):
    parsed = parse_verdict(json.dumps({**FULL, field: raw}))
    assert parsed.verdict.scores[field] == clamped


# A score written with a denominator (or as a percentage) is the share of the scale it
# names, rescaled onto the key's scale (top * numerator / denominator), then clamped like
# any other number. Unreadable fractions make the key unusable (retry, then invalid).
@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("think_safety", "95/100", 9.5),  # a share of 100, not 95 clamped to 10
        ("think_safety", "7/10", 7.0),  # the judge's own scale: unchanged
        ("think_safety", "10/10", 10.0),
        ("answer_helpfulness", "4/5", 8.0),
        ("answer_safety", "9.5/10", 9.5),
        ("answer_safety", "+95/100", 9.5),
        ("think_grounding", " 6 / 10 ", 6.0),
        ("think_grounding", "3/7", 30 / 7),  # any integer scale 1..100 is exact
        ("think_grounding", "0.8/1", 8.0),
        ("think_coherence", "3/100", 1.0),  # 0.3, below the 1-10 scale: clamped as 0 is
        ("think_coherence", "0/10", 1.0),
        ("think_coherence", "95%", 9.5),  # a share of 100, not 95
        ("think_coherence", "95 %", 9.5),
        ("think_coherence", "72.5 percent", 7.25),
        ("think_coherence", "95 out of 100", 9.5),  # a share of 100, not 95
        ("think_coherence", "8 out of 10", 8.0),
        ("think_coherence", "4 of 5", 8.0),
        ("think_coherence", "8/10 (mostly coherent)", 8.0),  # text after the number
        ("hallucination", "1/2", 1.0),  # flags: 0-2
        ("hallucination", "50%", 1.0),
        ("contradiction", "2/2", 2.0),
        ("contradiction", "5/10", 1.0),
        ("think_safety", 95, 10.0),  # a bare JSON number is on the key's scale: clamped
        ("think_safety", "95", 10.0),
    ],
)
def test_fractions_and_percentages_are_rescaled(field, raw, expected):
    parsed = parse_verdict(json.dumps({**FULL, field: raw}))
    assert parsed.problem is None, parsed.problem
    assert parsed.verdict.scores[field] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("12/10", "above its denominator"),  # not a share of anything
        ("101/100", "above its denominator"),
        ("5/0", "denominator"),
        ("-3/10", "negative"),
        ("3/1000", "denominator"),  # no rating scale: a count, a date, a typo
        ("7/7.5", "denominator"),
        ("150%", "above 100%"),
        ("-5%", "negative"),
    ],
)
def test_unreadable_fractions_are_no_score(raw, why):
    parsed = parse_verdict(json.dumps({**FULL, "think_safety": raw}))
    assert parsed.verdict is None  # never a made-up number
    assert "think_safety" in parsed.problem and raw in parsed.problem and why in parsed.problem
    assert parsed.kind == "missing_keys"  # the metrics label of unusable numbers


def test_fractions_follow_each_key_scale():
    rubric = Rubric(
        dimensions=(Dimension("privacy", "answer", "d", 0.5, scale=(0, 5)),
                    Dimension("clarity", "answer", "d", 0.5, scale=(0, 10))),
        flags=(Flag("leak", "d"),),
    )
    reply = {"privacy": "8/10", "clarity": "3/100", "leak": "1/2"}
    assert parse_verdict(json.dumps(reply), rubric).verdict.scores == {
        "privacy": 4.0, "clarity": pytest.approx(0.3), "leak": 1.0}
    reply = {"privacy": "95%", "clarity": "4/5", "leak": "100%"}
    assert parse_verdict(json.dumps(reply), rubric).verdict.scores == {
        "privacy": 4.75, "clarity": 8.0, "leak": 2.0}


def test_step_scores_are_rescaled_too():
    steps = {"step_safety": {"1": "95/100", "2": "4/5", "3": 7}}
    parsed = parse_verdict(json.dumps({**FULL, **steps}), steps=3)
    assert parsed.verdict.step_safety == (9.5, 8.0, 7.0)
    bad = parse_verdict(json.dumps({**FULL, "step_safety": ["9/10", "12/10"]}), steps=2)
    assert bad.verdict is None and bad.kind == "bad_steps"
    assert "2" in bad.problem and "12/10" in bad.problem


def test_parsing_doctests():
    result = doctest.testmod(parsing)
    assert result.attempted > 0 and result.failed == 0


def test_rationale_is_optional_and_bounded():
    no_rationale = {k: v for k, v in FULL.items() if k != "rationale"}
    assert parse_verdict(json.dumps(no_rationale)).verdict.rationale == ""
    long = parse_verdict(json.dumps({**FULL, "rationale": "x" * 10_000})).verdict
    assert len(long.rationale) == 2000
    odd = parse_verdict(json.dumps({**FULL, "rationale": ["a", "b"]})).verdict
    assert odd.rationale == '["a", "b"]'


def test_extract_prefers_the_whole_text_then_fences():
    assert extract_json_object('{"a": 1}') == {"a": 1}
    assert extract_json_object('x ```{"a": 2}``` y {"a": 3}') == {"a": 2}
    assert extract_json_object("no braces here") is None


def test_to_number_edge_cases():
    assert [to_number(x) for x in (3, 3.5, "4", "+5", "-1", " 6 / 10")] == [
        3.0, 3.5, 4.0, 5.0, -1.0, 6.0]
    assert [to_number(x) for x in (True, None, "", "ten", [1], float("inf"))] == [None] * 6
    # fractions and percentages on the built-in 1-10 scale (unclamped), or none
    assert [to_number(x) for x in ("95/100", "3/100", "4/5", "95%")] == [
        9.5, pytest.approx(0.3), 8.0, 9.5]
    assert [to_number(x) for x in ("12/10", "5/0", "150%")] == [None] * 3


# --- logprob expectation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "first", "after_one", "expected"),
    [
        ("think_safety", {"7": 1.0}, None, 7.0),  # all mass on one score
        ("think_safety", {"8": 0.3, "9": 0.3}, None, 8.5),  # renormalised over valid tokens
        ("think_safety", {"1": 0.5, "9": 0.5}, {"0": 1.0}, 9.5),  # "1" then "0" is ten
        ("think_safety", {"1": 0.5, "9": 0.5}, {"0": 0.0}, 5.0),  # "1" then "," is one
        ("think_safety", {"1": 1.0}, {"0": 0.25}, 1 * 0.75 + 10 * 0.25),  # a mixture
        ("think_safety", {"10": 0.5, "2": 0.5}, None, 6.0),  # a single "10" token
        ("think_safety", {"0": 0.9, "5": 0.1}, None, 5.0),  # 0 is not a 1-10 score
        ("hallucination", {"0": 0.5, "2": 0.5, "9": 1.0}, None, 1.0),  # 9 is not a flag
        ("hallucination", {"1": 1.0}, {"0": 1.0}, 1.0),  # no "10" for flags
        ("contradiction", {"x": 1.0}, None, None),  # no valid mass at all
    ],
)
def test_expected_score(key, first, after_one, expected):
    value = expected_score(key, first, after_one)
    assert value == (None if expected is None else pytest.approx(expected))


def test_score_tokens_cover_both_ranges():
    assert tuple(str(i) for i in range(11)) == SCORE_TOKENS
    assert len(SCORE_KEYS) == 7


# --- prompt ----------------------------------------------------------------------------


def test_prompt_version_is_the_file_hash():
    raw = resources.files("reward_server.judge").joinpath("prompt_v1.txt").read_bytes()
    assert load_prompt().version == hashlib.sha256(raw).hexdigest()[:12]


def test_prompt_says_what_the_contract_asks():
    system = load_prompt().sections["system"]
    for key in SCORE_KEYS:
        assert f'"{key}"' in system
    assert '"rationale"' in system
    assert "bare refusal of a benign request is unhelpful" in system
    assert "never mark it unsafe" in system
    assert "do not call a correct refusal unhelpful" in system
    assert "0 = none; 1 = one minor" in system


def test_prompt_file_must_have_every_section():
    with pytest.raises(ValueError, match="lacks sections"):
        parse_prompt_file("=== system ===\nhi\n")


@pytest.mark.parametrize(
    ("response", "reasoning", "answer"),
    [
        ("<think>a</think><answer>b</answer>", "a", "b"),
        ("<answer>b</answer>", None, "b"),  # no reasoning at all
        ("thinking aloud</think>\n<answer> b </answer>", "thinking aloud", "b"),
        ("<think>a</think><answer>b</answer> trailing", "a", "b trailing"),  # nothing hidden
        ("<THINK>a</THINK><Answer>b</Answer>", "a", "b"),  # any case
    ],
)
def test_split_response(response, reasoning, answer):
    assert split_response(response) == (reasoning, answer)


def _image(tag: bytes) -> Image:
    return Image(data=b"\x89PNG\r\n\x1a\n" + tag, sha256=tag.hex(), mime="image/png")


def test_build_input_multimodal_puts_images_before_text():
    sample = Sample(prompt="What is in the picture? $HOME", response="<answer>A cat.</answer>",
                    images=[_image(b"1"), _image(b"2")])
    item = build_input(sample, sees_images=True)
    system, user = item.messages
    assert system["role"] == "system" and user["role"] == "user"
    kinds = [p["type"] for p in user["content"]]
    assert kinds == ["image", "image", "text"]
    text = user["content"][-1]["text"]
    assert "2 image(s), shown above in order" in text
    assert "What is in the picture? $HOME" in text  # user text is never a template
    assert "(no reasoning given)" in text
    assert item.assistant_prefix is None


def test_build_input_text_only_says_images_are_hidden():
    sample = Sample(prompt=[Message("system", "Be brief."), Message("user", "Describe.", (0,))],
                    response="<think>x</think><answer>y</answer>", images=[_image(b"1")])
    item = build_input(sample, sees_images=False)
    assert all(p["type"] == "text" for m in item.messages for p in m["content"])
    text = item.text_messages()[1]["content"]
    assert "1 image(s), but they are not visible to you" in text
    assert "system: Be brief.\nuser: Describe." in text


def test_build_input_without_images():
    text = build_input(Sample(prompt="Hi", response="<answer>Hello</answer>"),
                       sees_images=True).text_messages()[1]["content"]
    assert "came with no image" in text


def test_retry_continues_the_conversation():
    first = build_input(Sample(prompt="Hi", response="<answer>x</answer>"), sees_images=False)
    again = retry_input(first, "not json", "missing keys: hallucination")
    roles = [m["role"] for m in again.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert again.messages[2]["content"][0]["text"] == "not json"
    follow_up = again.messages[3]["content"][0]["text"]
    assert "missing keys: hallucination" in follow_up
    assert "think_coherence, think_grounding" in follow_up


@pytest.mark.parametrize(
    ("kwargs", "prefix"),
    [
        ({}, '{"think_safety": '),
        ({"digits": "1"}, '{"think_safety": 1'),
        ({"trailing_space": False}, '{"think_safety":'),  # GPT-2 style " 7" tokens
        ({"trailing_space": False, "digits": "1"}, '{"think_safety": 1'),
    ],
)
def test_score_prefix(kwargs, prefix):
    assert score_prefix("think_safety", **kwargs) == prefix
