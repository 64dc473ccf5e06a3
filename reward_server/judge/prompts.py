"""The judge prompt: one versioned text file, rendered into backend-neutral conversations.

``prompt_v1.txt`` holds every word the judge reads, in ``=== name ===`` sections with
``$placeholders`` (``string.Template``; the prompt's JSON braces need no escaping). The
first 12 hex digits of the file's sha256 are the prompt version in the judge's
``identity``, so editing the file changes ``rubric_version`` and every cache key.

A conversation is a ``JudgeInput``: chat messages whose content is a list of parts, either
``{"type": "text", "text": ...}`` or ``{"type": "image", "image": Image}``. Each backend
turns the parts into what its model takes (data URLs, PIL images, or nothing for a
text-only judge, whose prompt then says how many images it cannot see).

The policy's response is shown split in two, because SaFeR-VLM grades reasoning and answer
separately: REASONING is everything before the first ``<answer>`` (``<think>`` tags
dropped), ANSWER everything from it on (answer tags dropped), so nothing the user would
see is hidden from the judge (``reward_formats.response.judge_split``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from reward_formats.response import judge_split
from reward_server.domain import Sample
from reward_server.rubric import SCORE_KEYS

PROMPT_FILE = "prompt_v1.txt"

_SECTION = re.compile(r"^=== (\w+) ===\n", re.MULTILINE)

Part = dict[str, Any]


@dataclass(frozen=True)
class PromptTemplate:
    """The sections of a prompt file and its version (sha256 prefix of the file)."""

    sections: dict[str, str]
    version: str

    def render(self, name: str, **values: object) -> str:
        return Template(self.sections[name]).substitute(
            {k: str(v) for k, v in values.items()}
        )


def parse_prompt_file(text: str) -> PromptTemplate:
    """Split a prompt file into its ``=== name ===`` sections (trailing newlines dropped)."""
    pieces = _SECTION.split(text)
    sections = {
        name: body.rstrip("\n") for name, body in zip(pieces[1::2], pieces[2::2], strict=True)
    }
    needed = {"system", "user", "images_shown", "images_none", "images_hidden",
              "no_reasoning", "retry"}
    if missing := needed - sections.keys():
        raise ValueError(f"judge prompt file lacks sections {sorted(missing)}")
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return PromptTemplate(sections, version)


@cache
def load_prompt(name: str = PROMPT_FILE) -> PromptTemplate:
    """The packaged prompt file ``name`` (cached)."""
    text = resources.files("reward_server.judge").joinpath(name).read_text(encoding="utf-8")
    return parse_prompt_file(text)


@dataclass(frozen=True)
class JudgeInput:
    """One conversation for the judge.

    Attributes:
        messages: ``[{"role": ..., "content": [parts]}]``; parts are text or image parts.
        assistant_prefix: text the judge's reply must start with (``logprob`` mode);
            backends continue it instead of opening a new assistant turn.
    """

    messages: list[dict[str, Any]]
    assistant_prefix: str | None = None

    def text_messages(self) -> list[dict[str, str]]:
        """Messages with plain-string content (image parts dropped), for text-only judges."""
        return [
            {
                "role": m["role"],
                "content": "".join(p["text"] for p in m["content"] if p["type"] == "text"),
            }
            for m in self.messages
        ]


def build_input(
    sample: Sample, *, sees_images: bool, template: PromptTemplate | None = None
) -> JudgeInput:
    """The judge conversation for one sample.

    Args:
        sample: what to grade.
        sees_images: whether the backend's model takes images; if not, the prompt states
            how many images it cannot see.
        template: the prompt (the packaged one by default).
    """
    template = template or load_prompt()
    count = len(sample.images)
    if count == 0:
        note = template.render("images_none")
    elif sees_images:
        note = template.render("images_shown", count=count)
    else:
        note = template.render("images_hidden", count=count)
    reasoning, answer = judge_split(sample.response)
    text = template.render(
        "user",
        request=sample.prompt_text,
        image_note=note,
        reasoning=reasoning if reasoning is not None else template.render("no_reasoning"),
        answer=answer,
    )
    parts: list[Part] = []
    if sees_images:
        parts.extend({"type": "image", "image": image} for image in sample.images)
    parts.append({"type": "text", "text": text})
    messages = [
        {"role": "system", "content": [{"type": "text", "text": template.sections["system"]}]},
        {"role": "user", "content": parts},
    ]
    return JudgeInput(messages)


def retry_input(
    first: JudgeInput, reply: str, problem: str, template: PromptTemplate | None = None
) -> JudgeInput:
    """``first`` continued with the judge's unusable reply and a request to fix it."""
    template = template or load_prompt()
    keys = ", ".join([*SCORE_KEYS, "rationale"])
    follow_up = template.render("retry", problem=problem, keys=keys)
    messages = [
        *first.messages,
        {"role": "assistant", "content": [{"type": "text", "text": reply}]},
        {"role": "user", "content": [{"type": "text", "text": follow_up}]},
    ]
    return replace(first, messages=messages)


def score_prefix(key: str, *, trailing_space: bool = True, digits: str = "") -> str:
    """The assistant prefix that ends just before ``key``'s number.

    ``trailing_space`` is ``False`` for tokenizers that fuse a space with the digit that
    follows it (GPT-2 style ``" 7"``); then the next token carries the space itself.

    >>> score_prefix("think_safety")
    '{"think_safety": '
    >>> score_prefix("think_safety", digits="1")
    '{"think_safety": 1'
    """
    space = " " if trailing_space or digits else ""
    return f'{{"{key}":{space}{digits}'


def with_prefix(base: JudgeInput, prefix: str) -> JudgeInput:
    """``base`` with an assistant prefix to continue (one ``logprob`` prefill)."""
    return replace(base, assistant_prefix=prefix)
