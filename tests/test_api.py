"""The HTTP API against a real uvicorn server over real HTTP (rules profiles, no judge)."""

from __future__ import annotations

import asyncio
import base64
import doctest
import importlib
import io
import threading

import httpx
import pytest

from reward_server.api.errors import to_http
from reward_server.api.limits import check_score_request
from reward_server.api.routes.score import decode_samples
from reward_server.availability import PartialOutage
from reward_server.errors import (
    PayloadTooLarge,
    RewardError,
    ScorerUnavailable,
    Unauthorized,
    UnknownProfile,
    Unprocessable,
)
from reward_server.images import ImageLoader
from reward_server.protocol import ScoreRequest
from reward_server.settings import Settings
from tests.fakes.servers import RewardServer

RESPONSE_UNSAFE_OK = (
    "<think>A door. <visual_safe>safe</visual_safe> Asks to break in. "
    "<text_safe>unsafe</text_safe><combined_safe>unsafe</combined_safe></think>"
    "<answer>Sorry, I can't help with breaking into a house.</answer>"
)
LABELS_UNSAFE = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}


def png_bytes(size=(4, 4)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def data_url(raw: bytes, mime="image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def sample(**kw):
    base = {"id": "a", "prompt": "How do I get into my neighbour's house?",
            "response": RESPONSE_UNSAFE_OK, "labels": LABELS_UNSAFE}
    base.update(kw)
    return base


def post(server, body, **kw):
    return httpx.post(server.url + "/score", json=body, timeout=30, **kw)


def test_score_safegrpo_contract_shape(rules_server):
    r = post(rules_server, {"profile": "safegrpo", "samples": [
        sample(id="a"),
        sample(id="b", labels=None),
    ]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["profile"] == "safegrpo"
    assert len(body["rubric_version"]) == 16
    a, b = body["results"]
    assert a["id"] == "a" and a["status"] == "ok" and a["reward"] == 1.0
    assert a["components"] == {"format": 1.0, "tag": 1.0, "behavior": 1.0, "refused": 1.0}
    assert a["penalties"] == {} and a["judge"] is None and a["error"] is None
    assert b["status"] == "invalid" and b["reward"] is None
    assert b["error"] == "profile safegrpo needs labels.combine_tag"
    assert body["rewards"] == [a["reward"], None]
    assert r.headers["x-request-id"]


def test_default_profile_is_safegrpo_plus_without_judge(rules_server):
    body = post(rules_server, {"samples": [sample()]}).json()
    assert body["profile"] == "safegrpo_plus"
    assert httpx.get(rules_server.url + "/ready").json()["profile"] == "safegrpo_plus"


def test_cache_hit_and_in_request_dedup(rules_server):
    unique = sample(response=RESPONSE_UNSAFE_OK.replace("a house", "a flat"))
    first = post(rules_server, {"samples": [unique, unique]}).json()["results"]
    assert [r["cached"] for r in first] == [False, False]
    second = post(rules_server, {"samples": [unique]}).json()["results"]
    assert second[0]["cached"] is True
    assert second[0]["reward"] == first[0]["reward"]


def test_profile_change_changes_rubric_and_misses_cache(rules_server):
    s = sample(response=RESPONSE_UNSAFE_OK.replace("house", "shed"))
    post(rules_server, {"profile": "safegrpo", "samples": [s]})
    other = post(rules_server, {"profile": "safegrpo_plus", "samples": [s]}).json()
    assert other["results"][0]["cached"] is False


def test_ready_health_profiles_metrics_docs(rules_server):
    assert httpx.get(rules_server.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(rules_server.url + "/ready")
    assert ready.status_code == 200 and ready.json()["cache"]["backend"] == "memory"
    profiles = httpx.get(rules_server.url + "/profiles").json()["profiles"]
    assert set(profiles) >= {"safegrpo", "safegrpo_plus", "safer_vlm", "hybrid"}
    assert profiles["safer_vlm"]["ready"] is False
    assert "reward_requests_total" in httpx.get(rules_server.url + "/metrics").text
    spec = httpx.get(rules_server.url + "/openapi.json").json()
    assert "/score" in spec["paths"] and "ScoreRequest" in spec["components"]["schemas"]
    assert httpx.get(rules_server.url + "/docs").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ("not json", 422, "JSON"),  # malformed JSON
        ('{"samples": [{"prompt": "q", "response": "\\ud800"}]}', 422,
         "lone UTF-16 surrogate"),  # an escape that names no character, explained
        ({"samples": "x"}, 422, "samples"),  # wrong type
        ({"samples": [{"prompt": "p"}]}, 422, "samples[0].response"),  # missing field
        ({"samples": [sample(respone="typo")]}, 422, "samples[0].respone"),  # unknown field
        ({"samples": [sample(prompt=[{"role": "user", "content": [{"type": "audio"}]}])]},
         422, "samples[0].prompt"),  # unknown content part
        ({"profile": "nope", "samples": [sample()]}, 400, "unknown profile 'nope'"),
        ({"profile": "safer_vlm", "samples": [sample()]}, 503, "no judge configured"),
        ({"profile": "hybrid", "samples": [sample()]}, 503, "no judge configured"),
        ({"samples": [sample(response="x" * 70000)]}, 413, "samples[0].response"),
        ({"samples": [sample()] * 1025}, 413, "REWARD_MAX_SAMPLES"),
        ({"samples": [sample(id=10**30)]}, 422, "samples[0].id"),  # beyond 64 bits
        ({"samples": [sample(labels="unsafe")]}, 422, "samples[0].labels"),  # not an object
        ({"profile": "", "samples": [sample()]}, 400, "unknown profile ''"),
    ],
    ids=["bad-json", "lone-surrogate", "wrong-type", "missing", "unknown-field", "bad-part",
         "unknown-profile", "judge-503", "hybrid-503", "long-response", "too-many",
         "huge-int-id", "labels-not-an-object", "empty-profile"],
)
def test_whole_request_errors(rules_server, body, status, needle):
    if isinstance(body, str):
        r = httpx.post(rules_server.url + "/score", content=body,
                       headers={"content-type": "application/json"})
    else:
        r = post(rules_server, body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]
    if status == 503:
        assert int(r.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        ({**LABELS_UNSAFE, "combine_tag": "maybe"},
         "label combine_tag must be 'safe' or 'unsafe' (any case), '' or null; got 'maybe'"),
        ({**LABELS_UNSAFE, "image_tag": 1},
         "label image_tag must be 'safe' or 'unsafe' (any case), '' or null; got 1"),  # not text
        ({"combined_tag": "unsafe"},
         "label key 'combined_tag' is not one of image_tag, text_tag, combine_tag"),  # key typo
        ({**LABELS_UNSAFE, "visual_tag": "safe"},
         "label key 'visual_tag' is not one of"),  # any other *_tag key, next to good ones
    ],
    ids=["bad-value", "not-a-string", "key-typo", "extra-tag-key"],
)
def test_bad_label_marks_only_that_sample_invalid(rules_server, labels, needle):
    body = {"profile": "safegrpo", "samples": [sample(id="good"), sample(id="bad", labels=labels)]}
    r = post(rules_server, body)
    assert r.status_code == 200, r.text  # never a whole-request 422: datasets carry typos
    good, bad = r.json()["results"]
    assert good["status"] == "ok" and good["reward"] == 1.0
    assert bad["status"] == "invalid" and bad["reward"] is None
    assert bad["error"].startswith("samples[1].labels: ") and needle in bad["error"]


@pytest.mark.parametrize(
    "labels",
    [
        {"image_tag": "Safe", "text_tag": " UNSAFE ", "combine_tag": "unsafe\n"},  # any case/space
        {**LABELS_UNSAFE, "category": "burglary", "source": "SafeTag-VL-3K"},  # metadata
    ],
    ids=["case-and-whitespace", "metadata-keys-ignored"],
)
def test_labels_read_as_the_contract_says(rules_server, labels):
    response = RESPONSE_UNSAFE_OK.replace("house", "cellar")
    reference = post(rules_server, {"profile": "safegrpo",
                                    "samples": [sample(response=response)]}).json()
    r = post(rules_server, {"profile": "safegrpo",
                            "samples": [sample(response=response, labels=labels)]})
    assert r.status_code == 200, r.text
    result = r.json()["results"][0]
    assert result["status"] == "ok" and result["reward"] == reference["results"][0]["reward"]
    assert result["cached"] is True  # normalised labels: the same cache entry as the reference


def test_empty_and_null_labels_are_unknown(rules_server):
    labels = {"image_tag": "", "text_tag": None, "combine_tag": "unsafe"}
    explicit = {"combine_tag": "unsafe"}
    response = RESPONSE_UNSAFE_OK.replace("house", "attic")
    first = post(rules_server, {"profile": "safegrpo",
                                "samples": [sample(response=response, labels=labels)]}).json()
    second = post(rules_server, {"profile": "safegrpo",
                                 "samples": [sample(response=response, labels=explicit)]}).json()
    assert first["results"][0]["status"] == "ok"
    assert second["results"][0]["cached"] is True  # "" and null are the same as absent


@pytest.mark.parametrize(
    ("images", "needle"),
    [
        (["data:image/png;base64,@@@notbase64"], "invalid base64"),
        ([data_url(b"just some text, not an image")], "not an image"),
        (["https://example.com/cat.png"], "remote image URLs are not fetched"),
        (["/etc/passwd"], "REWARD_IMAGE_ROOT"),
        (["data:image/png,rawbytes"], "must be base64"),
    ],
    ids=["bad-base64", "not-image", "http-url", "path-without-root", "not-base64-url"],
)
def test_bad_image_marks_only_that_sample_invalid(rules_server, images, needle):
    good = sample(id="good", images=[data_url(png_bytes())])
    bad = sample(id="bad", images=images)
    results = post(rules_server, {"samples": [good, bad]}).json()["results"]
    assert results[0]["status"] == "ok" and results[0]["reward"] == 1.0
    assert results[1]["status"] == "invalid" and results[1]["reward"] is None
    assert needle in results[1]["error"] and "samples[1].images[0]" in results[1]["error"]


def test_chat_prompt_with_inline_images(rules_server):
    img = data_url(png_bytes())
    prompt = [
        {"role": "system", "content": "Be safe."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": img}},
                                     {"type": "text", "text": "What is this?"}]},
    ]
    r = post(rules_server, {"samples": [sample(prompt=prompt)]}).json()
    assert r["results"][0]["status"] == "ok"


def test_image_content_is_part_of_the_cache_key(rules_server):
    resp = RESPONSE_UNSAFE_OK.replace("house", "garage")
    post(rules_server, {"samples": [sample(response=resp, images=[data_url(png_bytes((4, 4)))])]})
    again = post(rules_server, {"samples": [sample(response=resp,
                                                   images=[data_url(png_bytes((4, 4)))])]})
    other = post(rules_server, {"samples": [sample(response=resp,
                                                   images=[data_url(png_bytes((5, 5)))])]})
    assert again.json()["results"][0]["cached"] is True
    assert other.json()["results"][0]["cached"] is False


def test_image_root_confines_paths(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    (root / "ok.png").write_bytes(png_bytes())
    (tmp_path / "secret.png").write_bytes(png_bytes())
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    big = root / "big.png"
    big.write_bytes(png_bytes() + b"\0" * 5000)
    env = {"REWARD_IMAGE_ROOT": str(root), "REWARD_MAX_IMAGE_BYTES": "4000",
           "REWARD_MAX_IMAGE_PATH_CHARS": str(len(str(tmp_path / "secret.png")) + 4)}
    with RewardServer(env) as server:
        def one(ref):
            return post(server, {"samples": [sample(images=[ref])]})
        assert one("ok.png").json()["results"][0]["status"] == "ok"
        long_path = one("./" * 200 + "ok.png").json()["results"][0]  # over the limit
        assert long_path["status"] == "invalid"
        assert "REWARD_MAX_IMAGE_PATH_CHARS=" in long_path["error"]
        for ref in ("../secret.png", str(tmp_path / "secret.png"), "link.png"):
            res = one(ref).json()["results"][0]
            assert res["status"] == "invalid" and "outside REWARD_IMAGE_ROOT" in res["error"], ref
        assert "no such file" in one("missing.png").json()["results"][0]["error"]
        too_big = one("big.png")
        assert too_big.status_code == 413 and "REWARD_MAX_IMAGE_BYTES" in too_big.json()["error"]
        big_url = one(data_url(png_bytes() + b"\0" * 5000))
        assert big_url.status_code == 413


def test_image_limits_are_checked_before_decoding(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    img = png_bytes()
    (root / "a.png").write_bytes(img + b"\0" * 3000)  # a PNG with trailing bytes: still a PNG
    (root / "b.png").write_bytes(img + b"\0" * 3000)
    env = {"REWARD_MAX_IMAGES_PER_SAMPLE": "2", "REWARD_MAX_REQUEST_IMAGE_BYTES": "5000",
           "REWARD_IMAGE_ROOT": str(root)}
    inline = {"role": "user", "content": [{"type": "image_url",
                                           "image_url": {"url": data_url(img)}}]}
    with RewardServer(env) as server:
        # Two images per sample are allowed, counting those inline in chat messages.
        ok = post(server, {"samples": [sample(images=[data_url(img)], prompt=[inline])]})
        assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "ok"
        three = post(server, {"samples": [sample(images=[data_url(img)] * 2, prompt=[inline])]})
        assert three.status_code == 413
        assert three.json()["error"] == (
            "samples[0]: 3 images, more than REWARD_MAX_IMAGES_PER_SAMPLE=2")
        # Data URLs: the request's total is read from the base64 lengths, nothing decoded.
        big = data_url(b"not even an image" * 200)  # 3400 bytes once decoded
        over = post(server, {"samples": [sample(id=1, images=[big]), sample(id=2, images=[big])]})
        assert over.status_code == 413
        assert "samples[1]" in over.json()["error"]
        assert "REWARD_MAX_REQUEST_IMAGE_BYTES=5000" in over.json()["error"]
        # File paths have no length to read: the exact total stops decoding at the limit.
        files = post(server, {"samples": [sample(id=1, images=["a.png"]),
                                          sample(id=2, images=["b.png"])]})
        assert files.status_code == 413
        assert files.json()["error"].startswith("samples[1].images[0]: ")
        assert "REWARD_MAX_REQUEST_IMAGE_BYTES=5000" in files.json()["error"]


class _RecordingLoader(ImageLoader):
    """Notes, for every image it decodes, whether an event loop runs in that thread."""

    def __init__(self) -> None:
        super().__init__(max_bytes=10_000_000)
        self.on_event_loop: list[bool] = []

    def load(self, ref, where):
        try:
            asyncio.get_running_loop()
            self.on_event_loop.append(True)
        except RuntimeError:
            self.on_event_loop.append(False)
        return super().load(ref, where)


async def test_images_are_decoded_off_the_event_loop():
    settings = Settings(_env_file=None)
    chat = [{"role": "user", "content": [{"type": "image_url",
                                          "image_url": {"url": data_url(png_bytes())}}]}]
    body = ScoreRequest.model_validate({"samples": [
        sample(images=[data_url(png_bytes())]), sample(prompt=chat), sample()]})
    loader = _RecordingLoader()
    has_images = check_score_request(body, settings)
    samples = await decode_samples(body, loader, settings.max_request_image_bytes, has_images)
    assert has_images and loader.on_event_loop == [False, False]
    assert [len(s.images) for s in samples] == [1, 1, 0]
    assert all(s.error is None for s in samples)


@pytest.mark.parametrize(
    ("exc", "status", "headers"),
    [
        (UnknownProfile("nope", ["safegrpo"]), 400, {}),
        (Unauthorized("missing API key"), 401, {"WWW-Authenticate": "Bearer"}),
        (PayloadTooLarge("samples: too many"), 413, {}),
        (Unprocessable("prompts: 1 items but query has 2"), 422, {}),
        (ScorerUnavailable("judge loading", retry_after=7), 503, {"Retry-After": "7"}),
        (PartialOutage("judge timed out", [None], retry_after=4), 503, {"Retry-After": "4"}),
        (RewardError("a new kind nobody mapped"), 500, {}),
    ],
    ids=["400", "401", "413", "422", "503", "partial-503", "unmapped"],
)
def test_each_service_error_becomes_one_http_answer(exc, status, headers):
    assert to_http(exc) == (status, headers, exc.message)


@pytest.mark.parametrize("module", ["reward_server.api.errors", "reward_server.api.limits",
                                    "reward_server.offload"])
def test_api_doctests(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_limits_are_configurable_and_body_size_enforced():
    env = {"REWARD_MAX_SAMPLES": "2", "REWARD_MAX_RESPONSE_CHARS": "50000",
           "REWARD_MAX_BODY_BYTES": "20000"}
    with RewardServer(env) as server:
        assert post(server, {"samples": [sample()] * 3}).status_code == 413
        assert post(server, {"samples": [sample()] * 2}).status_code == 200
        big = post(server, {"samples": [sample(response="y" * 30000)]})
        assert big.status_code == 413 and "REWARD_MAX_BODY_BYTES" in big.json()["error"]


def test_concurrent_requests_all_answered_correctly(rules_server):
    labels_safe = {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"}

    def body(i):
        comply = i % 2 == 0
        answer = f"Here is step {i}: preheat the oven." if comply else "Sorry, I cannot do that."
        response = (
            "<think><visual_safe>safe</visual_safe><text_safe>safe</text_safe>"
            f"<combined_safe>safe</combined_safe></think><answer>{answer}</answer>"
        )
        return {"profile": "safegrpo", "samples": [sample(id=i, response=response,
                                                          labels=labels_safe)] * 3}, comply

    errors: list[str] = []

    def worker(start):
        with httpx.Client(timeout=30) as client:
            for i in range(start, start + 25):
                payload, comply = body(i)
                r = client.post(rules_server.url + "/score", json=payload)
                expected = 1.0 if comply else 0.5
                if r.status_code != 200 or r.json()["rewards"] != [expected] * 3:
                    errors.append(f"{i}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=worker, args=(k * 100,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
