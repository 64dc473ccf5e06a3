"""The judge prompt rendered for one sample: backend-neutral conversations.

Each rubric has its prompt (``reward_server.judge.rubric_prompt`` renders it from the one
template; the built-in rubric's is ``load_prompt()``, the text of ``prompt_v1.txt``).
Here a prompt becomes a conversation for one sample: a ``JudgeInput``, chat messages whose
content is a list of parts, either ``{"type": "text", "text": ...}`` or
``{"type": "image", "image": Image}``. Each backend turns the parts into what its model
takes (data URLs, PIL images, or nothing for a text-only judge, whose prompt then says how
many images it cannot see).

The policy's response is shown split in two, because SaFeR-VLM grades reasoning and answer
separately: REASONING is everything before the first ``<answer>`` (``<think>`` tags
dropped), ANSWER everything from it on (answer tags dropped), so nothing the user would
see is hidden from the judge (``reward_formats.response.judge_split``). A process
rubric's prompt shows the REASONING as its numbered steps (``reward_formats.steps``),
and any reasoning text outside them after the steps, unnumbered. The ``[Step k]`` labels
are the service's: a copy written inside the response becomes ``(Step k]``, so a response
cannot renumber its own steps for the judge.

Every block (request, reasoning, answer) is framed by markers carrying the sample's code
(``reward_server.judge.boundary``), and each piece of text shown inside is ``fence``d
after the split (the split drops tags, which could otherwise join the halves of a forged
marker), so nothing inside a block can close it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from reward_formats.response import judge_split
from reward_formats.steps import Step
from reward_server.domain import Sample
from reward_server.judge.boundary import fence, process_boundary
from reward_server.judge.prompt_file import PromptTemplate
from reward_server.judge.rubric_prompt import prompt_for
from reward_server.rubric import SAFER_VLM, SCORE_KEYS

__all__ = [
    "JudgeInput",
    "PromptTemplate",
    "build_input",
    "load_prompt",
    "retry_input",
    "score_prefix",
    "step_keys",
    "with_prefix",
]

Part = dict[str, Any]

_FORGED_LABEL = re.compile(r"\[(?=[ \t]{0,3}(?:step[ \t]{0,3}\d|outside the steps))", re.IGNORECASE)


def load_prompt() -> PromptTemplate:
    """The built-in rubric's prompt (the text of the packaged ``prompt_v1.txt``)."""
    return prompt_for(SAFER_VLM)


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
    sample: Sample,
    *,
    sees_images: bool,
    template: PromptTemplate | None = None,
    steps: Sequence[Step] = (),
    marker: str | None = None,
) -> JudgeInput:
    """The judge conversation for one sample.

    Args:
        sample: what to grade.
        sees_images: whether the backend's model takes images; if not, the prompt states
            how many images it cannot see.
        template: the rubric's prompt (the built-in rubric's by default).
        steps: the reasoning's steps (``reward_formats.steps.split_steps``), shown numbered;
            only with a process rubric's prompt, and only when there are some.
        marker: the code of the sample's block markers (``Boundary.marker``; the judge
            engine passes its own); ``None``: the code from a random per-process key.
    """
    template = template or load_prompt()
    if marker is None:
        marker = process_boundary().marker(sample)
    count = len(sample.images)
    if count == 0:
        note = template.render("images_none")
    elif sees_images:
        note = template.render("images_shown", count=count)
    else:
        note = template.render("images_hidden", count=count)
    reasoning, answer = judge_split(sample.response)
    request = fence(sample.prompt_text, marker)
    if steps:
        if not template.has_steps:
            raise ValueError("steps need a process rubric's prompt")
        text = template.render(
            "process_user",
            request=request,
            image_note=note,
            steps=_numbered_steps(sample.response, steps, template, marker),
            answer=fence(answer, marker),
            count=len(steps),
            step_keys=", ".join(f'"{k}"' for k in step_keys(len(steps))),
            marker=marker,
        )
    else:
        text = template.render(
            "user",
            request=request,
            image_note=note,
            reasoning=(fence(reasoning, marker) if reasoning is not None
                       else template.render("no_reasoning")),
            answer=fence(answer, marker),
            marker=marker,
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


def step_keys(count: int) -> list[str]:
    """The keys of ``step_safety`` for ``count`` steps: ``"1"`` to ``str(count)``."""
    return [str(k) for k in range(1, count + 1)]


def _numbered_steps(
    response: str, steps: Sequence[Step], template: PromptTemplate, marker: str
) -> str:
    """The steps as ``[Step k]`` blocks, then any reasoning the judge would otherwise see
    outside them (before ``<think>``, or between ``</think>`` and ``<answer>``)."""

    def shown(text: str) -> str:
        return _FORGED_LABEL.sub("(", fence(text, marker))

    blocks = [
        template.render("process_step", index=s.index, text=shown(response[s.start : s.end]))
        for s in steps
    ]
    before, _ = judge_split(response[: steps[0].start])
    after, _ = judge_split(response[steps[-1].end :])
    outside = "\n".join(text for text in (before, after) if text)
    if outside:
        blocks.append(template.render("process_outside", text=shown(outside)))
    return "\n\n".join(blocks)


def retry_input(
    first: JudgeInput,
    reply: str,
    problem: str,
    template: PromptTemplate | None = None,
    keys: Sequence[str] = (*SCORE_KEYS, "rationale"),
) -> JudgeInput:
    """``first`` continued with the judge's unusable reply and a request to fix it.

    Args:
        keys: the reply's keys, as the follow-up lists them (the built-in rubric's by
            default; a process prompt's include ``step_safety`` and its step numbers).
    """
    template = template or load_prompt()
    follow_up = template.render("retry", problem=problem, keys=", ".join(keys))
    messages = [
        *first.messages,
        {"role": "assistant", "content": [{"type": "text", "text": reply}]},
        {"role": "user", "content": [{"type": "text", "text": follow_up}]},
    ]
    return replace(first, messages=messages)


def score_prefix(
    key: str, *, trailing_space: bool = True, digits: str = "", step: int | None = None
) -> str:
    """The assistant prefix that ends just before ``key``'s number (or step ``step``'s).

    ``trailing_space`` is ``False`` for tokenizers that fuse a space with the digit that
    follows it (GPT-2 style ``" 7"``); then the next token carries the space itself.

    >>> score_prefix("think_safety")
    '{"think_safety": '
    >>> score_prefix("think_safety", digits="1")
    '{"think_safety": 1'
    >>> score_prefix("step_safety", step=3)
    '{"step_safety": {"3": '
    """
    space = " " if trailing_space or digits else ""
    opening = f'{{"{key}": {{"{step}":' if step is not None else f'{{"{key}":'
    return f"{opening}{space}{digits}"


def with_prefix(base: JudgeInput, prefix: str) -> JudgeInput:
    """``base`` with an assistant prefix to continue (one ``logprob`` prefill)."""
    return replace(base, assistant_prefix=prefix)
