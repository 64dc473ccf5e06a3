"""The Serve modules' failure paths, without a cluster: a route that raises through the
handle path, and the judge backend against a judge deployment that is busy or silent."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ray.exceptions import RayTaskError

from clients import RewardClient
from clients.errors import RewardServiceError
from clients.ray_handle import HANDLE_URL, ServeHandleTransport
from reward_server.judge.backends.base import (
    LOADED,
    LOADING,
    UNREACHABLE,
    JudgeBackend,
    NoAnswer,
)
from reward_server.judge.config import JudgeConfig
from reward_server.ray_serve.asgi_call import call_asgi
from reward_server.ray_serve.judge_backend import RayJudgeBackend
from reward_server.ray_serve.judge_server import JudgeDescription, RewardJudge

pytestmark = [
    pytest.mark.timeout(60),  # a judge that never answers must fail a test, not hang it
    # RewardJudge.__del__ is async (Serve awaits it); a replica built here is never deleted
    # by Serve
    pytest.mark.filterwarnings("ignore:coroutine 'RewardJudge.__del__':RuntimeWarning"),
]


def raising_app() -> FastAPI:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise KeyError("a bug in a route")

    return app


def test_call_asgi_returns_the_500_a_raising_route_sent(caplog: pytest.LogCaptureFixture) -> None:
    # Starlette's ServerErrorMiddleware sends a 500, then re-raises for the server to log:
    # the handle path answers that 500, as uvicorn does, and logs the error.
    with caplog.at_level(logging.ERROR, logger="reward_server.ray_serve.asgi_call"):
        status, _, body = asyncio.run(call_asgi(raising_app(), "GET", "/boom", [], b""))
    assert status == 500
    assert body == b"Internal Server Error"
    assert any("KeyError" in (r.exc_text or "") for r in caplog.records)


def test_call_asgi_raises_what_an_app_raised_before_answering() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("no response at all")

    with pytest.raises(KeyError):
        asyncio.run(call_asgi(app, "GET", "/", [], b""))


class FailingCall:
    """What ``handle.handle_request.remote(...)`` returns when the replica raised."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self, timeout_s: float | None = None) -> Any:
        raise self.exc

    def cancel(self) -> None:
        pass


class RaisingHandle:
    def __init__(self, exc: BaseException) -> None:
        self.handle_request = self
        self.exc = exc
        self.calls = 0

    def remote(self, *args: Any) -> FailingCall:
        self.calls += 1
        return FailingCall(self.exc)


def test_a_replica_error_reaches_the_client_as_a_server_error() -> None:
    # Any RayTaskError other than a lost replica or back-pressure is the service's 500,
    # inside the clients' exception tree (not a raw RayTaskError).
    exc = RayTaskError("handle_request", "Traceback ...", ValueError("bug")).as_instanceof_cause()
    handle = RaisingHandle(exc)
    client = RewardClient(HANDLE_URL, transport=ServeHandleTransport(handle), max_retries=0)
    with pytest.raises(RewardServiceError) as raised:
        client.score([{"id": "a", "prompt": "p", "response": "r"}], "safegrpo")
    assert raised.value.status == 500
    assert "ValueError" in str(raised.value)
    assert handle.calls == 1


def test_the_transport_answers_a_raw_httpx_500_for_a_replica_error() -> None:
    exc = RayTaskError("handle_request", "Traceback ...", ValueError("bug")).as_instanceof_cause()
    with httpx.Client(transport=ServeHandleTransport(RaisingHandle(exc))) as http:
        reply = http.get(HANDLE_URL + "/health")
    assert reply.status_code == 500


# --- the judge deployment under load ---------------------------------------------------


def judge_config(timeout_s: float) -> JudgeConfig:
    return JudgeConfig(backend="transformers", model="fake", mode="generate", max_batch=8,
                       max_wait_ms=1, max_queue=64, timeout_s=timeout_s, max_new_tokens=8)


class SlowModel(JudgeBackend):
    """A model that takes ``run_s`` a batch (``None``: until ``release`` is set), and counts
    how many batches it runs at once."""

    name = "transformers"

    def __init__(self, config: JudgeConfig, run_s: float | None) -> None:
        super().__init__(config)
        self.run_s = run_s
        self.release = asyncio.Event()
        self.running = 0
        self.most_at_once = 0

    async def load(self) -> None:
        self.set_state(LOADED, "in memory")

    async def generate(self, inputs: Any, max_new_tokens: int) -> list[str]:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.run_s is None:
                await self.release.wait()
            else:
                await asyncio.sleep(self.run_s)
            return [f"answer {x}" for x in inputs]
        finally:
            self.running -= 1

    async def next_token_probs(self, inputs: Any, candidates: Any) -> list[dict[str, float]]:
        raise NotImplementedError


async def judge_replica(model: SlowModel) -> RewardJudge:
    replica = object.__new__(RewardJudge)  # as Serve builds it: an async constructor
    await replica.__init__(model)
    return replica


def test_a_judge_replica_runs_one_batch_at_a_time_and_times_each_from_its_start() -> None:
    # Four batches of 0.4 s each with a 1 s timeout: the last waits 1.2 s before it runs, so
    # a timeout counted from arrival would fail it; counted from its start, none fails.
    async def main() -> tuple[list[list[Any]], SlowModel]:
        model = SlowModel(judge_config(timeout_s=1.0), run_s=0.4)
        replica = await judge_replica(model)
        return await asyncio.gather(*(replica.generate([i], 8) for i in range(4))), model

    answers, model = asyncio.run(main())
    assert answers == [[f"answer {i}"] for i in range(4)]
    assert model.most_at_once == 1


def test_a_busy_judge_replica_describes_itself_and_a_batch_over_the_timeout_is_no_answer():
    async def main() -> tuple[Any, list[Any]]:
        model = SlowModel(judge_config(timeout_s=0.2), run_s=None)  # never finishes
        replica = await judge_replica(model)
        batches = [asyncio.ensure_future(replica.generate(["a", "b"], 8)) for _ in range(2)]
        await asyncio.sleep(0)
        described = replica.describe()  # answered while a batch holds the model
        return described, await asyncio.gather(*batches)

    described, answers = asyncio.run(main())
    assert described.state == LOADED
    for batch in answers:
        assert [type(a) for a in batch] == [NoAnswer, NoAnswer]
        assert batch[0].kind == "timeout"


class Ref:
    """A ``DeploymentResponse``: awaitable, cancellable; ``hang`` never answers."""

    def __init__(self, value: Any = None, hang: bool = False) -> None:
        self.value, self.hang, self.cancelled = value, hang, False

    def __await__(self) -> Any:
        return self._get().__await__()

    async def _get(self) -> Any:
        if self.hang:
            await asyncio.Event().wait()
        return self.value

    def cancel(self) -> None:
        self.cancelled = True


class FakeJudgeHandle:
    """A handle to ``RewardJudge`` whose probes answer while ``answering``."""

    def __init__(self) -> None:
        self.answering = True
        self.probes: list[Ref] = []
        self.describe = self.generate = self
        self.description = JudgeDescription(
            name="transformers", model="fake", state=LOADED, detail="in memory",
            sees_images=False, score_prefix_space=False, identity={"weights": "abc"})

    def remote(self, *args: Any) -> Ref:
        if not args:  # describe()
            self.probes.append(Ref(self.description, hang=not self.answering))
            return self.probes[-1]
        inputs, _ = args
        return Ref([f"answer {x}" for x in inputs])


async def until(check: Any, what: str, bound_s: float = 10) -> None:
    for _ in range(int(bound_s / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"never: {what}")


def test_unanswered_probes_are_cancelled_and_a_batch_answered_is_proof_of_life() -> None:
    async def main() -> None:
        handle = FakeJudgeHandle()
        backend = RayJudgeBackend(judge_config(timeout_s=5), handle, probe_s=0.02)
        assert backend.state == LOADING
        loop = asyncio.ensure_future(backend.load())
        try:
            await until(lambda: backend.state == LOADED, "the first description")
            assert backend.served_identity() == {"weights": "abc"}
            handle.answering = False
            await until(lambda: backend.state == UNREACHABLE, "unreachable")
            hung = [p for p in handle.probes if p.hang]
            assert hung and hung[0].cancelled
            assert await backend.generate(["x"], 8) == ["answer x"]
            assert backend.state == LOADED  # before any probe answered again
            assert not handle.answering
        finally:
            loop.cancel()

    asyncio.run(main())
