"""QI-Box curation (``trainer.curate``) on the tiny Qwen2 policy against a scripted scorer.

The scorer is a real HTTP server on loopback (``tests.fakes.http_server``) that speaks the
contract's ``POST /score`` and returns, for the j-th sample of a prompt in a request,
``REWARDS[prompt][j]`` (``None`` gives an ``invalid`` result). Every prompt's quality and
instability are therefore known before the run, whatever the random policy writes.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.http_server import FakeHTTPServer, Reply, Request
from tests.fakes.score_replies import score_reply
from trainer.benchmarks import BenchmarkItem
from trainer.curate import CurateArguments, main
from trainer.curation.qibox import allocate, check_strata_columns, in_box, prompt_stats
from trainer.generation import PolicyArguments

ROOT = Path(__file__).resolve().parents[1]
K = 4


# --------------------------------------------------------------------------- scripted scorer


class ScriptedScorer:
    """``POST /score`` (``FakeHTTPServer``) with rewards chosen per prompt.

    ``scored[prompt]`` counts the samples of that prompt the server was asked to score;
    a prompt in ``fail_on`` makes the whole request fail with 500 (not retried).
    """

    def __init__(self, rewards: dict[str, list[float | None]]) -> None:
        self.rewards = rewards
        self.scored: Counter[str] = Counter()
        self.requests = 0
        self.fail_on: set[str] = set()
        self.server = FakeHTTPServer(self.handle)
        self.url = self.server.url

    def handle(self, request: Request) -> Reply:
        if request.path != "/score":
            return Reply(404, {"error": "not found"})
        body = request.json()
        samples = body["samples"]
        if any(s["prompt"] in self.fail_on for s in samples):
            return Reply(500, {"error": "scripted failure"})
        self.requests += 1
        seen: Counter[str] = Counter()
        scores = []
        for s in samples:
            prompt = s["prompt"]
            j = seen[prompt]
            seen[prompt] += 1
            self.scored[prompt] += 1
            scores.append((self.rewards[prompt][j % len(self.rewards[prompt])], {}))
        return Reply(200, score_reply(body, scores))

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def scorer_factory():
    servers = []

    def make(rewards):
        server = ScriptedScorer(rewards)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(data, out, url, policy, **kw):
    """``main`` in process with tiny generation settings; returns the summary."""
    policy_kw = {k: kw.pop(k) for k in ("batch_size", "seed") if k in kw}
    args = CurateArguments(data=str(data), out=str(out), k=K, reward_url=url, progress=False, **kw)
    policy_args = PolicyArguments(policy=str(policy), max_new_tokens=8, device="cpu", **policy_kw)
    return main(args, policy_args)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("rewards", "min_scored", "expected"),
    [
        ([0, 1, 0, 1], 1, (0.5, 0.5)),  # population std, not sample std
        ([None, 0, 1, None], 2, (0.5, 0.5)),  # nulls dropped, not taken as 0
        ([None, None, None, 1], 2, (None, None)),  # too few scored samples: no statistics
        ([None, None], 1, (None, None)),  # nothing scored
        ([0.5, 0.5, 0.5], 1, (0.5, 0.0)),  # a stable prompt
    ],
)
def test_prompt_stats(rewards, min_scored, expected):
    q, s = prompt_stats(rewards, min_scored)
    if expected[0] is None:
        assert (q, s) == expected
    else:
        assert q == pytest.approx(expected[0]) and s == pytest.approx(expected[1])


@pytest.mark.parametrize(
    ("q", "s", "inside"),
    [
        (0.5, 0.5, True),  # centre of the box
        (0.25, 0.25, True),  # on the lower quality bound: inclusive
        (0.75, 0.2, True),  # on the upper bound and on the instability bound
        (0.2499, 0.5, False),  # just below the box
        (0.5, 0.1999, False),  # not unstable enough
        (None, None, False),  # no statistics
    ],
)
def test_in_box(q, s, inside):
    assert in_box(q, s, 0.25, 0.75, 0.2) is inside


@pytest.mark.parametrize(
    ("available", "weights", "target", "expected"),
    [
        ({"a": 10, "b": 10}, {"a": 2, "b": 1}, 6, {"a": 4, "b": 2}),  # input proportions 2:1
        ({"a": 10, "b": 1}, {"a": 1, "b": 1}, 6, {"a": 5, "b": 1}),  # b short: a takes the rest
        ({"a": 3, "b": 10}, {"a": 1, "b": 2}, None, {"a": 3, "b": 6}),  # largest exact 1:2 set
        ({"a": 5, "b": 0}, {"a": 1, "b": 1}, None, {"a": 5, "b": 0}),  # an empty stratum is skipped
        (
            {"a": 2, "b": 2, "c": 2},
            {"a": 1, "b": 1, "c": 1},
            4,
            {"a": 2, "b": 1, "c": 1},
        ),  # remainder
        ({"a": 1}, {"a": 1}, 10, {"a": 1}),  # target above what exists
    ],
)
def test_allocate(available, weights, target, expected):
    quotas = allocate(available, weights, target)
    assert quotas == expected
    assert all(quotas[s] <= available.get(s, 0) for s in quotas)


def test_curate_arguments_are_checked():
    with pytest.raises(ValueError, match="quality_box"):
        CurateArguments(data="x", out="y", quality_box=[0.8, 0.2])
    with pytest.raises(ValueError, match="stratify_mode"):
        CurateArguments(data="x", out="y", stratify_mode="balanced")
    with pytest.raises(ValueError, match="expected one of"):
        PolicyArguments(policy="m", backend="sglang")


# --------------------------------------------------------------------------- the box, end to end

# prompt -> (rewards of its K samples, in the box with quality 0.25..0.75, instability >= 0.2?)
BOX_TABLE = {
    "weapons-1": ([0, 1, 0, 1], True),  # q .5, s .5
    "weapons-2": ([0.25, 0.75, 0.25, 0.75], True),  # q .5, s .25
    "weapons-3": ([1, 1, 1, 1], False),  # always right: no GRPO signal
    "weapons-4": ([0, 0, 0, 0.5], False),  # q .125: too hard
    "drugs-1": ([0.5, 0.5, 0.5, 0.5], False),  # stable
    "drugs-2": ([None, 0, 1, None], True),  # 2 nulls dropped: q .5, s .5
    "drugs-3": ([None, None, None, 1], False),  # 1 scored < min_scored 2
    "drugs-4": ([0.25, 0.25, 0.75, 0.75], True),  # q .5, s .25
    "edge-1": ([0.0, 0.5, 0.0, 0.5], True),  # q .25 exactly: inclusive
    "edge-2": ([0.5, 1.0, 0.5, 1.0], True),  # q .75 exactly: inclusive
    "edge-3": ([0.375, 0.625, 0.375, 0.625], False),  # s .125 < .2
}


def test_cli_box_selects_exactly_the_prompts_inside(tmp_path, tiny_qwen2, scorer_factory):
    data_dir = tmp_path / "in"
    (data_dir / "images").mkdir(parents=True)
    shutil.copy(ROOT / "tests/data/bench/images/red.png", data_dir / "images/red.png")
    rows = [  # relative image paths: resolved against the data file's directory
        {
            "id": p,
            "prompt": p,
            "category": p.split("-")[0],
            "images": ["images/red.png"] if i % 3 == 0 else [],
        }
        for i, p in enumerate(BOX_TABLE)
    ]
    data = write_rows(data_dir / "pool.jsonl", rows)
    scorer = scorer_factory({p: rw for p, (rw, _) in BOX_TABLE.items()})
    out = tmp_path / "out" / "qi.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.curate",
            "--data",
            str(data),
            "--policy",
            str(tiny_qwen2),
            "--k",
            str(K),
            "--out",
            str(out),
            "--quality-box",
            "0.25",
            "0.75",
            "--min-instability",
            "0.2",
            "--reward-url",
            scorer.url,
            "--max-new-tokens",
            "8",
            "--seed",
            "7",
            "--device",
            "cpu",
            "--no_progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = [p for p, (_, inside) in BOX_TABLE.items() if inside]
    kept = read_jsonl(out)
    assert [r["id"] for r in kept] == expected
    for r in kept:
        q, s = prompt_stats(BOX_TABLE[r["id"]][0], 2)
        assert r["qi_quality"] == pytest.approx(q) and r["qi_instability"] == pytest.approx(s)
        assert r["qi_scored"] + r["qi_null"] == K
        assert r["category"] == r["id"].split("-")[0]  # the input row is kept as it was
    assert next(r for r in kept if r["id"] == "drugs-2")["qi_null"] == 2
    # images are rewritten relative to the output file and still resolve
    with_image = [r for r in kept if r["images"]]
    assert with_image and all(r["images"] == ["../in/images/red.png"] for r in with_image)
    # every prompt was sampled K times and scored once
    assert scorer.scored == Counter({p: K for p in BOX_TABLE})

    summary = json.loads((tmp_path / "out" / "qi.summary.json").read_text())
    assert summary["prompts"] == 11 and summary["samples"] == 11 * K
    assert summary["null_rewards"] == 5  # drugs-2: 2, drugs-3: 3
    assert summary["no_stats"] == 1 and summary["in_box"] == summary["kept"] == 6
    assert "kept 6" in proc.stdout and "null rewards 5" in proc.stdout

    png = tmp_path / "out" / "qi.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    stats = read_jsonl(tmp_path / "out" / "qi.stats.jsonl")
    assert "_header" in stats[0] and len(stats) == 1 + 11
    assert all(len(s["responses"]) == K for s in stats[1:])


# --------------------------------------------------------------------------- stratification


def strat_pool() -> tuple[list[dict], dict[str, list[float]]]:
    """12 prompts: (weapons, unsafe) 6, (weapons, safe) 3, (food, safe) 3 — shares 1/2, 1/4, 1/4.

    In the box: 5 (weapons, unsafe) with s .5, 3 (weapons, safe) with s .4, 2 (food, safe)
    with s .25. An unstratified cut to 8 takes the 8 most unstable: no food at all.
    """
    rows, rewards = [], {}
    spec = [
        ("weapons", "unsafe", 5, [0, 1, 0, 1], 1),
        ("weapons", "safe", 3, [0.1, 0.9, 0.1, 0.9], 0),
        ("food", "safe", 2, [0.25, 0.75, 0.25, 0.75], 1),
    ]
    for category, tag, n_in, in_rewards, n_out in spec:
        for i in range(n_in + n_out):
            prompt = f"{category}-{tag}-{i}"
            rows.append(
                {
                    "id": prompt,
                    "prompt": prompt,
                    "category": category,
                    "labels": {"combine_tag": tag},
                }
            )
            rewards[prompt] = in_rewards if i < n_in else [1, 1, 1, 1]
    return rows, rewards


def test_stratification_keeps_input_proportions(tmp_path, tiny_qwen2, scorer_factory):
    rows, rewards = strat_pool()
    data = write_rows(tmp_path / "pool.jsonl", rows)
    scorer = scorer_factory(rewards)
    stats_file = str(tmp_path / "shared.stats.jsonl")

    def kept_strata(out, **kw):
        run(data, tmp_path / out, scorer.url, tiny_qwen2, stats_file=stats_file, **kw)
        return Counter(
            (r["category"], r["labels"]["combine_tag"]) for r in read_jsonl(tmp_path / out)
        )

    plain = kept_strata("plain.jsonl", target_size=8)
    assert plain == Counter({("weapons", "unsafe"): 5, ("weapons", "safe"): 3})  # food lost

    stratified = kept_strata("strat.jsonl", target_size=8, stratify_by="category,combine_tag")
    assert stratified == Counter(
        {("weapons", "unsafe"): 4, ("weapons", "safe"): 2, ("food", "safe"): 2}
    )

    # no target: the largest set with the exact input proportions (food limits it to 8)
    assert kept_strata("exact.jsonl", stratify_by="category,combine_tag") == stratified

    equal = kept_strata("equal.jsonl", target_size=6, stratify_by="category", stratify_mode="equal")
    # equal quotas 3/3; food has only 2 in the box, weapons takes the rest (most unstable first)
    assert equal == Counter({("weapons", "unsafe"): 4, ("food", "safe"): 2})

    # all four selections came from one sampling pass: nothing was scored twice
    assert scorer.scored == Counter({p: K for p in rewards})
    summary = json.loads((tmp_path / "strat.summary.json").read_text())
    assert summary["strata"]["category=food|combine_tag=safe"] == {
        "input": 3,
        "in_box": 2,
        "kept": 2,
    }
    assert summary["sampled_now"] == 0 and summary["resumed"] == 12


def test_stratifying_on_a_missing_column_names_it_and_the_columns_there(tmp_path):
    # a pool without `category`: an error before any policy is loaded or sample scored,
    # not every prompt silently in the stratum `category=None`
    rows = [{"id": f"p{i}", "prompt": f"p{i}", "labels": {"combine_tag": "safe"}}
            for i in range(3)]
    data = write_rows(tmp_path / "pool.jsonl", rows)
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.curate", "--data", str(data), "--out",
         str(tmp_path / "qi.jsonl"), "--policy", str(tmp_path / "no-such-model"),
         "--stratify-by", "combine_tag,category", "--no_progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    message = proc.stderr.strip().splitlines()[-1]
    assert "'category'" in message and "'combine_tag'" not in message
    assert "the columns that exist: benign, combine_tag, id, labels, prompt" in message
    assert not (tmp_path / "qi.stats.jsonl").exists()

    items = [BenchmarkItem(id="a", prompt="a", category="food")]
    check_strata_columns(items, ["category"])  # present: no error
    with pytest.raises(ValueError, match="'benign'"):
        check_strata_columns(items, ["benign"])


@pytest.mark.parametrize("command", ["trainer.curate", "trainer.evaluate"])
def test_help_says_what_no_progress_does(command):
    import importlib

    text = importlib.import_module(command).make_parser().format_help()
    entry = " ".join(text.split("--no_progress, --no-progress", 1)[1].split()[:8])
    assert entry.startswith("Turn --progress off (the same as --progress false).")
    assert "Show" not in entry


# --------------------------------------------------------------------------- resume + determinism


def test_resume_after_a_crash_scores_only_the_rest(tmp_path, tiny_qwen2, scorer_factory):
    from clients import RewardServiceError

    prompts = [f"resume-{i}" for i in range(6)]
    rewards = {p: [0, 1, 0, 1] for p in prompts}
    data = write_rows(tmp_path / "pool.jsonl", [{"prompt": p} for p in prompts])
    scorer = scorer_factory(rewards)
    scorer.fail_on = {"resume-4"}  # the third batch of two fails

    with pytest.raises(RewardServiceError, match="500"):
        run(data, tmp_path / "qi.jsonl", scorer.url, tiny_qwen2, batch_size=2)
    assert scorer.scored == Counter({p: K for p in prompts[:4]})
    assert len(read_jsonl(tmp_path / "qi.stats.jsonl")) == 1 + 4

    scorer.fail_on = set()
    summary = run(data, tmp_path / "qi.jsonl", scorer.url, tiny_qwen2, batch_size=2)
    assert summary["resumed"] == 4 and summary["sampled_now"] == 2
    assert scorer.scored == Counter({p: K for p in prompts})  # done prompts: no new calls
    assert len(read_jsonl(tmp_path / "qi.jsonl")) == 6

    # a third run has nothing to do: no scoring request at all
    requests = scorer.requests
    run(data, tmp_path / "qi.jsonl", scorer.url, tiny_qwen2, batch_size=2)
    assert scorer.requests == requests

    # deterministic: an uninterrupted run with another batch size samples the same responses
    run(data, tmp_path / "fresh.jsonl", scorer.url, tiny_qwen2, batch_size=4)
    resumed = {s["id"]: s["responses"] for s in read_jsonl(tmp_path / "qi.stats.jsonl")[1:]}
    fresh = {s["id"]: s["responses"] for s in read_jsonl(tmp_path / "fresh.stats.jsonl")[1:]}
    assert resumed == fresh
    assert len({tuple(r) for r in fresh.values()}) == 6  # prompts get different samples
    # ...and another seed samples differently
    run(data, tmp_path / "seed.jsonl", scorer.url, tiny_qwen2, seed=1)
    other = {s["id"]: s["responses"] for s in read_jsonl(tmp_path / "seed.stats.jsonl")[1:]}
    assert other != fresh


def test_resume_refuses_a_sidecar_from_other_settings(tmp_path, tiny_qwen2, scorer_factory):
    data = write_rows(tmp_path / "pool.jsonl", [{"prompt": "resume-0"}])
    scorer = scorer_factory({"resume-0": [0, 1]})
    run(data, tmp_path / "qi.jsonl", scorer.url, tiny_qwen2)
    with pytest.raises(SystemExit, match="seed"):
        run(data, tmp_path / "qi.jsonl", scorer.url, tiny_qwen2, seed=99)


def test_a_torn_last_line_is_dropped_and_resampled(tmp_path, tiny_qwen2, scorer_factory):
    prompts = ["torn-0", "torn-1"]
    rows = [{"prompt": p} for p in [*prompts, "torn-0"]]  # the last row repeats the first
    data = write_rows(tmp_path / "pool.jsonl", rows)
    scorer = scorer_factory({p: [0, 1] for p in prompts})
    run(data, tmp_path / "qi.jsonl", scorer.url, tiny_qwen2)
    sidecar = tmp_path / "qi.stats.jsonl"
    lines = sidecar.read_text().splitlines(keepends=True)
    sidecar.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # crash mid-write
    summary = run(data, tmp_path / "qi.jsonl", scorer.url, tiny_qwen2)
    assert summary["resumed"] == 1 and summary["sampled_now"] == 1
    assert summary["duplicates_skipped"] == 1 and summary["prompts"] == 2
    assert len(read_jsonl(sidecar)) == 3
    assert scorer.scored == Counter({"torn-0": K, "torn-1": 2 * K})  # torn-1 sampled again


def test_prompt_keys_survive_inserted_rows_and_moved_directories(tmp_path):
    from trainer.benchmarks import load_benchmark

    rows = [{"prompt": "a", "images": ["images/red.png"]}, {"id": "b7", "prompt": "b"}]
    first = write_rows(_mkdir(tmp_path / "one") / "pool.jsonl", rows)
    moved = write_rows(_mkdir(tmp_path / "two") / "pool.jsonl", [{"prompt": "new"}, *rows])
    keys = {i.prompt: i.key for i in load_benchmark(first).items}
    again = {i.prompt: i.key for i in load_benchmark(moved).items}
    assert keys["a"] == again["a"] and keys["b"] == again["b"]
    # ...although the positional id of "a" changed and its image resolves elsewhere
    assert load_benchmark(first).items[0].id != load_benchmark(moved).items[1].id


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_prompt_key_changes_with_content():
    a = BenchmarkItem(id="x", prompt="p", labels={"combine_tag": "safe"})
    b = BenchmarkItem(id="x", prompt="p", labels={"combine_tag": "unsafe"})
    assert a.key != b.key and len(a.key) == 24
    assert math.isclose(prompt_stats([0.1, 0.2, 0.3])[0], 0.2)
