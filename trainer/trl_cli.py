"""How the trainer's commands (``trainer.grpo``, ``trainer.curate``, ``trainer.evaluate``)
build their argument parser: TRL's ``TrlParser`` over their argument dataclasses, so that
every command takes ``--config file.yaml`` and the same flag spellings, standalone or as a
subcommand of a ``TrlParser``-style CLI."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["describe_negations", "trl_parser"]


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
        parser = subparsers.add_parser(name, help=help, dataclass_types=dataclass_types)
    else:
        parser = TrlParser(dataclass_types, prog=prog)
    describe_negations(parser)
    return parser


def describe_negations(parser: argparse.ArgumentParser) -> None:
    """Give every ``--no_<flag>`` its own help.

    For a boolean field that defaults to true, ``HfArgumentParser`` adds ``--no_<flag>`` with
    the help of ``--<flag>``, so ``--help`` said "--no_progress: Show a tqdm progress bar."
    Its default is hidden too: the field's default is the one ``--<flag>`` shows.
    """
    for action in parser._actions:
        negation = next((o for o in action.option_strings if o.startswith("--no_")), None)
        if negation and isinstance(action, argparse._StoreFalseAction):
            flag = action.dest
            action.help = f"Turn --{flag} off (the same as --{flag} false)."
            action.default = argparse.SUPPRESS  # the namespace default comes from --{flag}
