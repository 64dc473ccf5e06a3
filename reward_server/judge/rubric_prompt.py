"""A rubric rendered into its judge prompt, from the one template ``prompt_template.txt``.

The template's ``{{name}}`` markers are filled from the rubric: the dimensions with their
descriptions (and, where the name does not already say it, the part each grades; and
each one's scale when they differ), the flags, the notes, the per-step instructions of a
process rubric, the reply's JSON shape and the score ranges the retry repeats. The words
around them are the template's ``rubric_*`` pieces, so the template holds every word the
judge reads. The result is a prompt file (``reward_server.judge.prompt_file``): its hash
is the rubric's prompt version, part of ``rubric_version``.

The built-in rubric renders to ``prompt_v1.txt`` byte for byte (a test holds it so): the
packaged prompt file is the built-in rubric's prompt, and its hash the prompt version.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from reward_server.judge.prompt_file import (
    PROCESS_SECTIONS,
    PromptTemplate,
    join_sections,
    parse_prompt_file,
    split_sections,
)
from reward_server.rubric import FLAG_RANGE, STEP_KEY, STEP_RANGE, Dimension, Rubric

TEMPLATE_FILE = "prompt_template.txt"

_MARKER = re.compile(r"\{\{(\w+)\}\}")
_PIECE = "rubric_"
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight",
                 "nine", "ten", "eleven", "twelve")
#: The dimension that grader-directed text counts against, when the rubric has it.
_COHERENCE = "think_coherence"


@cache
def template_sections(name: str = TEMPLATE_FILE) -> dict[str, str]:
    """The packaged template's sections (cached; never mutated)."""
    text = resources.files("reward_server.judge").joinpath(name).read_text(encoding="utf-8")
    return split_sections(text)


def _fill(text: str, values: dict[str, str]) -> str:
    """``{{name}}`` markers replaced in one pass (inserted text is never read again)."""

    def value(match: re.Match[str]) -> str:
        try:
            return values[match.group(1)]
        except KeyError:
            marker = match.group(0)
            raise ValueError(f"judge prompt template: no value for {marker}") from None

    return _MARKER.sub(value, text)


def _count(n: int, noun: str) -> str:
    word = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    return f"{word} {noun}{'' if n == 1 else 's'}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _uniform_scale(rubric: Rubric) -> tuple[int, int] | None:
    scales = {d.scale for d in rubric.dimensions}
    return scales.pop() if len(scales) == 1 else None


def _dimension_line(d: Dimension, pieces: dict[str, str], show_scale: bool) -> str:
    notes = []
    if not d.name.startswith(f"{d.part}_"):  # think_* / answer_* names already say it
        notes.append(pieces[f"{_PIECE}part_{d.part}"])
    if show_scale:
        notes.append(f"{d.scale[0]}-{d.scale[1]}")
    label = f"{d.name} ({'; '.join(notes)})" if notes else d.name
    return f"- {label}: {d.description}"


def _reply_shape(rubric: Rubric) -> str:
    fields = [f'"{d.name}": <{d.scale[0]}-{d.scale[1]}>' for d in rubric.dimensions]
    fields += [f'"{f.name}": <{FLAG_RANGE[0]}-{FLAG_RANGE[1]}>' for f in rubric.flags]
    if rubric.process:
        step = f"<{STEP_RANGE[0]}-{STEP_RANGE[1]}>"
        fields.append(f'"{STEP_KEY}": {{"1": {step}, "2": {step}, ...}}')
    fields.append('"rationale": "<one or two sentences>"')
    return "{" + ", ".join(fields) + "}"


def _score_ranges(rubric: Rubric) -> str:
    scale = _uniform_scale(rubric)
    if scale is not None and len(rubric.dimensions) > 1:
        count = _count(len(rubric.dimensions), "dimension")
        ranges = [f"the {count} from {scale[0]} to {scale[1]}"]
    else:
        ranges = [f"{d.name} from {d.scale[0]} to {d.scale[1]}" for d in rubric.dimensions]
    if rubric.flags:
        names = _and([f.name for f in rubric.flags])
        ranges.append(f"{names} from {FLAG_RANGE[0]} to {FLAG_RANGE[1]}")
    if rubric.process:
        ranges.append(f"each score of {STEP_KEY} from {STEP_RANGE[0]} to {STEP_RANGE[1]}")
    return ", ".join(ranges)


def _values(rubric: Rubric, pieces: dict[str, str]) -> dict[str, str]:
    """What each ``{{marker}}`` of the sent sections becomes for ``rubric``."""
    scale = _uniform_scale(rubric)
    if scale is not None:
        scale_text = _fill(pieces[f"{_PIECE}scale_same"], {"low": str(scale[0]),
                                                           "high": str(scale[1])})
    else:
        scale_text = pieces[f"{_PIECE}scale_mixed"]
    names = [d.name for d in rubric.dimensions]
    flags = ""
    if rubric.flags:
        flags = _fill(pieces[f"{_PIECE}flags"], {
            "flag_count": _count(len(rubric.flags), "flag"),
            "flag_list": "\n".join(f"- {f.name}: {f.description}" for f in rubric.flags),
        }) + "\n\n"
    injection = ""
    if _COHERENCE in names:
        injection = " " + _fill(pieces[f"{_PIECE}injection"], {"dimension": _COHERENCE})
    return {
        "injection": injection,
        "dimension_count": _count(len(rubric.dimensions), "dimension"),
        "dimension_scale": scale_text,
        "dimension_list": "\n".join(
            _dimension_line(d, pieces, show_scale=scale is None) for d in rubric.dimensions
        ),
        "flags": flags,
        "steps": pieces[f"{_PIECE}steps"] + "\n\n" if rubric.process else "",
        "notes": "".join(f"{note}\n\n" for note in rubric.notes),
        "reply_shape": _reply_shape(rubric),
        "score_ranges": _score_ranges(rubric),
    }


def render_prompt_text(rubric: Rubric, sections: dict[str, str] | None = None) -> str:
    """The prompt file of ``rubric``: the template's sent sections with markers filled.

    Args:
        rubric: a checked rubric.
        sections: a template's sections (the packaged ``prompt_template.txt`` by default).
    """
    sections = template_sections() if sections is None else sections
    pieces = {name: body for name, body in sections.items() if name.startswith(_PIECE)}
    values = _values(rubric, pieces)
    sent = {
        name: _fill(body, values)
        for name, body in sections.items()
        if not name.startswith(_PIECE) and (rubric.process or name not in PROCESS_SECTIONS)
    }
    return join_sections(sent)


@cache
def prompt_for(rubric: Rubric) -> PromptTemplate:
    """The rendered prompt of ``rubric`` with its version (cached per rubric)."""
    return parse_prompt_file(render_prompt_text(rubric))
