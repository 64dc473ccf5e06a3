"""What ``reward_server.serving`` needs of uvicorn's internal httptools protocol.

``DeadlineHttpProtocol`` subclasses ``uvicorn.protocols.http.httptools_impl.HttpToolsProtocol``,
which is not public API, so uvicorn is pinned to the range these tests passed on
(pyproject.toml). On a uvicorn that renamed a hook or an attribute the subclass uses, the
deadlines would silently stop applying, or a request would fail deep inside the protocol;
these tests name the missing piece instead. The deadlines themselves are tested through a
real server in ``test_availability.py`` and ``test_serving_edges.py``.
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

import pytest

UVICORN = version("uvicorn")
WHY = (f"reward_server/serving.py subclasses uvicorn's internal HttpToolsProtocol, and "
       f"uvicorn {UVICORN} is installed: serving.py is tested with the uvicorn range pinned "
       "in pyproject.toml; adapt the subclass to this uvicorn, then move the pin")

try:
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    from uvicorn.server import ServerState
except ImportError as exc:  # pragma: no cover - only on an incompatible uvicorn
    pytest.fail(f"{exc}: {WHY}", pytrace=False)

#: What the subclass reads or sets on uvicorn's protocol object, once a request is answered.
STATE = ["loop", "transport", "app", "url", "headers", "tasks", "server_state.default_headers",
         "cycle.response_started", "cycle.response_complete", "limit_concurrency",
         "timeout_keep_alive"]


def test_the_status_lines_the_subclass_writes_exist():
    for status in (400, 408, 503):
        assert isinstance(STATUS_LINE.get(status), bytes), f"STATUS_LINE[{status}]: {WHY}"


def test_every_hook_the_subclass_overrides_is_one_uvicorn_has():
    """An override of a method uvicorn does not call would never run: its deadline gone."""
    from reward_server.serving import DeadlineHttpProtocol

    hooks = {name: method for name, method in vars(DeadlineHttpProtocol).items()
             if inspect.isfunction(method) and not name.startswith("_")}
    assert "on_headers_complete" in hooks  # the list is the subclass's real overrides
    for name, ours in hooks.items():
        theirs = getattr(HttpToolsProtocol, name, None)
        assert theirs is not None, f"HttpToolsProtocol.{name} is gone: {WHY}"
        assert (list(inspect.signature(theirs).parameters)
                == list(inspect.signature(ours).parameters)), (
            f"HttpToolsProtocol.{name}{inspect.signature(theirs)} differs from the "
            f"override's {inspect.signature(ours)}: {WHY}")


async def _ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_uvicorns_protocol_keeps_the_state_the_subclass_reads():
    """uvicorn's own protocol (not the subclass, whose assignments would hide a rename)
    answers a request on a loopback socket and then holds every attribute the subclass uses."""
    config = Config(app=_ok, http="httptools", lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    made: list[HttpToolsProtocol] = []

    def protocol() -> HttpToolsProtocol:
        made.append(HttpToolsProtocol(config=config, server_state=state, app_state={}))
        return made[-1]

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert await asyncio.wait_for(reader.readexactly(2), 30) == b"ok"
        [conn] = made
        missing = [path for path in STATE if not _has(conn, path)]
        assert not missing, f"HttpToolsProtocol has no {', '.join(missing)}: {WHY}"
        assert conn.url == b"/x" and conn.headers == [(b"host", b"a")], WHY
        writer.close()
    finally:
        server.close()


def _has(obj: object, path: str) -> bool:
    for name in path.split("."):
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True
