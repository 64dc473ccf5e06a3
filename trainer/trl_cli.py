"""How the trainer's commands (``trainer.grpo``, ``trainer.curate``, ``trainer.evaluate``)
build their argument parser: TRL's ``TrlParser`` over their argument dataclasses, so that
every command takes ``--config file.yaml`` and the same flag spellings, standalone or as a
subcommand of a ``TrlParser``-style CLI."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["trl_parser"]


def trl_parser(
    dataclass_types: tuple[type, ...],
    *,
    name: str,
    help: str,
    subparsers: argparse._SubParsersAction | None = None,
    prog: str | None = None,
) -> Any:
    """A ``TrlParser`` over ``dataclass_types``, or the subcommand ``name`` of ``subparsers``.

    Args:
        name: the subcommand's name (with ``subparsers``).
        help: the subcommand's one-line help (with ``subparsers``).
        prog: the program name shown in usage (standalone).
    """
    from trl import TrlParser

    if subparsers is not None:
        return subparsers.add_parser(name, help=help, dataclass_types=dataclass_types)
    return TrlParser(dataclass_types, prog=prog)
