"""The steps of a response's reasoning, with offsets into the response as given.

Process-level judging (the ``safer_vlm_process`` profile) scores each reasoning step, the
trainer places step-level credit, and evaluation reports where reasoning first goes
unsafe; all three must cut the reasoning the same way, so the cut lives here.

The reasoning is ``reward_formats.response.reasoning_span``: the text before the first
``</think>``, after an opening ``<think>`` if there is one before it (chat templates often
put ``<think>`` in the prompt), exactly where ``reward_formats.response.reasoning`` reads.
It is cut:

1. on SafeGRPO-style ``Step N:`` markers when there is one (case-insensitive, also inside
   a line or in bold, ``**Step 2:**``); text before the first marker belongs to the first
   step, so the steps keep the policy's own numbering;
2. otherwise on blank lines (paragraphs);
3. into at most ``MAX_STEPS`` steps: more are merged, consecutive ones together, into
   ``MAX_STEPS`` steps of near-equal length (characters).

Each step is stripped of surrounding whitespace, so ``response[step.start:step.end]`` is
exactly the step's text. No ``</think>``, or nothing but whitespace before it, means no
steps. Linear in the response length.

>>> text = "<think>Step 1: a knife. Step 2: cooking, benign.</think><answer>Slice.</answer>"
>>> [(s.index, text[s.start:s.end]) for s in split_steps(text)]
[(1, 'Step 1: a knife.'), (2, 'Step 2: cooking, benign.')]
>>> text = "First.\\n\\nSecond.\\n \\nThird.</think>"
>>> [text[s.start:s.end] for s in split_steps(text)]
['First.', 'Second.', 'Third.']
>>> split_steps("<think>  </think><answer>Hi.</answer>"), split_steps("no think tag")
([], [])
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import NamedTuple

from reward_formats.response import reasoning_span

# ``reasoning_span`` is defined in ``reward_formats.response`` beside ``reasoning``; it stays
# importable from here, where the steps are cut from it.
__all__ = ["MAX_STEPS", "Step", "reasoning_span", "split_steps"]

#: At most this many steps; more are merged into this many of near-equal length.
MAX_STEPS = 12

_STEP_MARKER = re.compile(r"(?:[*_#]{1,4}[ \t]?)?\bstep[ \t]{0,3}\d{1,3}[ \t]{0,3}:", re.IGNORECASE)
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


class Step(NamedTuple):
    """One reasoning step: its number (from 1) and where it is (``end`` exclusive)."""

    index: int
    start: int
    end: int


def _stripped(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(start, end)`` narrowed past surrounding whitespace; ``None`` if nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The reasoning ``text[start:end]`` cut on step markers, else on blank lines."""
    markers = [m.start() for m in _STEP_MARKER.finditer(text, start, end)]
    if markers:
        bounds = [(start, markers[1] if len(markers) > 1 else end)]  # preamble joins step 1
        bounds += [
            (at, markers[i + 1] if i + 1 < len(markers) else end)
            for i, at in enumerate(markers)
            if i > 0
        ]
    else:
        bounds, at = [], start
        for blank in _BLANK_LINE.finditer(text, start, end):
            bounds.append((at, blank.start()))
            at = blank.end()
        bounds.append((at, end))
    return [span for a, b in bounds if (span := _stripped(text, a, b)) is not None]


def _merged(spans: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """``spans`` merged, consecutive ones together, into ``limit`` of near-equal length.

    Group ``g`` ends at the step whose end is nearest to ``g/limit`` of the way through,
    keeping at least one step in every group (one pass and a bisection per group).
    """
    count = len(spans)
    if count <= limit:
        return spans
    first, last = spans[0][0], spans[-1][1]
    ends = [end for _, end in spans]
    out: list[tuple[int, int]] = []
    begin = 0  # index of the first step of the group being formed
    for group in range(1, limit):
        target = first + (last - first) * group / limit
        lowest, highest = begin + 1, count - (limit - group)  # steps used after this group
        found = bisect_left(ends, target, lowest - 1, highest)
        options = [j for j in (found, found + 1) if lowest <= j <= highest]
        taken = min(options, key=lambda j: abs(ends[j - 1] - target))
        out.append((spans[begin][0], spans[taken - 1][1]))
        begin = taken
    out.append((spans[begin][0], last))
    return out


def split_steps(response: str, max_steps: int = MAX_STEPS) -> list[Step]:
    """The reasoning's steps (see the module docstring); ``[]`` when there is no reasoning.

    Args:
        response: the policy's whole response, as received.
        max_steps: at most this many steps (``MAX_STEPS``, the contract's 12).
    """
    span = reasoning_span(response)
    if span is None:
        return []
    spans = _merged(_pieces(response, *span), max_steps)
    return [Step(k, start, end) for k, (start, end) in enumerate(spans, start=1)]
