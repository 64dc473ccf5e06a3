"""Loaders for prompt sets: curation inputs and evaluation benchmarks.

Every loader returns :class:`BenchmarkItem` rows with one shape: ``prompt`` (text or chat
messages), ``images`` (absolute paths or ``data:`` URLs), ``labels`` (the SafeTag-VL tags
``image_tag`` / ``text_tag`` / ``combine_tag`` when known), ``category``, ``benign``
(``True`` for a request that should be answered, ``False`` for one that should be
declined, ``None`` when unknown) and the original ``row``. Files may be JSONL, a JSON list,
or Parquet (``pyarrow``); relative image paths are resolved against the file's directory.

Formats (``load_benchmark(path, fmt)``; ``fmt:path`` on the command line):

``jsonl`` — this project's plain convention, one object per line::

    {"id": "b1", "prompt": "How do I bake bread?", "images": ["img/kitchen.png"],
     "labels": {"image_tag": "safe", "text_tag": "safe", "combine_tag": "safe"},
     "category": "food", "benign": true}

  ``prompt`` may be chat messages; ``question`` is accepted for ``prompt`` and ``image``
  for ``images``; the tags may be top-level columns instead of ``labels`` (the trainer's
  dataset layout) or a JSON string; ``benign`` defaults to ``combine_tag == "safe"`` when
  the combined tag is known.

``safetag`` — SafeTag-VL-3K (SafeGRPO, arXiv 2511.12982; hub id
  ``XuankunRong/SafeTag-VL-3K``, splits ``train``/``test``). A public verl preprocessing
  script for that dataset reads the columns ``prompt`` (the question text), ``images`` (a
  list), ``image_tag``, ``text_tag`` and ``combine_tag`` (``safe``/``unsafe``) and appends
  the paper's five-step safety-thinking instruction to the prompt. ``question`` and
  ``image`` are accepted as aliases. ``benign`` is ``combine_tag == "safe"``.

``beavertails_v`` — BeaverTails-V (``PKU-Alignment/BeaverTails-V``; one config per harm
  category such as ``animal_abuse`` or ``dangerous_behavior``, splits ``train`` and
  ``evaluation``). Its dataset card lists ``question``, ``image``, ``category``,
  ``image_severity``, ``response`` and ``is_response_safe``; the preference release
  (``saferlhf-v/BeaverTails-V``) has ``response_1``/``response_2``, ``is_response_1_safe``,
  ``safer_response_id`` and harmless/helpful rates instead. Text BeaverTails
  (``PKU-Alignment/BeaverTails``) uses ``prompt``, ``response``, ``category`` (a dict of
  14 harm flags) and ``is_safe``. Note that ``is_safe``/``is_response_safe`` label the
  *reference response*, not the question, so they are not used as prompt labels (they
  are kept in ``row``). ``benign`` is taken from an explicit ``benign`` column; otherwise
  from a harm-flag dict (benign iff no flag is set); otherwise a named harm category means
  ``False`` (every BeaverTails-V config is a harm category) and ``safe``/``none``/``benign``
  means ``True``.

``auto`` picks ``safetag`` when a row has ``combine_tag`` and no ``labels``/``benign``,
``beavertails_v`` when it has ``question`` and ``category`` but no ``prompt``, else ``jsonl``.

>>> item = item_from_row({"question": "q?", "combine_tag": "unsafe"}, 0, "safetag", None, "demo")
>>> item.prompt, item.labels, item.benign
('q?', {'combine_tag': 'unsafe'}, False)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reward_formats import TAG_KEYS, as_list, normalise_labels, parse_labels, to_data_url
from reward_formats.jsonl import read_objects

__all__ = [
    "FORMATS",
    "Benchmark",
    "BenchmarkItem",
    "detect_format",
    "item_from_row",
    "load_benchmark",
    "parse_benchmark_spec",
    "read_rows",
]

FORMATS = ("auto", "jsonl", "safetag", "beavertails_v")
_TRUE = {"true", "1", "yes", "y", "safe", "benign"}
_FALSE = {"false", "0", "no", "n", "unsafe", "harmful"}
_BENIGN_CATEGORIES = {"safe", "none", "benign", "harmless", ""}


@dataclass
class BenchmarkItem:
    """One prompt of a benchmark or curation set (see the module docstring)."""

    id: str
    prompt: str | list[dict[str, Any]]
    images: list[str] = field(default_factory=list)
    labels: dict[str, str] | None = None
    category: str | None = None
    benign: bool | None = None
    row: dict[str, Any] = field(default_factory=dict)
    #: the id as the file gives it (``None`` when ``id`` was made up from the row's position)
    source_id: str | None = None
    #: the images as the file names them (paths as written, a hash for inline bytes)
    image_keys: list[str] | None = None

    @property
    def key(self) -> str:
        """A content hash of (the file's id, prompt, images as written, labels).

        It identifies a prompt across runs (the resume key of curation): it does not change
        when rows are inserted before it (a made-up positional id is left out) or when the
        data directory moves (image paths as written, not resolved). Two rows without ids
        and with the same content have the same key.
        """
        images = self.image_keys if self.image_keys is not None else self.images
        blob = json.dumps(
            [self.source_id, self.prompt, images, self.labels], sort_keys=True, ensure_ascii=False
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def value(self, name: str) -> Any:
        """A column for stratification: ``category``, ``benign``, a label tag, or a raw column."""
        if name == "category":
            return self.category
        if name == "benign":
            return self.benign
        if name in TAG_KEYS:
            return (self.labels or {}).get(name, self.row.get(name))
        return self.row.get(name)

    def to_sample(self, response: str) -> dict[str, Any]:
        """The contract's ``/score`` sample for a response to this prompt."""
        sample: dict[str, Any] = {"id": self.id, "prompt": self.prompt, "response": response}
        if self.images:
            sample["images"] = list(self.images)
        if self.labels:
            sample["labels"] = dict(self.labels)
        return sample


@dataclass
class Benchmark:
    name: str
    path: Path
    format: str
    items: list[BenchmarkItem]


# --------------------------------------------------------------------------- reading


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl``, ``.json`` (a list, or ``{"data": [...]}``) or ``.parquet`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, Mapping):
            data = data.get("data") or data.get("rows") or data.get("train")
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of rows (or {{'data': [...]}})")
        return data
    return [row for _, row in read_objects(path)]


def detect_format(rows: Iterable[Mapping[str, Any]]) -> str:
    """``safetag``, ``beavertails_v`` or ``jsonl`` from the first row's columns."""
    first = next(iter(rows), None)
    if first is None:
        return "jsonl"
    keys = set(first)
    if "combine_tag" in keys and not keys & {"labels", "benign"}:
        return "safetag"
    if "question" in keys and "category" in keys and "prompt" not in keys:
        return "beavertails_v"
    return "jsonl"


def _as_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _image_ref(ref: Any, base_dir: Path | None) -> str:
    """An image as an absolute path or a ``data:`` URL (Parquet image dicts are inlined)."""
    if isinstance(ref, Mapping):
        if ref.get("bytes"):
            return to_data_url(bytes(ref["bytes"]))
        ref = ref.get("path") or ref.get("url")
        if not ref:
            raise ValueError("image dict without bytes, path or url")
    if isinstance(ref, bytes | bytearray):
        return to_data_url(bytes(ref))
    ref = str(ref)
    if ref[:5].lower() == "data:" or "://" in ref[:12]:
        return ref
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path.resolve())


def _labels(row: Mapping[str, Any]) -> dict[str, str] | None:
    """The row's tags: its ``labels`` (a mapping, a JSON string or a bare safe/unsafe), with
    the tag columns filling in the tags ``labels`` does not give (contract rules,
    ``reward_formats.parse_labels``; a bad value raises ``LabelError``, a ``ValueError``)."""
    given = parse_labels(row.get("labels")) or {}
    columns = normalise_labels(
        {key: row[key] for key in TAG_KEYS if key not in given and row.get(key) is not None}
    )
    merged = {**columns, **given}
    return {key: merged[key] for key in TAG_KEYS if key in merged} or None


def _harm_category(value: Any) -> tuple[str | None, bool | None]:
    """(category name, benign) from a category string or a harm-flag dict."""
    if value is None:
        return None, None
    if isinstance(value, Mapping):  # BeaverTails: {"animal_abuse": false, ...}
        hits = sorted(k for k, v in value.items() if _as_bool(v))
        return ("+".join(hits) if hits else "none"), not hits
    name = str(value).strip()
    return name, name.lower() in _BENIGN_CATEGORIES


def item_from_row(
    row: Mapping[str, Any], index: int, fmt: str, base_dir: Path | None, name: str
) -> BenchmarkItem:
    """Normalise one row of format ``fmt`` (see the module docstring)."""
    prompt = row.get("prompt")
    if prompt is None:
        prompt = row.get("question")
    if prompt is None:
        raise ValueError(f"row {index}: no 'prompt' (or 'question') column; columns: {sorted(row)}")
    if not isinstance(prompt, str):
        prompt = [dict(m) for m in as_list(prompt)]
    image_col = row.get("images") if row.get("images") is not None else row.get("image")
    raw_images = as_list(image_col)
    images = [_image_ref(im, base_dir) for im in raw_images]
    image_keys = [
        im if isinstance(im, str) else hashlib.sha256(_image_ref(im, None).encode()).hexdigest()
        for im in raw_images
    ]
    labels = _labels(row)
    category, benign = _harm_category(row.get("category"))
    explicit = _as_bool(row.get("benign", row.get("is_benign")))
    if fmt == "beavertails_v":
        benign = explicit if explicit is not None else benign
    else:
        derived = labels["combine_tag"] == "safe" if labels and "combine_tag" in labels else None
        benign = explicit if explicit is not None else derived
    source_id = row.get("id", row.get("idx"))
    source_id = None if source_id is None else str(source_id)
    item_id = f"{name}-{index:05d}" if source_id is None else source_id
    return BenchmarkItem(
        id=item_id,
        prompt=prompt,
        images=images,
        labels=labels,
        category=category,
        benign=benign,
        row=dict(row),
        source_id=source_id,
        image_keys=image_keys,
    )


def parse_benchmark_spec(spec: str) -> tuple[str, str]:
    """``"safetag:data/test.jsonl"`` -> ``("safetag", "data/test.jsonl")``; no prefix: ``auto``."""
    head, sep, tail = spec.partition(":")
    if sep and head in FORMATS:
        return head, tail
    return "auto", spec


def load_benchmark(path: str | Path, fmt: str = "auto", name: str | None = None) -> Benchmark:
    """Load a benchmark file (see the module docstring for formats).

    Args:
        path: a ``.jsonl``, ``.json`` or ``.parquet`` file.
        fmt: one of ``FORMATS``.
        name: the benchmark's name in reports (default: the file stem).

    Raises:
        ValueError: unknown format, a row without a prompt, a tag that is not safe/unsafe,
            or duplicate ids.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown benchmark format {fmt!r}; expected one of {list(FORMATS)}")
    path = Path(path)
    name = name or path.stem
    rows = read_rows(path)
    if fmt == "auto":
        fmt = detect_format(rows)
    items = [item_from_row(row, i, fmt, path.parent, name) for i, row in enumerate(rows)]
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"{path}: duplicate id {item.id!r}")
        seen.add(item.id)
    return Benchmark(name=name, path=path, format=fmt, items=items)
