"""A judge that writes its scores as fractions, end to end over HTTP: a real reward server
with the ``openai`` judge backend, and a scripted OpenAI-compatible judge on loopback.

``"95/100"`` is 9.5 on the 1-10 scale (not 95 clamped to 10); a fraction
that cannot be read is no score: one retry, then the sample is ``invalid`` with a reason.
"""

from __future__ import annotations

import pytest

from reward_server.rubric import SAFER_VLM, JudgeVerdict
from reward_server.scorers.safer_vlm import aggregate
from tests.fakes.scripted_openai import ChatRequest, verdict_json
from tests.fakes.servers import judged_reward_server
from tests.test_judge_scripted import MARKER, MODEL, judge_sample, score

REPLIES = {
    # 95/100 -> 9.5, 4/5 -> 8, 85% -> 8.5, 7/10 and 9/10 unchanged, flags 0/2 and "1/2"
    "fractions": verdict_json("95/100", "7/10", "4/5", "9/10", "85%", "0/2", "1/2"),
    # more than its denominator: no number can be made of it (twice: the retry too)
    "unreadable": verdict_json(ts="12/10"),
}


def judge_reply(request: ChatRequest) -> str:
    match = MARKER.search(request.text)
    return REPLIES.get(match.group(1) if match else "", verdict_json())


@pytest.fixture(scope="module")
def service():
    with judged_reward_server(judge_reply, model=MODEL) as server:
        yield server


def _score(server, case: str) -> dict:
    r = score(server, "safer_vlm", [judge_sample(case)], timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["results"][0]


def test_a_judge_writing_fractions_gets_the_rescaled_reward(service):
    result = _score(service, "fractions")
    want = aggregate(JudgeVerdict.of(9.5, 7, 8, 9, 8.5, 0, 1, rationale="scripted"), SAFER_VLM)
    misread = aggregate(JudgeVerdict.of(10, 7, 4, 9, 10, 0, 1, rationale="scripted"), SAFER_VLM)
    assert want.reward != misread.reward  # the case tells the two readings apart
    assert result["status"] == "ok", result
    assert result["reward"] == pytest.approx(want.reward)
    assert result["judge"]["think_coherence"] == 9.5
    assert result["judge"]["answer_helpfulness"] == 8.5


def test_an_unreadable_fraction_is_invalid_with_a_reason(service):
    result = _score(service, "unreadable")
    assert result["status"] == "invalid" and result["reward"] is None
    assert "think_safety" in result["error"] and "12/10" in result["error"], result["error"]
