"""``RewardIngress``: the service's FastAPI app as Serve's HTTP ingress (made a deployment
by ``application``).

The app is ``reward_server.app.create_app(Settings())``, built on the replica when it
starts (``__serve_build_asgi_app__``): the same routes, bodies, errors, limits, metrics and
OpenAPI as ``python -m reward_server``. Serve runs its lifespan, so the cache (Redis, shared
by every replica), the scoring service and the judge engine are built as under uvicorn.
With a judge deployment bound, the engine's backend is ``RayJudgeBackend``; without one,
the judge (if any) is built from ``REWARD_JUDGE_*`` as usual (``openai``: the ingress calls
the OpenAI-compatible server itself).

``handle_request`` is the path for trainers on the cluster: one HTTP request, sent with a
``DeploymentHandle`` rather than over a socket, answered by the same app in process
(``asgi_call``). ``clients.ray_handle.ServeHandleTransport`` makes it an httpx transport, so
the clients' payloads, chunking and retries are those of HTTP.

What uvicorn adds under ``python -m reward_server`` and Serve does not run: the connection
deadlines and the in-flight bound of ``reward_server.serving`` (Serve's proxy terminates
the connections; ``max_ongoing_requests`` and ``max_queued_requests`` bound the work).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from reward_server.app import create_app
from reward_server.ray_serve.asgi_call import Reply, call_asgi
from reward_server.settings import Settings


class RewardIngressApp:
    """The ingress replica (wrapped by ``serve.ingress()`` in ``application``).

    Args:
        judge: a ``DeploymentHandle`` to ``RewardJudge``, or ``None`` when the application
            has no judge deployment.
    """

    app: Any  # set by Serve's ingress wrapper to the app built below

    def __init__(self, judge: Any = None) -> None:
        self._judge = judge

    def __serve_build_asgi_app__(self) -> FastAPI:
        settings = Settings()
        backend = None
        if self._judge is not None and settings.has_judge:
            from reward_server.judge.factory import judge_config
            from reward_server.ray_serve.judge_backend import RayJudgeBackend

            backend = RayJudgeBackend(judge_config(settings), self._judge)
        return create_app(settings, judge_backend=backend)

    async def handle_request(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> Reply:
        """One HTTP request through the app, for callers holding a ``DeploymentHandle``.

        Args:
            method: the HTTP method.
            target: path and query (``/score``, ``/get_reward``, ``/ready``, ...).
            headers: the request's headers (``Authorization`` when ``REWARD_API_KEY`` is set).
            body: the request body (JSON bytes).

        Returns:
            ``(status, headers, body)``, exactly as the HTTP route answers.
        """
        return await call_asgi(self.app, method, target, headers, body)
