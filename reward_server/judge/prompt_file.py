"""The judge's prompt file format: ``=== name ===`` sections, and a prompt's version.

A prompt file is a sequence of sections, each a ``=== name ===`` line followed by its text
(trailing newlines dropped); anything before the first section is a comment. A rendered
prompt (one rubric's, see ``reward_server.judge.rubric_prompt``) is such a file; the first
12 hex digits of its sha256 are its version, in the judge's ``identity`` and in
``rubric_version``, so any change to what the judge reads changes every cache key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from string import Template

#: The sections every rendered prompt has (``process_*`` ones come with process rubrics).
REQUIRED_SECTIONS = frozenset(
    {"system", "user", "images_shown", "images_none", "images_hidden", "no_reasoning", "retry"}
)
PROCESS_SECTIONS = frozenset({"process_user", "process_step", "process_outside"})

_SECTION = re.compile(r"^=== (\w+) ===\n", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    """The sections of one rendered prompt and its version (sha256 prefix of the file)."""

    sections: dict[str, str]
    version: str

    @property
    def has_steps(self) -> bool:
        """Whether this prompt shows the reasoning as numbered steps (a process rubric)."""
        return self.sections.keys() >= PROCESS_SECTIONS

    def render(self, name: str, **values: object) -> str:
        """Section ``name`` with its ``$placeholders`` filled (values are never templates)."""
        return Template(self.sections[name]).substitute({k: str(v) for k, v in values.items()})


def split_sections(text: str) -> dict[str, str]:
    """The ``=== name ===`` sections of ``text``, in order (trailing newlines dropped).

    >>> split_sections("a comment\\n=== one ===\\nfirst\\n\\n=== two ===\\nsecond\\n")
    {'one': 'first', 'two': 'second'}
    """
    pieces = _SECTION.split(text)
    return {name: body.rstrip("\n") for name, body in zip(pieces[1::2], pieces[2::2], strict=True)}


def join_sections(sections: dict[str, str]) -> str:
    """The file text of ``sections`` (``split_sections`` reads it back unchanged)."""
    return "".join(f"=== {name} ===\n{body}\n" for name, body in sections.items())


def parse_prompt_file(text: str) -> PromptTemplate:
    """A rendered prompt file, checked for its sections, with its version."""
    sections = split_sections(text)
    if missing := REQUIRED_SECTIONS - sections.keys():
        raise ValueError(f"judge prompt file lacks sections {sorted(missing)}")
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return PromptTemplate(sections, version)
