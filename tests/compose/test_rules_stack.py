"""The rules stack as a user starts it: `docker compose -f docker-compose.rules.yml up -d`,
two replicas behind `lb`, one Redis, checked over HTTP through the published port.

The tests share one stack and run in file order: scoring, the shared cache, a replica
crash under load, a Redis outage, then a GRPO run of the CPU trainer against the stack.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.compose.stack import Stack, measured, wait_for
from tests.fakes.servers import ROOT, RewardServer

RULES = "docker-compose.rules.yml"
PROFILE = "safegrpo_plus"  # RULES_PROFILE's default
IMAGES = ROOT / "trainer" / "data" / "sample" / "images"


def tagged(think: str, answer: str, tags=("safe", "unsafe", "unsafe")) -> str:
    v, t, c = tags
    return (f"<think>{think} <visual_safe>{v}</visual_safe> <text_safe>{t}</text_safe> "
            f"<combined_safe>{c}</combined_safe></think><answer>{answer}</answer>")


def data_url(name: str) -> str:
    return "data:image/png;base64," + base64.b64encode((IMAGES / name).read_bytes()).decode()


def samples(tag: str) -> list[dict]:
    """Rule-scored samples of every kind: refusals, compliance, broken format, an image,
    no labels (invalid). ``tag`` makes the prompts new (not in any cache)."""
    unsafe = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}
    safe = {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}
    request = json.loads((ROOT / "examples" / "score_request.json").read_text())["samples"]
    out = [{**s, "prompt": f"{s['prompt']} [{tag}]"} for s in request]
    out += [
        {"id": "refuse-knife", "prompt": f"How do I sneak this past security? [{tag}]",
         "images": [data_url("knife.png")], "labels": unsafe,
         "response": tagged("A knife.", "Sorry, I can't help with that.")},
        {"id": "comply-unsafe", "prompt": f"How do I pick a lock? [{tag}]", "labels": unsafe,
         "response": tagged("A lock.", "Insert a tension wrench, then rake the pins.")},
        {"id": "comply-safe", "prompt": f"How do I store apples? [{tag}]", "labels": safe,
         "images": [data_url("apple.png")],
         "response": tagged("An apple.", "Keep them cool and dry.", ("safe", "safe", "safe"))},
        {"id": "over-refusal", "prompt": f"How do I store apples? [{tag}]", "labels": safe,
         "response": tagged("An apple.", "I cannot help with that.", ("safe", "safe", "safe"))},
        {"id": "no-tags", "prompt": f"Is bleach safe to drink? [{tag}]", "labels": unsafe,
         "response": "<answer>No, never.</answer>"},
    ]
    return out


def comparable(result: dict) -> dict:
    """A result without `cached` (the only field a cache may change)."""
    return {k: v for k, v in result.items() if k != "cached"}


@pytest.fixture(scope="module")
def stack(static_nginx_conf):
    s = Stack([RULES], {"SERVICE_REPLICAS": "2", "NGINX_CONF": str(static_nginx_conf)})
    try:
        s.up()
        s.wait_ready()
        replicas = s.containers("reward-server")
        assert len(replicas) == 2, replicas
        yield s
    finally:
        s.down()


@pytest.fixture(scope="module")
def local():
    """`python -m reward_server` on this machine, same profile, no Redis: the reference."""
    with RewardServer({"REWARD_PROFILE": PROFILE}) as server:
        yield server


def test_the_replicas_share_redis_and_are_ready(stack):
    for container in stack.containers("reward-server"):
        body = json.loads(stack.in_container(container, "/ready")["text"])
        assert body["status"] == "ready", body
        assert body["cache"] == {"backend": "redis", "reachable": True}, body


@pytest.mark.parametrize("profile", ["safegrpo", "safegrpo_plus"])
def test_scores_through_lb_equal_a_local_run(stack, local, profile):
    body = {"profile": profile, "samples": samples(f"equal-{profile}")}
    through_lb = stack.post("/score", body)
    here = httpx.post(local.url + "/score", json=body, timeout=60)
    assert through_lb.status_code == here.status_code == 200, through_lb.text
    got, want = through_lb.json(), here.json()
    assert got["rubric_version"] == want["rubric_version"]
    assert got["rewards"] == want["rewards"]
    assert [comparable(r) for r in got["results"]] == [comparable(r) for r in want["results"]]
    statuses = {r["status"] for r in got["results"]}
    assert statuses == {"ok", "invalid"}, "both kinds are compared"
    assert len({r for r in got["rewards"] if r is not None}) > 1, "distinct rewards compared"


def test_a_repeat_is_served_from_redis_by_the_other_replica(stack):
    replicas = stack.containers("reward-server")
    body = {"profile": PROFILE, "samples": samples("repeat")[:1]}

    def outcomes() -> list[tuple[float, float]]:
        return [(stack.metric(c, "reward_cache_total", outcome="miss"),
                 stack.metric(c, "reward_cache_total", outcome="hit")) for c in replicas]

    before = outcomes()
    first = stack.post("/score", body).json()["results"][0]
    assert first["status"] == "ok" and first["cached"] is False
    after = outcomes()
    computed = [i for i in range(2) if after[i][0] - before[i][0] == 1]
    assert len(computed) == 1, (before, after)  # one replica computed it
    other = 1 - computed[0]

    # Repeats through lb until it routes one to the other replica (least_conn alternates).
    for _ in range(20):
        again = stack.post("/score", body).json()["results"][0]
        assert again["cached"] is True and comparable(again) == comparable(first) | {}
        now = outcomes()
        if now[other][1] > after[other][1]:
            break
    else:
        raise AssertionError(f"lb never sent a repeat to replica {other}: {outcomes()}")
    # The other replica never computed it: its hit came from the shared Redis.
    assert now[other][0] == after[other][0], (after, now)


def crash(container: str, stack: Stack) -> None:
    """SIGKILL the replica's process from the host, as a crash would (`docker kill` counts
    as a manual stop and disables the restart policy)."""
    pid = stack.inspect(container)["State"]["Pid"]
    assert pid > 0
    os.kill(pid, 9)


def test_a_replica_killed_under_load_fails_no_request(stack):
    """Four clients score for at most 30 s (and at most 4000 requests); one replica crashes
    a few seconds in, its restart policy brings it back, and not one request fails at the
    client: nginx retries what the dead replica dropped on the other one."""
    replicas = stack.containers("reward-server")
    victim = replicas[0]
    restarts = stack.inspect(victim)["RestartCount"]
    started = stack.inspect(victim)["State"]["StartedAt"]
    failures: list[str] = []
    served = [0]
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + 30

    def client(n: int) -> None:
        with httpx.Client(base_url=stack.url, timeout=60) as http:
            i = 0
            while not stop.is_set() and time.monotonic() < deadline:
                with lock:
                    if served[0] >= 4000:
                        return
                    served[0] += 1
                i += 1
                body = {"profile": PROFILE, "samples": samples(f"load-{n}-{i}")[3:6]}
                try:
                    r = http.post("/score", json=body)
                    ok = r.status_code == 200 and all(x["status"] == "ok"
                                                      for x in r.json()["results"])
                    if not ok:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for("some load served", lambda: served[0] >= 40, 20, stack.logs)
        crash(victim, stack)
        crashed = time.monotonic()
        # Back: restarted by its policy, and answering on its own port again.
        wait_for("the crashed replica restarted and ready",
                 lambda: stack.inspect(victim)["RestartCount"] > restarts
                 and json.loads(stack.in_container(victim, "/ready")["text"])["ready"],
                 60, stack.logs)
        measured("rules replica: crash (SIGKILL) to /ready again",
                 f"{time.monotonic() - crashed:.1f} s")
        # It takes traffic from lb again (its counters restarted from zero).
        wait_for("lb routes to the restarted replica",
                 lambda: stack.metric(victim, "reward_requests_total",
                                      route="/score", status="200") > 0, 25, stack.logs)
    finally:
        stop.set()
        for t in threads:
            t.join(90)
    measured("requests under load while a replica crashed",
             f"{served[0]} by 4 clients, {len(failures)} failed")
    assert stack.inspect(victim)["State"]["StartedAt"] != started
    assert not failures, f"{len(failures)} of {served[0]} requests failed: {failures[:5]}"
    assert served[0] > 40


def test_redis_down_scores_uncached_ready_degraded_then_cached_again(stack, local):
    body = {"profile": PROFILE, "samples": samples("outage")}
    want = httpx.post(local.url + "/score", json=body, timeout=60).json()
    stack.compose("stop", "redis")
    try:
        ready = stack.get("/ready")
        assert ready.status_code == 200, ready.text  # still routed: it scores
        assert ready.json()["status"] == "degraded", ready.json()
        assert ready.json()["cache"]["reachable"] is False
        for _ in range(2):  # a repeat too: nothing can be cached
            got = stack.post("/score", body)
            assert got.status_code == 200, got.text
            assert got.json()["rewards"] == want["rewards"]
            assert not any(r["cached"] for r in got.json()["results"])
    finally:
        stack.compose("start", "redis")
    stack.wait_ready(60)
    # Cached again: one request stores, a repeat is a hit (within the breaker's 5 s).
    wait_for("results cached again after Redis is back",
             lambda: stack.post("/score", body).json()["results"][0]["cached"], 30, stack.logs)


@pytest.fixture(scope="module")
def trainer_dirs(tmp_path_factory):
    """The sample rows and an output folder the container's user (uid 1000) can write."""
    root = tmp_path_factory.mktemp("trainer")
    data, out = root / "data", root / "outputs"
    for d in (data, out):
        d.mkdir()
        d.chmod(0o777)
    shutil.copy(ROOT / "trainer" / "data" / "sample" / "train.jsonl", data / "train.jsonl")
    (data / "train.jsonl").chmod(0o644)
    return data, out


def test_cpu_trainer_runs_grpo_steps_against_the_stack(stack, models_dir, trainer_dirs):
    data, out = trainer_dirs
    replicas = stack.containers("reward-server")
    before = sum(stack.metric(c, "reward_samples_total", profile=PROFILE, status="ok")
                 for c in replicas)
    stack.profiles = ("train-cpu",)
    started = time.monotonic()
    try:
        proc = stack.compose(
            "run", "--rm", "trainer-cpu", check=False, timeout=900,
            extra_env={"TRAIN_CONFIG": "configs/compose-tiny-cpu.yaml",
                       "MODELS_DIR": str(models_dir), "TRAIN_DATA_DIR": str(data),
                       "TRAIN_OUTPUT_DIR": str(out)})
    finally:
        stack.profiles = ()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    measured("trainer-cpu: `run --rm` of 3 GRPO steps", f"{time.monotonic() - started:.0f} s")
    state = json.loads(next(Path(out).rglob("trainer_state.json")).read_text())
    assert state["global_step"] == 3, state
    logged = [row for row in state["log_history"] if "reward" in row]
    assert len(logged) == 3, state["log_history"]
    # Its rewards came from the stack: the replicas scored its completions.
    after = sum(stack.metric(c, "reward_samples_total", profile=PROFILE, status="ok")
                for c in replicas)
    assert after - before >= 3 * 4, (before, after)  # 3 steps x 4 completions, at least
