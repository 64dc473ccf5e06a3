"""A small real OpenAI-compatible judge server for tests: replies are scripted per request.

It serves ``GET /v1/models``, ``GET /health`` and ``POST /v1/chat/completions`` on a free
loopback port from a thread (stdlib ``ThreadingHTTPServer``), and records every chat
request. A *responder* decides each reply from the request:

* a ``str``: the assistant's text (``generate`` mode);
* ``TopLogprobs({"7": 0.6, "8": 0.4})``: the first token's ``top_logprobs`` (``logprob``
  mode), given as probabilities;
* ``HTTPFailure(500, "boom")``: an error status with an OpenAI-style error body;
* ``Delayed(seconds, reply)``: any of the above, later.

``stop()`` closes the socket (connections are then refused, as with a dead judge) and
``start()`` serves again on the same port.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.servers import free_port


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
    """The scripted judge (see module docstring).

    Args:
        responder: request -> reply; may be replaced later through ``responder``.
        model: the served model name.
    """

    def __init__(self, responder: Responder, model: str = "scripted-judge",
                 port: int | None = None) -> None:
        self.responder = responder
        self.model = model
        self.port = port or free_port()
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer._connections.add(self.connection)

            def finish(self) -> None:
                with outer._lock:
                    outer._connections.discard(self.connection)
                super().finish()

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, {"object": "list",
                                     "data": [{"id": outer.model, "object": "model"}]})
                elif self.path == "/health":
                    self._send(200, {})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                if body.get("model") != outer.model:
                    self._send(404, {"error": {"message": f"model {body.get('model')} unknown"}})
                    return
                request = ChatRequest(body)
                with outer._lock:
                    outer.requests.append(request)
                reply = outer.responder(request)
                while isinstance(reply, Delayed):
                    time.sleep(reply.seconds)
                    reply = reply.reply
                if isinstance(reply, HTTPFailure):
                    self._send(reply.status, {"error": {"message": reply.message}})
                    return
                self._send(200, outer._completion(body, reply))

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

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

    def matching(self, marker: str) -> list[ChatRequest]:
        """Recorded requests whose text holds ``marker``."""
        with self._lock:
            return [r for r in self.requests if marker in r.text]

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections (a judge that died)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ScriptedOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
