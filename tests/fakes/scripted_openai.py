"""A small real OpenAI-compatible judge server for tests: replies are scripted per request.

It serves ``GET /v1/models``, ``GET /health`` and ``POST /v1/chat/completions`` on a free
loopback port (a :class:`~tests.fakes.http_server.FakeHTTPServer`), and records every chat
request. A *responder* decides each reply from the request:

* a ``str``: the assistant's text (``generate`` mode);
* ``TopLogprobs({"7": 0.6, "8": 0.4})``: the first token's ``top_logprobs`` (``logprob``
  mode), given as probabilities;
* ``HTTPFailure(500, "boom")``: an error status with an OpenAI-style error body;
* ``Delayed(seconds, reply)``: any of the above, later.

``stop()`` closes the socket (connections are then refused, as with a dead judge) and
``start()`` serves again on the same port. ``hang()`` keeps accepting connections but
answers nothing, readiness probes included, until ``resume()`` (a judge that froze);
``held`` counts the chat calls waiting in it and ``probes`` every ``GET`` received;
``root``, when set, is the served checkpoint's path in ``/v1/models`` (as vLLM gives it).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http_server import FakeHTTPServer, Reply, Request


@dataclass(frozen=True)
class TopLogprobs:
    probs: dict[str, float]


@dataclass(frozen=True)
class HTTPFailure:
    status: int
    message: str = "scripted failure"


@dataclass(frozen=True)
class Delayed:
    seconds: float
    reply: Any


@dataclass
class ChatRequest:
    """One recorded ``/v1/chat/completions`` call."""

    body: dict[str, Any]
    received: float = field(default_factory=time.monotonic)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def text(self) -> str:
        """All text of all messages, joined (to find a test's marker)."""
        out = []
        for m in self.messages:
            content = m.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out.extend(p.get("text", "") for p in content if isinstance(p, dict))
        return "\n".join(out)

    @property
    def images(self) -> list[str]:
        return [
            p["image_url"]["url"]
            for m in self.messages
            if isinstance(m.get("content"), list)
            for p in m["content"]
            if p.get("type") == "image_url"
        ]

    @property
    def is_retry(self) -> bool:
        """A retry continues the conversation: judge's first reply + a follow-up turn."""
        return sum(1 for m in self.messages if m.get("role") == "user") > 1

    @property
    def prefix(self) -> str | None:
        """The assistant prefix to continue (``logprob`` mode), if any."""
        if self.body.get("continue_final_message") and self.messages[-1]["role"] == "assistant":
            return self.messages[-1]["content"]
        return None


Responder = Callable[[ChatRequest], Any]


def verdict_json(
    tc=8, tg=8, ts=9, as_=9, ah=8, hal=0, con=0, rationale="scripted", **extra: Any
) -> str:
    """A judge answer with the contract's keys (keyword names shortened)."""
    return json.dumps(
        {
            "think_coherence": tc, "think_grounding": tg, "think_safety": ts,
            "answer_safety": as_, "answer_helpfulness": ah, "hallucination": hal,
            "contradiction": con, "rationale": rationale, **extra,
        }
    )


class ScriptedOpenAIServer:
    """The scripted judge (see module docstring), served by :class:`FakeHTTPServer`.

    Args:
        responder: request -> reply; may be replaced later through ``responder``.
        model: the served model name.
        port: the loopback port (a free one when omitted).
    """

    def __init__(self, responder: Responder, model: str = "scripted-judge",
                 port: int = 0) -> None:
        self.responder = responder
        self.model = model
        #: What ``/v1/models`` gives as ``root`` (vLLM: the checkpoint's path); settable.
        self.root: str | None = None
        self.requests: list[ChatRequest] = []
        self.probes = 0
        self.held = 0
        self._answering = threading.Event()
        self._answering.set()
        self._lock = threading.Lock()
        self._http = FakeHTTPServer(self._handle, port=port)

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return f"{self._http.url}/v1"

    def start(self) -> None:
        """Serve again on the same port after :meth:`stop`."""
        self._http.start()

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections (a judge that died)."""
        self._http.stop()

    def hang(self) -> None:
        """Accept connections but answer nothing (probes included) until :meth:`resume`."""
        self._answering.clear()

    def resume(self) -> None:
        """Answer again, the held requests first."""
        self._answering.set()

    def _wait_while_hung(self) -> None:
        while not self._answering.is_set() and not self._http.stopped.is_set():
            self._answering.wait(0.05)

    def matching(self, marker: str) -> list[ChatRequest]:
        """Recorded requests whose text holds ``marker``."""
        with self._lock:
            return [r for r in self.requests if marker in r.text]

    def __enter__(self) -> ScriptedOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, http: Request) -> Reply:
        if http.method == "GET":
            with self._lock:
                self.probes += 1
            self._wait_while_hung()
            if http.path == "/v1/models":
                entry = {"id": self.model, "object": "model"}
                if self.root is not None:  # vLLM's path of the served checkpoint
                    entry["root"] = self.root
                return Reply(200, {"object": "list", "data": [entry]})
            if http.path == "/health":
                return Reply(200, {})
            return Reply(404, {"error": {"message": "not found"}})
        body = http.json() or {}
        if http.path != "/v1/chat/completions":
            return Reply(404, {"error": {"message": "not found"}})
        if body.get("model") != self.model:
            return Reply(404, {"error": {"message": f"model {body.get('model')} unknown"}})
        request = ChatRequest(body, headers=http.headers)
        with self._lock:
            self.requests.append(request)
            self.held += 1
        try:
            self._wait_while_hung()
        finally:
            with self._lock:
                self.held -= 1
        reply = self.responder(request)
        while isinstance(reply, Delayed):
            self._http.stopped.wait(reply.seconds)
            reply = reply.reply
        if isinstance(reply, HTTPFailure):
            return Reply(reply.status, {"error": {"message": reply.message}})
        return Reply(200, self._completion(body, reply))

    def _completion(self, body: dict[str, Any], reply: Any) -> dict[str, Any]:
        logprobs = None
        if isinstance(reply, TopLogprobs):
            top = [
                {"token": tok, "logprob": math.log(p) if p > 0 else -9999.0,
                 "bytes": list(tok.encode())}
                for tok, p in sorted(reply.probs.items(), key=lambda kv: -kv[1])
            ][: body.get("top_logprobs") or 1]
            first = top[0] if top else {"token": " ", "logprob": 0.0, "bytes": [32]}
            logprobs = {"content": [{**first, "top_logprobs": top}]}
            text = first["token"]
        else:
            text = str(reply)
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "model": self.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text},
                 "logprobs": logprobs, "finish_reason": "stop"}
            ],
        }
