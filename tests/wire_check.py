"""Every ``/score`` and ``/get_reward`` answer the tests receive must match ``/openapi.json``.

The service writes its JSON with orjson, outside FastAPI's response validation, so nothing
at run time stops the body from drifting away from the schema clients generate code from.
This module closes that gap for the whole test suite: every httpx request a test makes
(``httpx.post``, ``Client``, ``AsyncClient``, the project's own clients) goes through a
recorder, and each answer from the reward service to one of the scoring routes is checked,
when the test ends, against the schema the *answering server* publishes:

* the status must be declared for the route (200, and the 4xx/5xx in ``responses=``);
* the body must validate against the declared schema, read strictly: an object may not
  carry a property its schema does not declare (pydantic leaves ``additionalProperties``
  open, which would let an undeclared field slip through).

Answers are recognised as the service's by the ``x-request-id`` header its middleware adds
(fake servers do not send it). The server's ``/openapi.json`` is fetched the first time it
answers anything (usually the start-up ``/health`` poll, while it is surely up), through
the same client, and kept per base URL. Bodies are checked when the test ends, so load
tests do not pay for validation while they measure.

The fixtures are activated for every test by importing them in ``tests/conftest.py``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

CHECKED_PATHS = ("/score", "/get_reward")
SERVICE_TITLE = "Safety reward service"


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists ``properties`` closed to undeclared ones.

    >>> closed({"type": "object", "properties": {"a": {"type": "integer"}}})
    {'type': 'object', 'properties': {'a': {'type': 'integer'}}, 'additionalProperties': False}
    """
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


_VALIDATORS: dict[tuple[int, str, str, int], Draft202012Validator | str] = {}


def _validator(
    spec: dict[str, Any], method: str, path: str, status: int
) -> Draft202012Validator | str:
    """The validator of this answer's declared schema, or why there is none."""
    key = (id(spec), method, path, status)
    if key not in _VALIDATORS:
        operation = spec.get("paths", {}).get(path, {}).get(method.lower())
        declared = None if operation is None else operation["responses"].get(str(status))
        schema = (declared or {}).get("content", {}).get("application/json", {}).get("schema")
        if operation is None:
            _VALIDATORS[key] = "the route is not in /openapi.json"
        elif declared is None:
            _VALIDATORS[key] = f"status not declared (declared: {sorted(operation['responses'])})"
        elif schema is None:
            _VALIDATORS[key] = "no JSON schema declared for this status"
        else:
            root = {**closed(schema), "components": closed(spec.get("components", {}))}
            _VALIDATORS[key] = Draft202012Validator(root)
    return _VALIDATORS[key]


def problems(spec: dict[str, Any], method: str, path: str, status: int, body: bytes) -> list[str]:
    """Why this answer does not match ``spec`` (empty when it does)."""
    where = f"{method} {path} -> {status}"
    validator = _validator(spec, method, path, status)
    if isinstance(validator, str):
        return [f"{where}: {validator}"]
    try:
        data = json.loads(body)
    except ValueError as exc:
        return [f"{where}: body is not JSON ({exc})"]
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    return [f"{where}: at {list(e.path)}: {e.message[:300]}" for e in errors[:5]]


@dataclass
class Answer:
    """One recorded answer of the service to a scoring route."""

    base_url: str
    method: str
    path: str
    status: int
    body: bytes


@dataclass
class WireRecorder:
    """Answers seen since the last ``verify`` and the specs of the servers that gave them."""

    specs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    checked: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def base_url(response: httpx.Response) -> str:
        url = response.request.url
        return f"{url.scheme}://{url.netloc.decode()}"

    def needs_spec(self, response: httpx.Response) -> bool:
        """Whether ``response`` is the service's and its server's spec is not known yet."""
        return "x-request-id" in response.headers and self.base_url(response) not in self.specs

    def add_spec(self, base: str, reply: httpx.Response) -> None:
        """Keep the server's ``/openapi.json`` reply (``None`` if it is not the service's)."""
        data = reply.json() if reply.status_code == 200 else {}
        self.specs[base] = data if data.get("info", {}).get("title") == SERVICE_TITLE else None

    def seen(self, response: httpx.Response) -> None:
        """Record ``response`` if it is the reward service's answer to a scoring route."""
        path = response.request.url.path
        if path not in CHECKED_PATHS or "x-request-id" not in response.headers:
            return
        try:
            body = response.content
        except httpx.ResponseNotRead:  # a streamed answer the test did not read
            return
        answer = Answer(self.base_url(response), response.request.method, path,
                        response.status_code, body)
        with self._lock:
            self.answers.append(answer)

    def verify(self) -> list[str]:
        """Check every recorded answer (identical ones once) and forget them."""
        with self._lock:
            answers, self.answers = self.answers, []
        found: list[str] = []
        done: set[bytes] = set()
        for a in answers:
            spec = self.specs.get(a.base_url)
            if spec is None:
                found.append(f"{a.method} {a.path}: {a.base_url}/openapi.json was not readable")
                continue
            digest = hashlib.sha256(
                f"{a.base_url} {a.method} {a.path} {a.status} ".encode() + a.body
            ).digest()
            if digest in done:
                continue
            done.add(digest)
            found.extend(problems(spec, a.method, a.path, a.status, a.body))
        self.checked += len(answers)
        return found


RECORDER = WireRecorder()


def _spec_url(base: str) -> str:
    return f"{base}/openapi.json"

_ORIGINAL_SEND: dict[str, Any] = {"sync": httpx.Client.send, "async": httpx.AsyncClient.send}


@pytest.fixture(scope="session", autouse=True)
def record_scoring_answers() -> Iterator[WireRecorder]:
    """For the whole session, every httpx answer passes through ``RECORDER.seen``."""
    sync_send, async_send = _ORIGINAL_SEND["sync"], _ORIGINAL_SEND["async"]

    # The spec is fetched through the client that got the answer (so an in-process
    # transport works too) and with the unpatched send (so that fetch is not recorded).
    def send(self: httpx.Client, request: httpx.Request, **kw: Any) -> httpx.Response:
        response = sync_send(self, request, **kw)
        if RECORDER.needs_spec(response):
            base = RECORDER.base_url(response)
            RECORDER.add_spec(base, sync_send(self, self.build_request("GET", _spec_url(base))))
        RECORDER.seen(response)
        return response

    async def asend(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> httpx.Response:
        response = await async_send(self, request, **kw)
        if RECORDER.needs_spec(response):
            base = RECORDER.base_url(response)
            spec = await async_send(self, self.build_request("GET", _spec_url(base)))
            RECORDER.add_spec(base, spec)
        RECORDER.seen(response)
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.Client, "send", send)
        patch.setattr(httpx.AsyncClient, "send", asend)
        yield RECORDER


@pytest.fixture(autouse=True)
def scoring_answers_match_openapi(record_scoring_answers: WireRecorder) -> Iterator[WireRecorder]:
    """Fail the test if any answer it received from a scoring route breaks the schema."""
    early = record_scoring_answers.verify()  # e.g. from a thread an earlier test left running
    assert not early, "responses received before this test do not match /openapi.json:\n" + (
        "\n".join(early))
    yield record_scoring_answers
    found = record_scoring_answers.verify()
    assert not found, "responses that do not match /openapi.json:\n" + "\n".join(found)
