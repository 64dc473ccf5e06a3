"""A JSON object found leniently in a model's reply (judges wrap JSON in prose and fences).

Order (first hit wins), after dropping a reasoning model's thinking (everything up to its
last ``</think>``, and any closed ``<think>…</think>`` block):

1. the whole text is a JSON object;
2. a fenced block (```` ```json … ``` ```` or a bare fence) holding one, the first such;
3. the outermost ``{…}`` (first ``{`` to last ``}``);
4. only when ``accept`` is given: the last balanced ``{…}`` that decodes to an object
   ``accept`` approves (a verdict inside chatter that also contains braces).

A trailing comma before ``}`` or ``]`` is forgiven in each candidate. The think-block removal
and the fence search scan the text once instead of running ``<think>.*?</think>`` and a
fence regex, which backtrack quadratically on unclosed tags and fences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["extract_json_object"]

_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_FENCE_HEAD = re.compile(r"[a-zA-Z0-9_-]*\s*")  # language tag and the whitespace after it
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_OPEN_BRACE = re.compile(r"\{")


def _drop_think_blocks(text: str) -> str:
    """``re.sub(r"<think>.*?</think>", "", text, flags=I|S)`` in one pass."""
    pieces: list[str] = []
    pos = 0
    while (opening := _THINK_OPEN.search(text, pos)) is not None:
        closing = _THINK_CLOSE.search(text, opening.end())
        if closing is None:  # no later <think> has a closing tag either
            break
        pieces.append(text[pos : opening.start()])
        pos = closing.end()
    pieces.append(text[pos:])
    return "".join(pieces)


def _fenced_blocks(text: str) -> list[str]:
    """``re.findall(r"```[a-zA-Z0-9_-]*\\s*\\n?(.*?)```", text, re.S)`` in one pass.

    The regex backtracks through the whitespace after an unclosed fence (quadratic on a
    fence followed by a long blank run). Nothing in a fence's head is a backtick, so the
    body always starts after the whole head, and once a fence has no closing one after it,
    no later fence has either.
    """
    blocks: list[str] = []
    pos = 0
    while (start := text.find("```", pos)) >= 0:
        head = _FENCE_HEAD.match(text, start + 3)
        body = head.end() if head else start + 3
        close = text.find("```", body)
        if close < 0:
            break
        blocks.append(text[body:close])
        pos = close + 3
    return blocks


def _after_thinking(text: str) -> str:
    """What a reasoning model said after it finished thinking."""
    lowered = text.lower()
    if "</think>" in lowered:
        cut = lowered.rfind("</think>")
        text = text[cut + len("</think>") :]
    return _drop_think_blocks(text).strip()


def _loads_object(text: str) -> dict[str, Any] | None:
    for candidate in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _balanced_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts at some ``{`` of ``text`` and decodes cleanly."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    for match in _OPEN_BRACE.finditer(text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def extract_json_object(
    text: str, accept: Callable[[dict[str, Any]], object] | None = None
) -> dict[str, Any] | None:
    """The JSON object found leniently in ``text`` (see the module docstring), or ``None``.

    Args:
        text: a model's raw reply.
        accept: enables the last rule: which balanced objects count (truthy result).

    >>> extract_json_object('Sure! ```json\\n{"score": 7,}\\n``` Hope that helps.')
    {'score': 7}
    >>> extract_json_object("<think>{draft}</think> no object here") is None
    True
    """
    text = _after_thinking(text)
    if not text:
        return None
    obj = _loads_object(text)
    if obj is not None:
        return obj
    for block in _fenced_blocks(text):
        obj = _loads_object(block.strip())
        if obj is not None:
            return obj
    first, last = text.find("{"), text.rfind("}")
    if 0 <= first < last:
        obj = _loads_object(text[first : last + 1])
        if obj is not None:
            return obj
    if accept is None:
        return None
    candidates = [o for o in _balanced_objects(text) if accept(o)]
    return candidates[-1] if candidates else None
