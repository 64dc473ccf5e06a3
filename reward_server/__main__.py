"""``python -m reward_server [--host H] [--port P]``: settings from REWARD_* then uvicorn.

Start-up refuses a ``REWARD_*`` name that is no setting (a typo such as ``REWARD_PROFLE``
would otherwise be ignored) and prints configuration errors one line each. Once the socket
is bound, one line on stderr says where the service listens and how it scores.

Every start-up problem exits with code 1 after one ``reward_server:`` line on stderr: a
setting, an address it cannot listen on (a port in use), or an app that failed to start (a
judge that did not load; its traceback is logged before that line).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from typing import Any

from pydantic import ValidationError


def _settings_help() -> str:
    from reward_server.settings import Settings

    lines = ["settings (REWARD_* environment variables or .env lines):"]
    for name, info in Settings.model_fields.items():
        default = "unset" if info.default is None else info.default
        lines.append(f"  REWARD_{name.upper():<24} {info.description} (default: {default})")
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reward_server",
        description="Serve SafeGRPO / SaFeR-VLM rewards over HTTP. Other settings come from "
        "REWARD_* environment variables or a .env file (listed below).",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="bind address (REWARD_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="bind port (REWARD_PORT, default 8000)")
    parser.add_argument("--log-level", help="REWARD_LOG_LEVEL (default warning)")
    return parser


def _fail(lines: list[str]) -> None:
    for line in lines:
        print(f"reward_server: {line}", file=sys.stderr)
    sys.exit(1)


def serving_line(settings: Any, host: str, port: int) -> str:
    """``reward_server: serving on http://127.0.0.1:8000 (profile safegrpo_plus, cache memory)``.

    The cache is named as ``/ready`` names its backend (``memory``, ``redis``), or ``off``.
    """
    from reward_server.cache import LRUCache, RedisCache

    cache = (RedisCache.name if settings.redis_url
             else LRUCache.name if settings.cache_size > 0 else "off")
    judge = (f", judge {settings.judge_backend} {settings.judge_model}"
             if settings.has_judge else "")
    where = f"[{host}]" if ":" in host else host
    return (f"reward_server: serving on http://{where}:{port} "
            f"(profile {settings.default_profile}{judge}, cache {cache})")


class _BindError(logging.Filter):
    """Keeps the ``OSError`` uvicorn logs when it cannot bind (then it exits), so that start-up
    says it in one ``reward_server:`` line instead of a log record."""

    def __init__(self) -> None:
        super().__init__()
        self.error: OSError | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, OSError):
            self.error = record.msg
            return False
        return True


def bind_error_line(host: str, port: int, exc: OSError) -> str:
    """The one line for an address the service cannot listen on.

    >>> bind_error_line("::1", 8000, OSError(errno.EADDRINUSE, "bind failed")).split(" (")[0]
    'cannot listen on [::1]:8000: address already in use'
    """
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    hint = {
        errno.EADDRINUSE: " (another process has the port: stop it, or choose another port "
                          "with --port or REWARD_PORT)",
        errno.EACCES: " (ports below 1024 need privileges: choose another with --port or "
                      "REWARD_PORT)",
        errno.EADDRNOTAVAIL: " (no interface of this machine has that address: see "
                             "--host or REWARD_HOST)",
    }.get(exc.errno or 0, "")
    where = f"[{host}]" if ":" in host else host
    return f"cannot listen on {where}:{port}: {reason}{hint}"


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    import uvicorn

    from reward_server.app import create_app
    from reward_server.serving import uvicorn_options
    from reward_server.settings import Settings, describe_errors, unknown_variables

    unknown = unknown_variables(os.environ)
    if unknown:
        _fail(unknown)
    overrides = {k: v for k, v in {"host": args.host, "port": args.port,
                                   "log_level": args.log_level}.items() if v is not None}
    try:
        settings = Settings(**overrides)
        app = create_app(settings)
    except ValidationError as exc:
        _fail(describe_errors(exc))
    except ValueError as exc:
        _fail([f"invalid configuration: {exc}"])

    bind = _BindError()
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(bind)

    class AnnouncingServer(uvicorn.Server):
        """uvicorn's server, saying once on stderr where it serves when the socket is bound
        (``startup`` returns after the app's lifespan start and the bind)."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            uvicorn_log.removeFilter(bind)  # bound: uvicorn's later records are its own
            if self.started and self.servers and self.servers[0].sockets:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                print(serving_line(settings, host, port), file=sys.stderr, flush=True)

    server = AnnouncingServer(uvicorn.Config(app, **uvicorn_options(settings)))
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on
        if not server.started:
            sys.exit(130)
    except SystemExit:  # uvicorn's own exit when it could not start (its code 3)
        if server.started:
            raise
    if not server.started:
        if bind.error is not None:
            _fail([bind_error_line(settings.host, settings.port, bind.error)])
        _fail(["the service did not start; the log above says why"])


if __name__ == "__main__":
    main()
