"""``python -m reward_server [--host H] [--port P]``: settings from REWARD_* then uvicorn.

Start-up refuses a ``REWARD_*`` name that is no setting (a typo such as ``REWARD_PROFLE``
would otherwise be ignored) and prints configuration errors one line each. Once the socket
is bound, one line on stderr says where the service listens and how it scores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from pydantic import ValidationError

#: uvicorn's exit code when the server could not start (``uvicorn.main.STARTUP_FAILURE``).
STARTUP_FAILURE = 3


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
    """``reward_server: serving on http://127.0.0.1:8000 (profile safegrpo_plus, cache lru)``."""
    cache = "redis" if settings.redis_url else "lru" if settings.cache_size > 0 else "off"
    judge = (f", judge {settings.judge_backend} {settings.judge_model}"
             if settings.has_judge else "")
    where = f"[{host}]" if ":" in host else host
    return (f"reward_server: serving on http://{where}:{port} "
            f"(profile {settings.default_profile}{judge}, cache {cache})")


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

    class AnnouncingServer(uvicorn.Server):
        """uvicorn's server, saying once on stderr where it serves when the socket is bound
        (``startup`` returns after the app's lifespan start and the bind)."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers and self.servers[0].sockets:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                print(serving_line(settings, host, port), file=sys.stderr, flush=True)

    server = AnnouncingServer(uvicorn.Config(app, **uvicorn_options(settings)))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it shut
        server.run()  # down on; uvicorn.run swallows it too
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
