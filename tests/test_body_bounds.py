"""Request bodies cost memory in proportion to their size, and labels hold scalars only.

A hostile body of JSON structure (``[{},{},…]``: three bytes an object) built in full
before anything looks at it would grow the process by 2 GB for a 60 MB body. These tests run
the real server and read its peak memory from ``/proc``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from reward_server.api.body import count_values
from reward_server.settings import Settings
from tests.fakes.servers import RewardServer

LABELS = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}
SAMPLE = {"prompt": "How do I pick a lock?", "response": "<answer>Sorry, I can't.</answer>"}


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water resident memory (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def junk_body(objects: int) -> bytes:
    """A /score body whose one sample carries a label holding ``objects`` empty objects."""
    head = json.dumps({"samples": [{**SAMPLE, "labels": {**LABELS, "category": None}}]})
    return head.replace('"category": null', '"category": [' + ",".join(["{}"] * objects) + "]"
                        ).encode()  # fmt: skip


@pytest.fixture(scope="module")
def server():
    with RewardServer() as s:
        yield s


def post_raw(server: RewardServer, path: str, body: bytes) -> httpx.Response:
    return httpx.post(server.url + path, content=body, timeout=120,
                      headers={"content-type": "application/json"})  # fmt: skip


def test_a_body_of_json_structure_is_refused_without_building_it(server):
    body = junk_body(5_000_000)  # 15 MB
    before = peak_rss_bytes(server.proc.pid)
    reply = post_raw(server, "/score", body)
    assert reply.status_code == 413
    assert "REWARD_MAX_JSON_VALUES" in reply.json()["error"]
    grown = peak_rss_bytes(server.proc.pid) - before
    assert grown < 3 * len(body), f"peak memory grew {grown} bytes for {len(body)}"
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200


def test_openrlhf_labels_of_structure_are_refused_too(server):
    junk = b",".join([b"[]"] * 2_000_000)
    body = b'{"query": ["q a"], "prompts": ["q"], "labels": [[' + junk + b"]]}"
    reply = post_raw(server, "/get_reward", body)
    assert reply.status_code == 413 and "REWARD_MAX_JSON_VALUES" in reply.json()["error"]


@pytest.mark.parametrize("value", [["weapons"], {"kind": "weapons"}])
def test_a_label_that_is_not_a_scalar_makes_only_its_sample_invalid(server, value):
    samples = [{**SAMPLE, "labels": {**LABELS, "category": value}}, {**SAMPLE, "labels": LABELS}]
    reply = httpx.post(server.url + "/score", json={"samples": samples}, timeout=30)
    assert reply.status_code == 200
    bad, good = reply.json()["results"]
    assert bad["status"] == "invalid" and bad["reward"] is None
    assert "category" in bad["error"] and "string, number, boolean or null" in bad["error"]
    assert good["status"] == "ok"


def test_scalar_metadata_beside_the_tags_is_still_ignored(server):
    labels = {**LABELS, "category": "weapons", "source": None, "difficulty": 3, "hard": True}
    reply = httpx.post(server.url + "/score", json={"samples": [{**SAMPLE, "labels": labels}]},
                       timeout=30)  # fmt: skip
    assert reply.json()["results"][0]["status"] == "ok"


def test_a_huge_label_string_is_not_decoded(server):
    label = json.dumps({**LABELS, "note": "x" * 2_000_000})
    body = {"query": ["q a"], "prompts": ["q"], "labels": [label]}
    reply = httpx.post(server.url + "/get_reward", json=body, timeout=30)
    assert reply.status_code == 200 and reply.json()["rewards"] == [None]
    # The same labels, short enough, are read.
    body["labels"] = [json.dumps(LABELS)]
    reply = httpx.post(server.url + "/get_reward", json=body, timeout=30)
    assert reply.json()["rewards"][0] is not None


def test_health_answers_while_a_large_body_is_parsed(server):
    """A 40 MB body of long answers is parsed off the event loop: ``/health`` keeps
    answering (a liveness bound, not a speed target)."""
    response = "<think>ok</think><answer>" + "word " * 8000 + "</answer>"
    body = json.dumps({"samples": [{**SAMPLE, "response": response, "labels": LABELS}] * 1000})
    done = threading.Event()
    slowest = 0.0

    def probe() -> None:
        nonlocal slowest
        with httpx.Client(timeout=10) as client:
            while not done.is_set():
                start = time.perf_counter()
                assert client.get(server.url + "/health").status_code == 200
                slowest = max(slowest, time.perf_counter() - start)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        reply = post_raw(server, "/score", body.encode())
    finally:
        done.set()
        prober.join()
    assert reply.status_code == 200 and len(reply.json()["results"]) == 1000
    assert slowest < 2.0


def test_a_body_over_the_derived_limit_is_413_and_the_limit_follows_the_others():
    small = Settings(max_samples=4, max_response_chars=1000, max_request_image_bytes=3000)
    assert small.body_limit == 4000 + 4 * 2 * 1000 + 2**20
    assert Settings().body_limit < Settings(max_samples=2048).body_limit
    assert Settings(max_body_bytes=5000).body_limit == 5000
    env = {"REWARD_MAX_SAMPLES": "2", "REWARD_MAX_RESPONSE_CHARS": "1000",
           "REWARD_MAX_REQUEST_IMAGE_BYTES": "3000"}  # fmt: skip
    with RewardServer(env) as server:
        body = {"samples": [{**SAMPLE, "prompt": "p" * (2**20 + 20_000)}]}
        reply = httpx.post(server.url + "/score", json=body, timeout=30)
        assert reply.status_code == 413 and "REWARD_MAX_BODY_BYTES" in reply.json()["error"]


@pytest.mark.parametrize(
    ("raw", "outside"),
    [(b'{"a": [1, 2], "b": "x,y:z"}', 6),
     (b'["a\\"b,c", {"k\\\\": [1,2]}]', 6),
     (b'  [ "," , ":" ]  ', 2)],
)  # fmt: skip
def test_count_values_skips_strings_and_their_escapes(raw, outside):
    assert count_values(raw, outside) <= outside
    assert count_values(raw, outside - 1) > outside - 1
