"""``as_list``: one value or many, as a list (dataset columns hold either)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from reward_formats.images import is_pil_image

__all__ = ["as_list"]


def as_list(value: Any) -> list[Any]:
    """``value`` as a list: ``None`` is empty; a string, bytes, mapping, path or PIL image is
    one item; a NumPy array (Parquet columns) goes through ``tolist``; any other iterable is
    listed.

    >>> as_list(None), as_list("a.png"), as_list(("a", "b")), as_list({"bytes": b""})
    ([], ['a.png'], ['a', 'b'], [{'bytes': b''}])
    """
    if value is None:
        return []
    if isinstance(value, str | bytes | bytearray | Mapping | os.PathLike) or is_pil_image(value):
        return [value]
    if hasattr(value, "tolist") and not isinstance(value, list):
        value = value.tolist()
    return list(value)
