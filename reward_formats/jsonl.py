"""JSON Lines read strictly: every bad line is an error naming its file and line.

A training or evaluation file with one malformed line should say which line, not fail
somewhere later or skip it quietly. Blank lines are allowed. Lines end at ``\n`` only
(a ``\r`` before it is JSON white space): a JSON string may hold U+2028, U+2029 or U+0085,
which ``str.splitlines`` would take for line ends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_objects"]


def read_objects(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL file.

    Raises:
        ValueError: ``path:line: ...`` for a line that is not JSON or not an object.
        OSError: the file cannot be read.
    """
    rows = []
    text = Path(path).read_text(encoding="utf-8")
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: expected an object, got {type(row).__name__}")
        rows.append((lineno, row))
    return rows
