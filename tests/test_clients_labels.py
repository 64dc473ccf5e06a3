"""Labels through every client surface, per the contract: values in any case (``"SAFE"`` is
``safe``); a bad value or a ``*_tag`` key that is not one of the three makes only THAT sample
invalid, naming the key; other keys (``category``) are ignored.

Each surface (``RewardClient``, ``AsyncRewardClient``, the TRL reward function, the verl and
OpenRLHF adapters, the CLI) scores the same four samples against the real rules service; a
scripted server shows that a sample the client already knows is invalid is never sent.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clients import trl_reward
from clients.__main__ import ScoreArguments
from clients.__main__ import main as cli_main
from clients.adapters.openrlhf import make_reward_func
from tests.test_clients import make_sample, run_score, scripted_service

PROFILE = "safegrpo_plus"
GOOD = make_sample(0)  # labelled all-safe, a perfect answer: 1.0 under safegrpo_plus
TAGS = GOOD["labels"]

# (labels, expected reward, the key a bad label's error must name)
CASES = [
    (TAGS, 1.0, None),
    ({**TAGS, "combine_tag": "maybe"}, None, "combine_tag"),  # a bad value
    ({"image_tag": "safe", "text_tag": "safe", "combined_tag": "safe"}, None, "combined_tag"),
    ({"image_tag": "SAFE", "text_tag": " Safe ", "combine_tag": "safe",
      "category": "cooking"}, 1.0, None),  # any case; dataset metadata ignored
]
LABELS = [labels for labels, _, _ in CASES]
EXPECTED = [reward for _, reward, _ in CASES]


def check(rewards: list, errors: list) -> None:
    """The four cases scored as the contract says: only the bad ones invalid, named."""
    assert rewards == EXPECTED
    for (_, reward, key), error in zip(CASES, errors, strict=True):
        if reward is None:
            assert error and key in error, error
        else:
            assert not error


@pytest.fixture(params=["sync", "async"])
def kind(request) -> str:
    return request.param


def test_reward_clients(kind, rules_server):
    samples = [{**GOOD, "id": i, "labels": labels} for i, labels in enumerate(LABELS)]
    results = run_score(kind, rules_server.url, samples, profile=PROFILE)
    assert [r.id for r in results] == [0, 1, 2, 3]
    check([r.reward for r in results], [r.error for r in results])
    assert [r.status for r in results] == ["ok", "invalid", "invalid", "ok"]


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"combine_tag": "maybe"}, "combine_tag"),  # not safe/unsafe
        ({"combined_tag": "safe"}, "combined_tag"),  # a typo must not drop the label
        ("{not json", "JSON"),
        (["safe"], "object"),
    ],
)
def test_a_bad_label_is_not_sent_and_fails_nothing_else(kind, raw, named):
    samples = [make_sample(0), make_sample(1) | {"labels": raw}, make_sample(3)]
    with scripted_service() as server:
        results = run_score(kind, server.url, samples)
    sent = [s["id"] for request in server.requests for s in request.json()["samples"]]
    assert sent == [0, 3]  # one request, without the bad sample
    assert [r.reward for r in results] == [0.5, None, 0.5]
    bad = results[1]
    assert bad.id == 1 and bad.status == "invalid" and bad.error.startswith("client: labels")
    assert named in bad.error


def test_all_samples_invalid_sends_nothing(kind):
    with scripted_service() as server:
        [r] = run_score(kind, server.url, [make_sample(0) | {"labels": "maybe"}])
    assert len(server.requests) == 0 and r.status == "invalid"


def test_trl_reward_function(rules_server):
    f = trl_reward(url=rules_server.url, profile=PROFILE)
    errors: dict[str, list] = {}
    rewards = asyncio.run(f(
        prompts=["q"] * 4, completions=[GOOD["response"]] * 4, labels=LABELS,
        log_extra=lambda column, values: errors.setdefault(column, values),
    ))
    check(rewards, errors[f"{f.__name__}/error"])

    # SafeTag-VL label columns: a misspelt column makes its rows unscored, naming it
    rewards = asyncio.run(f(prompts=["q", "q"], completions=[GOOD["response"]] * 2,
                            image_tag=["safe", "SAFE"], text_tag=["safe", "safe"],
                            combined_tag=["safe", "safe"],
                            log_extra=lambda column, values: errors.update({column: values})))
    assert rewards == [None, None] and all("combined_tag" in e for e in errors[
        f"{f.__name__}/error"])


def test_verl_adapter(monkeypatch, rules_server):
    monkeypatch.setenv("REWARD_SERVICE_URL", rules_server.url)
    for var in ("REWARD_SERVICE_PROFILE", "REWARD_SERVICE_INVALID_SCORE",
                "REWARD_SERVICE_COMPONENTS", "REWARD_SERVICE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    from clients.adapters import verl

    outs = verl.compute_score_batch(["safetag"] * 4, [GOOD["response"]] * 4, LABELS,
                                    [{"prompt": "q"}] * 4, invalid_score=0.0, profile=PROFILE)
    assert [o["score"] for o in outs] == [r if r is not None else 0.0 for r in EXPECTED]
    assert [o["valid"] for o in outs] == [0.0 if r is None else 1.0 for r in EXPECTED]
    # one sample at a time (the reward loop): a bad label is that sample's invalid score
    assert asyncio.run(verl.compute_score("safetag", GOOD["response"], LABELS[1], None,
                                          invalid_score=0.0, profile=PROFILE))["valid"] == 0.0
    assert asyncio.run(verl.compute_score("safetag", GOOD["response"], json.dumps(LABELS[3]),
                                          None, profile=PROFILE))["score"] == 1.0


def test_openrlhf_file_mode(rules_server):
    reward_func = make_reward_func(rules_server.url, invalid_reward=0.0, profile=PROFILE)
    prompt = "<|im_start|>user\nhow do I bake bread?<|im_end|>\n<|im_start|>assistant\n"
    queries = [prompt + GOOD["response"]] * 4
    out = reward_func(queries, [prompt] * 4, [json.dumps(labels) for labels in LABELS])
    assert out["rewards"].tolist() == [r if r is not None else 0.0 for r in EXPECTED]
    assert out["extra_logs"]["valid"].tolist() == [0.0 if r is None else 1.0 for r in EXPECTED]


def test_cli(rules_server, tmp_path: Path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{**GOOD, "id": i, "labels": labels} for i, labels in enumerate(LABELS)]
    top_level = {k: v for k, v in GOOD.items() if k != "labels"}
    rows.append({**top_level, "id": 4, "combined_tag": "safe", "image_tag": "safe"})
    rows.append({**top_level, "id": 5, "combine_tag": "SAFE", "image_tag": "safe",
                 "text_tag": "safe", "category": "cooking"})
    inp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ScoreArguments(input=str(inp), output=str(out), url=rules_server.url,
                          profile=PROFILE, api_key=None, no_progress=True)
    assert cli_main(args) == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in results] == [0, 1, 2, 3, 4, 5]
    check([r["reward"] for r in results[:4]], [r["error"] for r in results[:4]])
    assert results[4]["reward"] is None and "combined_tag" in results[4]["error"]
    assert results[4]["error"].startswith("client: line 5: labels")
    assert results[5]["reward"] == 1.0
    assert "category" in capsys.readouterr().err  # a top-level extra field is reported
