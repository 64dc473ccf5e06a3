"""Where a policy response's reasoning and answer are: ``<think>…</think><answer>…</answer>``.

Every function here is linear in the response length. The obvious regex
``<answer>(.*?)</answer>`` is not: from every unclosed ``<answer>`` it rescans to the end,
so a degenerate rollout of thousands of ``<answer>`` tags stalls whoever reads it. The
functions below take the first opening tag and then the first closing tag after it, which
is the same match (if the first opening tag has no closing tag after it, no later one has).
Tags match in any case (``<ANSWER>``), as the rules read them.

Three readings of a response exist, for three readers:

* ``answer_body`` / ``has_answer``: the answer the rewards read (SafeGRPO's behaviour term,
  SaFeR-VLM's format gate). Strict: no closed block, no answer.
* ``split_response``: evaluation's ``(reasoning, answer)``. Its answer is ``answer_body``
  whenever that exists, so evaluation and reward agree on what was answered; it adds
  fallbacks only for responses the reward has no answer for.
* ``judge_split``: what the judge is shown. Nothing the user would see may be hidden from
  the judge, so its ANSWER runs from the first ``<answer>`` to the end, tags dropped.
"""

from __future__ import annotations

import re

__all__ = [
    "answer_body",
    "answer_span",
    "has_answer",
    "judge_split",
    "reasoning",
    "reasoning_span",
    "split_response",
]

_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_THINK_TAGS = re.compile(r"</?think>", re.IGNORECASE)
_ANSWER_TAGS = re.compile(r"</?answer>", re.IGNORECASE)


def answer_span(response: str, start: int = 0) -> tuple[int, int] | None:
    """Where the answer body is: from the first ``<answer>`` at or after ``start`` to the
    first ``</answer>`` after that; ``None`` when there is no such closed block.

    Args:
        response: the policy's text.
        start: where to look for the opening tag (a format gate that has located its own
            ``</think><answer>`` passes that position).

    Returns:
        ``(begin, end)`` with ``response[begin:end]`` the body, tags excluded.

    >>> answer_span("<think>x</think><answer>yes</answer>")
    (24, 27)
    """
    opening = _ANSWER_OPEN.search(response, start)
    if opening is None:
        return None
    closing = _ANSWER_CLOSE.search(response, opening.end())
    return None if closing is None else (opening.end(), closing.start())


def answer_body(response: str, start: int = 0) -> str | None:
    """The answer body, unstripped (see ``answer_span``), or ``None`` without a closed block.

    A second answer block is not part of the answer: a refusal appended after a compliant
    first answer must not count as refusing.

    >>> answer_body("<answer>Sure.</answer><answer>Sorry, no.</answer>")
    'Sure.'
    >>> answer_body("<answer>" * 3) is None
    True
    """
    span = answer_span(response, start)
    return None if span is None else response[span[0] : span[1]]


def has_answer(response: str) -> bool:
    """Whether an ``<answer>…</answer>`` block exists (SaFeR-VLM's format gate).

    >>> has_answer("x <ANSWER>y</answer>"), has_answer("</answer><answer>")
    (True, False)
    """
    return answer_span(response) is not None


def reasoning_span(response: str) -> tuple[int, int] | None:
    """Where the reasoning is: after the first ``<think>`` before the first ``</think>``
    (or from the start: SafeGRPO's format allows a missing opening tag, and chat templates
    often put ``<think>`` in the prompt), up to that ``</think>``; ``None`` without one.

    The offsets index the response as given, so step splitting (``reward_formats.steps``)
    can place each step in it; ``reasoning`` is the stripped text of this span.

    >>> reasoning_span("<think>hm</think><answer>x</answer>"), reasoning_span("hm")
    ((7, 9), None)
    """
    close = _THINK_CLOSE.search(response)
    if close is None:
        return None
    opening = _THINK_OPEN.search(response, 0, close.start())
    return (opening.end() if opening else 0), close.start()


def reasoning(response: str) -> str | None:
    """The reasoning, stripped: the text of ``reasoning_span``, so the text before the first
    ``</think>``, after the first ``<think>`` before it if there is one. ``None`` when the
    response never closes its thinking.

    >>> reasoning("<think> It is a knife. </think><answer>Cut bread.</answer>")
    'It is a knife.'
    >>> reasoning("no tags") is None
    True
    """
    span = reasoning_span(response)
    return None if span is None else response[span[0] : span[1]].strip()


def split_response(response: str) -> tuple[str | None, str]:
    """Evaluation's ``(reasoning, answer)`` of a response, both stripped.

    The answer is the reward's (``answer_body``) whenever the response has a closed answer
    block. Otherwise, so that a malformed response is still evaluated on what it said:

    1. an unclosed ``<answer>``: everything after it (a rollout cut off mid-answer);
    2. a response that opens ``<think>`` and never closes it (cut off mid-thought): the
       reasoning is everything after ``<think>``, and the answer is ``""`` (or the body of
       a closed answer block inside that reasoning);
    3. a closed ``</think>`` without answer tags: everything after it;
    4. no tags at all: the whole response.

    The reasoning is ``reasoning(response)`` (``None`` when thinking never closes), except
    in case 2. Use ``has_answer`` to tell a closed-block answer from a fallback.

    >>> split_response("<think>hmm</think><answer>Sure.</answer>")
    ('hmm', 'Sure.')
    >>> split_response("<think>still thinking")
    ('still thinking', '')
    >>> split_response("Just text.")
    (None, 'Just text.')
    """
    text = response.strip()
    close = _THINK_CLOSE.search(text)
    if close is None and _THINK_OPEN.match(text):
        # Case 2 reads the answer block too, when one is closed inside the thinking.
        return text[len("<think>") :].strip(), (answer_body(text) or "").strip()
    thought = reasoning(text)
    body = answer_body(text)
    if body is not None:
        return thought, body.strip()
    rest = text[close.end() :] if close else text
    opening = _ANSWER_OPEN.search(rest)
    if opening is not None:
        return thought, rest[opening.end() :].strip()
    return thought, rest.strip()


def judge_split(response: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` as the judge is shown them; reasoning is ``None`` when empty.

    REASONING is everything before the first ``<answer>`` with ``<think>`` tags dropped;
    ANSWER is everything from it on with answer tags dropped, so nothing the user would see
    is hidden from the judge. This text feeds the judge prompt, hence ``rubric_version`` and
    every judge cache key: changing it changes every cached judgement.

    >>> judge_split("<think>It is a knife.</think> <answer>Use it to cut bread.</answer>")
    ('It is a knife.', 'Use it to cut bread.')
    >>> judge_split("<answer>No.</answer>")
    (None, 'No.')
    """
    match = _ANSWER_OPEN.search(response)
    head, tail = (
        (response[: match.start()], response[match.start() :]) if match else (response, "")
    )
    thought = _THINK_TAGS.sub("", head).strip()
    answer = _ANSWER_TAGS.sub("", tail).strip()
    return (thought or None), answer
