"""``python -m reward_server.detectors``: retrain a detector on your own labelled data.

Refusal, from rollouts you labelled (one JSON object a line)::

    {"answer": "I can't help with that.", "prompt": "How do I ...?", "label": "refusal"}
    {"answer": "Sure, here are the steps: ...", "label": "compliance"}

``label`` is ``refusal``/``compliance`` (or ``true``/``false``: refuses); ``prompt`` is
optional. ``--public DIR`` adds the public training data that ``python -m
bench.fidelity.build`` wrote there. The new weights go to ``--out``; a profile uses them
with ``refusal = "/path/to/model.npz"`` in a ``REWARD_PROFILES_FILE`` TOML, and its
``rubric_version`` (and cache keys) change with the weights.

Injection, from grader-directed texts and real answers (``{"text": ...}`` a line each)::

    python -m reward_server.detectors injection --attacks attacks.jsonl \\
        --benign answers.jsonl --out injection.npz

The cross-validated accuracy (refusal) or the held-out false-positive rate (injection) is
printed before the file is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reward_formats.jsonl import read_objects
from reward_server.detectors.recipes import Labelled, injection_model, refusal_model

_REFUSES = {"refusal": True, "refuses": True, "true": True, "compliance": False, "false": False}


class DataError(ValueError):
    """A line of an input file that cannot be used, named by file and line."""


def _lines(path: Path) -> list[tuple[int, dict]]:
    try:
        return read_objects(path)
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise DataError(str(exc)) from None


def refusal_rows(path: Path) -> list[Labelled]:
    """Labelled answers of a JSONL file; a bad line raises :class:`DataError` naming it."""
    rows = []
    for number, row in _lines(path):
        answer, label = row.get("answer"), row.get("label")
        if not isinstance(answer, str) or not answer.strip():
            raise DataError(f"{path}:{number}: 'answer' must be a non-empty string")
        refuses = _REFUSES.get(str(label).lower()) if label is not None else None
        if refuses is None:
            raise DataError(f"{path}:{number}: 'label' must be refusal or compliance, "
                            f"got {label!r}")  # fmt: skip
        prompt = row.get("prompt") or ""
        rows.append(Labelled(answer, refuses, "yours", prompt if isinstance(prompt, str) else ""))
    return rows


def texts(path: Path) -> list[str]:
    out = []
    for number, row in _lines(path):
        text = row.get("text", row.get("answer"))
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{number}: 'text' must be a non-empty string")
        out.append(text)
    return out


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reward_server.detectors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="detector", required=True)
    r = sub.add_parser("refusal", help="retrain the refusal detector")
    r.add_argument("--data", type=Path, action="append", required=True,
                   help="JSONL of answer, prompt, label (repeatable)")
    r.add_argument("--public", type=Path, default=None,
                   help="also train on the public data built here by bench.fidelity.build")
    r.add_argument("--out", type=Path, required=True, help="the model file to write (.npz)")
    i = sub.add_parser("injection", help="retrain the injection detector")
    i.add_argument("--attacks", type=Path, action="append", required=True,
                   help="JSONL of grader-directed texts")
    i.add_argument("--benign", type=Path, action="append", required=True,
                   help="JSONL of real answers that must stay clean")
    i.add_argument("--out", type=Path, required=True, help="the model file to write (.npz)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.out.suffix != ".npz":
        print(f"--out must end in .npz, got {args.out}", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.detector == "refusal":
            rows = [row for path in args.data for row in refusal_rows(path)]
            bodies: list[str] = []
            if args.public is not None:
                from bench.fidelity.train import benign_answers, public_refusal_rows

                rows += public_refusal_rows(args.public)
                bodies = benign_answers(args.public)[:3000]
            if len({r.label for r in rows}) < 2:
                raise DataError("the data needs both refusals and compliant answers")
            model, report = refusal_model(rows, bodies=bodies, progress=log)
            log(f"cross-validated accuracy: {report['cross_validated_overall']}")
        else:
            attacks = [Labelled(t, True, "yours") for path in args.attacks for t in texts(path)]
            benign = [t for path in args.benign for t in texts(path)]
            model, report = injection_model(attacks, benign, progress=log)
            log(f"false positives on held-out answers: {report['held_out_false_positive_rate']}"
                f" of {report['held_out_answers']}")  # fmt: skip
    except DataError as exc:
        print(f"reward_server.detectors: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
