"""``python -m reward_server [--host H] [--port P]``: settings from REWARD_* then uvicorn."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reward_server",
        description="Serve SafeGRPO / SaFeR-VLM rewards over HTTP. Other settings come from "
        "REWARD_* environment variables or a .env file (see README).",
    )
    parser.add_argument("--host", help="bind address (REWARD_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="bind port (REWARD_PORT, default 8000)")
    parser.add_argument("--log-level", help="REWARD_LOG_LEVEL (default warning)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    import uvicorn

    from reward_server.app import create_app
    from reward_server.serving import uvicorn_options
    from reward_server.settings import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port,
                                   "log_level": args.log_level}.items() if v is not None}
    try:
        settings = Settings(**overrides)
        app = create_app(settings)
    except (ValidationError, ValueError) as exc:
        sys.exit(f"reward_server: invalid configuration: {exc}")
    uvicorn.run(app, **uvicorn_options(settings))


if __name__ == "__main__":
    main()
