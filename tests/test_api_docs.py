"""The interactive API docs work offline, their examples score, and every error has one shape.

* ``/docs`` (Swagger UI) and ``/redoc`` load their JavaScript, CSS and favicon from the
  service itself: the served HTML names no external URL, and the pages render in a real
  headless Chromium whose every non-loopback request fails.
* The request body ``/docs`` pre-fills for a route is taken from ``/openapi.json`` and
  posted as it is: it must score (200, no null reward).
* 404, 405 and an unexpected 500 answer ``{"error": ...}`` like every other error, which
  is the ``ErrorResponse`` the OpenAPI document declares.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.wire_check import closed

#: Routes that take a JSON body; a new one must be added here (and get an example).
BODY_ROUTES = ("/score", "/get_reward")

#: Headless Chromium with no way out but loopback: every request goes to a proxy on the
#: discard port (nothing listens there, so the request fails) except loopback, which
#: Chromium never sends through a proxy; and no host name resolves. Nothing in the
#: background (updates, sync, first-run pages) either.
OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=10000",
)


@pytest.fixture(scope="module")
def spec(rules_server) -> dict[str, Any]:
    return httpx.get(rules_server.url + "/openapi.json").json()


def error_problems(spec: dict[str, Any], body: bytes) -> list[str]:
    """Why ``body`` is not the ``ErrorResponse`` of ``spec`` (read strictly; empty if it is)."""
    schema = {"$ref": "#/components/schemas/ErrorResponse",
              "components": closed(spec["components"])}
    return [e.message for e in Draft202012Validator(schema).iter_errors(json.loads(body))]


# ------------------------------------------------------------------------ served pages


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_name_no_external_url_and_their_assets_are_served(rules_server, page):
    r = httpx.get(rules_server.url + page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", r.text), r.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for asset in assets:
        got = httpx.get(rules_server.url + asset)
        assert got.status_code == 200, asset
        assert got.headers["content-type"].startswith(kinds[Path(asset).suffix]), asset
        assert len(got.content) > 1000, asset


async def test_the_docs_pages_follow_the_root_path_of_a_proxy():
    from reward_server.app import create_app
    from reward_server.settings import Settings

    transport = httpx.ASGITransport(app=create_app(Settings()), root_path="/reward")
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        html = (await client.get("/docs")).text
    assert "'/reward/openapi.json'" in html
    assert '"/reward/docs/assets/swagger-ui-bundle.js"' in html


# ------------------------------------------------------------------------ examples


def request_example(spec: dict[str, Any], operation: dict[str, Any]) -> Any:
    """The body Swagger UI pre-fills: the media type's example(s), else the schema's."""
    media = operation["requestBody"]["content"]["application/json"]
    if "example" in media:
        return media["example"]
    if media.get("examples"):
        return next(iter(media["examples"].values()))["value"]
    schema = media.get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    examples = schema.get("examples") or ([schema["example"]] if "example" in schema else [])
    return examples[0] if examples else None


def test_the_body_routes_are_the_ones_checked_for_examples(spec):
    with_body = {path for path, ops in spec["paths"].items()
                 for op in ops.values() if "requestBody" in op}
    assert with_body == set(BODY_ROUTES)


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_the_prefilled_example_of_every_body_route_scores(rules_server, spec, path):
    example = request_example(spec, spec["paths"][path]["post"])
    assert example is not None, f"POST {path} has no request example in /openapi.json"
    r = httpx.post(rules_server.url + path, json=example, timeout=30)
    assert r.status_code == 200, r.text
    rewards = r.json()["rewards"]
    assert rewards and None not in rewards, r.text


def test_the_score_example_shows_images_labels_and_a_rules_profile(spec):
    example = request_example(spec, spec["paths"]["/score"]["post"])
    sample = example["samples"][0]
    assert example["profile"] == "safegrpo_plus"
    assert sample["images"][0].startswith("data:image/png;base64,")
    assert sample["labels"]["combine_tag"] == "unsafe"
    assert "<answer>" in sample["response"]


# ------------------------------------------------------------------------ one error shape


def test_every_declared_error_of_the_scoring_routes_is_error_response(spec):
    for path in BODY_ROUTES:
        responses = spec["paths"][path]["post"]["responses"]
        errors = {status: r for status, r in responses.items() if int(status) >= 400}
        assert errors, path
        for status, declared in errors.items():
            schema = declared["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_path_is_404_in_the_error_shape(rules_server, spec, method):
    r = httpx.request(method, rules_server.url + "/nope", json={})
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == f"not found: {method} /nope (the routes are listed at /docs)"
    assert error_problems(spec, r.content) == []


def test_a_missing_docs_asset_is_404_in_the_error_shape(rules_server, spec):
    r = httpx.get(rules_server.url + "/docs/assets/nope.js")
    assert r.status_code == 404 and error_problems(spec, r.content) == []


def test_a_wrong_method_is_405_with_allow_in_the_error_shape(rules_server, spec):
    # urllib, not httpx: tests/wire_check.py checks every httpx answer from /score against
    # the route's declared operations, and GET /score is none; the body is checked here
    # against ErrorResponse instead.
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(rules_server.url + "/score", timeout=30)
    answer = caught.value
    body = answer.read()
    assert answer.code == 405 and answer.headers["Allow"] == "POST"
    assert json.loads(body) == {"error": "method GET not allowed on /score; allowed: POST"}
    assert error_problems(spec, body) == []

    r = httpx.post(rules_server.url + "/health")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json()["error"] == "method POST not allowed on /health; allowed: GET"


async def test_an_unexpected_exception_is_500_in_the_error_shape_without_its_message():
    from reward_server.app import create_app
    from reward_server.settings import Settings

    app = create_app(Settings())

    async def broken() -> None:
        raise RuntimeError("internal state the client must not see")

    app.add_api_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        r = await client.get("/broken")
        spec = (await client.get("/openapi.json")).json()
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert "internal state" not in r.text
    assert r.json()["error"].startswith("internal server error")
    assert error_problems(spec, r.content) == []


# ------------------------------------------------------------------------ real browser


def _chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _install_chromium() -> str:
    """Install Debian's ``chromium`` with apt; the reason when that is not possible."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    sudo: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return "not root and no sudo"
        sudo = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run([*sudo, *cmd], capture_output=True, text=True, env=env,
                              timeout=1200, check=False)
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}"
    return "apt-get install chromium succeeded but no chromium binary is on PATH"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of a Chromium binary, installed with apt when missing (skips only if it cannot)."""
    binary = _chromium_binary()
    if binary is None:
        why = _install_chromium()
        binary = _chromium_binary()
        if binary is None:
            pytest.skip(f"chromium is not installed and could not be installed: {why}")
    return binary


class Browser:
    """One headless Chromium run per call, each with a fresh profile under ``tmp``."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.binary = binary
        self.tmp = tmp
        self.runs = 0

    def __call__(self, url: str, *args: str) -> subprocess.CompletedProcess[str]:
        self.runs += 1
        profile = self.tmp / f"chromium-profile-{self.runs}"
        cmd = [self.binary, *OFFLINE_FLAGS, f"--user-data-dir={profile}", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def browser(chromium, tmp_path) -> Browser:
    return Browser(chromium, tmp_path)


def test_the_browser_cannot_reach_anything_but_loopback(browser):
    page = browser("http://example.com/", "--dump-dom")
    assert "Example Domain" not in page.stdout
    assert "net::ERR_" in page.stdout + page.stderr, page.stderr[-2000:]


def test_docs_renders_offline_with_every_operation_and_the_score_example(
    rules_server, spec, browser
):
    score = spec["paths"]["/score"]["post"]
    # A deep link opens /score's operation, so its example body is rendered too.
    url = f"{rules_server.url}/docs#/{score['tags'][0]}/{score['operationId']}"
    page = browser(url, "--dump-dom")
    dom = page.stdout
    assert 'id="swagger-ui"' in dom, page.stderr[-2000:]
    assert "Failed to load API definition" not in dom
    operations = re.findall(r'class="opblock opblock-(\w+)[^"]*"[^>]*>', dom)
    assert len(operations) == sum(len(ops) for ops in spec["paths"].values()), operations
    shown = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert shown == set(spec["paths"]), shown
    opened = f'id="operations-{score["tags"][0]}-{score["operationId"]}"'
    assert f'class="opblock opblock-post is-open" {opened}' in dom
    assert "safegrpo_plus" in dom and "combine_tag" in dom  # the pre-filled example


def test_redoc_renders_offline_with_every_operation(rules_server, spec, browser):
    page = browser(rules_server.url + "/redoc", "--dump-dom")
    ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    rendered = set(re.findall(r'id="operation/(\w+)"', page.stdout))
    assert rendered == ids, page.stderr[-2000:]


def test_a_screenshot_of_docs_offline_shows_a_rendered_page(rules_server, browser, tmp_path):
    from PIL import Image

    shot = tmp_path / "docs.png"
    page = browser(rules_server.url + "/docs", f"--screenshot={shot}", "--window-size=1280,1600")
    assert shot.is_file(), page.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1280, 1600)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    # A blank or error page has a handful of colours; rendered text, badges and the
    # coloured GET/POST labels of the operations list have hundreds (anti-aliasing).
    assert len(colours) > 200, len(colours)
    assert shot.stat().st_size > 20_000
