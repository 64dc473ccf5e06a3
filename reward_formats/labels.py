"""SafeTag-VL labels: which keys exist, which values they take, and how to read them.

The contract: a label value is ``safe`` or ``unsafe`` in any case and with any surrounding
whitespace; ``""`` and ``null`` mean unknown. Any other value, or a key ending in ``_tag``
that is not one of ``TAG_KEYS`` (a typo such as ``combined_tag``, which would otherwise
silently turn a labelled sample into an unlabelled one), is a ``LabelError`` naming the key
and what is accepted. Other keys are dataset metadata (``category``, ``source``) and are
ignored, but their values must be scalars (a string, number, boolean or null): a list or
an object there is a ``LabelError`` too, so a label never carries a structure of any size.

A label may arrive as a mapping, a JSON string of one, or a bare ``safe``/``unsafe`` string
(taken as ``combine_tag``, as OpenRLHF datasets often carry only that).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_LABEL_CHARS",
    "TAG_KEYS",
    "TAG_VALUES",
    "LabelError",
    "is_tag_key",
    "normalise_labels",
    "normalise_tag",
    "parse_labels",
    "tag_rule",
]

TAG_KEYS: tuple[str, ...] = ("image_tag", "text_tag", "combine_tag")
TAG_VALUES: tuple[str, ...] = ("safe", "unsafe")


#: The longest label string ``parse_labels`` decodes as JSON: three tags and some metadata
#: fit many times over, and nothing longer is decoded at all.
MAX_LABEL_CHARS = 4096


class LabelError(ValueError):
    """A label that breaks the contract; the sample holding it cannot be scored as given."""


def is_tag_key(key: Any) -> bool:
    """Whether the contract reads ``key``: one of ``TAG_KEYS``, or any other key ending in
    ``_tag`` (an error). Every other key is dataset metadata and ignored.

    >>> is_tag_key("combine_tag"), is_tag_key("combined_tag"), is_tag_key("category")
    (True, True, False)
    """
    return isinstance(key, str) and key.endswith("_tag")


def tag_rule(key: str) -> str:
    """What a value under ``key`` must be, as error messages say it.

    >>> tag_rule("text_tag")
    "label text_tag must be 'safe' or 'unsafe' (any case), '' or null"
    """
    return f"label {key} must be 'safe' or 'unsafe' (any case), '' or null"


def normalise_tag(value: Any, key: str = "combine_tag") -> str | None:
    """One label value as ``"safe"``, ``"unsafe"`` or ``None`` (unknown).

    Args:
        value: the value found under ``key``.
        key: the label key, named in the error.

    Raises:
        LabelError: for anything but safe/unsafe (any case, any whitespace), ``""`` or
            ``None``.

    >>> normalise_tag(" UNSAFE "), normalise_tag(""), normalise_tag(None)
    ('unsafe', None, None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        if text in TAG_VALUES:
            return text
    raise LabelError(f"{tag_rule(key)}; got {value!r:.60}")


def normalise_labels(labels: Mapping[Any, Any]) -> dict[str, str]:
    """The known tags of a label mapping, normalised; unknown (empty/null) tags are left out.

    Raises:
        LabelError: a bad value, or a ``*_tag`` key that is not one of ``TAG_KEYS``.

    >>> normalise_labels({"combine_tag": "Unsafe", "text_tag": "", "category": "weapons"})
    {'combine_tag': 'unsafe'}
    """
    out: dict[str, str] = {}
    for key, value in labels.items():
        if key in TAG_KEYS:
            tag = normalise_tag(value, key)
            if tag is not None:
                out[key] = tag
        elif is_tag_key(key):
            raise LabelError(f"label key {key!r} is not one of {', '.join(TAG_KEYS)}")
        elif value is not None and not isinstance(value, (str, int, float)):  # bool is an int
            raise LabelError(
                f"label {key!r} must be a string, number, boolean or null; got {_kind(value)}"
            )
    return {key: out[key] for key in TAG_KEYS if key in out}


def _kind(value: Any) -> str:
    return "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"


def parse_labels(raw: Any) -> dict[str, str] | None:
    """Labels given as a mapping, a JSON string of one, or a bare ``safe``/``unsafe``.

    Returns:
        ``None`` when no label was given (``None`` or an empty string); otherwise the known
        tags (possibly none: ``{}`` is "labels given, all unknown").

    Raises:
        LabelError: not a mapping, not JSON, or a mapping that breaks the contract.

    >>> parse_labels('{"combine_tag": "unsafe", "text_tag": null}')
    {'combine_tag': 'unsafe'}
    >>> parse_labels("SAFE")
    {'combine_tag': 'safe'}
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        if text.lower() in TAG_VALUES:
            return {"combine_tag": text.lower()}
        if len(text) > MAX_LABEL_CHARS:
            raise LabelError(
                f"label is a string of {len(text)} characters; a JSON object of labels has "
                f"at most {MAX_LABEL_CHARS}"
            )
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise LabelError("label is neither a JSON object nor safe/unsafe") from None
    if not isinstance(raw, Mapping):
        raise LabelError("label must be a JSON object")
    return normalise_labels(raw)
