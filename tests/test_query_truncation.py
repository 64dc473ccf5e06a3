"""A prompt OpenRLHF cut from the left (issue 23): OpenRLHF 0.11 keeps the last
``max_prompt_length`` tokens of a text prompt that is over its budget and decodes those, so
the query begins inside the prompt (an earlier assistant turn cut off), while ``prompts``
still carries the whole prompt. The response is found after the prompt's kept end.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reward_formats.queries import split_query, strip_end_of_turn
from tests.test_query_matching import (
    ANSWER,
    ASKED,
    FORGED,
    FORGERIES,
    LLAMA2_TWO_TURNS,
    LLAMA2_TWO_TURNS_DECODED,
    chatml,
    llama3,
)

#: A multi-turn ChatML prompt: one assistant turn already completed.
TWO_TURNS = chatml("Hi, can you help with my door?", "Of course! What is the problem?",
                   text=ASKED)
GENERATION = "<|im_start|>assistant\n"


def cut(prompt: str, at: str) -> str:
    """What is left of ``prompt`` when everything before ``at`` was cut off."""
    return prompt[prompt.index(at):]


@pytest.mark.parametrize(
    ("query", "prompt", "response"),
    [
        # the earlier assistant turn cut in the middle
        (cut(TWO_TURNS, "What is the problem?") + ANSWER + "<|im_end|>", TWO_TURNS, ANSWER),
        # everything cut but the generation prompt itself
        (GENERATION + ANSWER, TWO_TURNS, ANSWER),
        # cut inside a two-byte character: the decoder writes U+FFFD for its lost half
        ("\ufffd" + cut(TWO_TURNS, "problem?") + ANSWER, TWO_TURNS.replace("is the", "is thé"),
         ANSWER),
        # a response that forges an assistant header keeps its beginning (counting the
        # query's headers would take the forged one for the generation prompt's)
        (cut(TWO_TURNS, "problem?") + FORGED, TWO_TURNS, FORGED),
        # Llama 3, cut inside the system prompt
        (cut(llama3("Is this safe?"), "safe.<|eot_id|>") + ANSWER + "<|eot_id|>",
         llama3("Is this safe?"), ANSWER),
        # Llama 2 as its tokenizer decodes it ("<s> [INST]"): cut, then normalised
        (cut(LLAMA2_TWO_TURNS_DECODED, "Use a key.") + " Sorry, no.</s>", LLAMA2_TWO_TURNS,
         " Sorry, no."),
    ],
)
def test_the_response_after_a_left_truncated_prompt(query, prompt, response):
    split = split_query(query, prompt)
    assert split is not None
    assert (split.prompt, split.response, split.method) == (prompt, response, "truncated")


@pytest.mark.parametrize(
    ("query", "prompt"),
    [
        # the query begins inside the prompt but stops before its generation prompt: the
        # rest is not a response to this prompt
        (cut(TWO_TURNS, "What is the problem?").split("<|im_start|>user")[0] + ANSWER,
         TWO_TURNS),
        # a plain prompt (no chat template) has no generation turn to anchor a cut
        ("lo, how are you? Fine.", "Hello, how are you?"),
    ],
)
def test_no_cut_prompt_without_its_generation_turn(query, prompt):
    assert split_query(query, prompt) is None


def test_a_megabyte_prompt_cut_to_its_last_turns():
    turns = ("Hi", "Hello!") * 20_000
    prompt = chatml(*turns, text=ASKED)
    query = prompt[len(prompt) // 2:] + ANSWER
    split = split_query(query, prompt)
    assert (split.response, split.method) == (ANSWER, "truncated")


@settings(deadline=None)
@given(
    st.integers(0, len(TWO_TURNS) - len(GENERATION)),
    st.lists(st.sampled_from(FORGERIES), max_size=10).map("".join),
)
def test_any_left_cut_gives_the_whole_response(at, forged):
    # wherever the prompt is cut, and whatever headers the response writes, all of it is
    # the response
    response = "R" + forged
    split = split_query(TWO_TURNS[at:] + response, TWO_TURNS)
    assert split is not None and split.response == strip_end_of_turn(response)
