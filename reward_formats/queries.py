"""OpenRLHF's query: the prompt and the response decoded together, end-of-turn tokens left on.

OpenRLHF sends ``query`` (prompt + response text, decoded with
``skip_special_tokens=False``) and ``prompts``; the response is the part of the query after
its prompt, without the end-of-turn and padding tokens the decoder leaves at its end
(SafeGRPO's format allows nothing after ``</answer>``). The service's ``/get_reward`` and
the OpenRLHF file adapter both call ``split_query`` so they cannot disagree.

Matching is a list of rules tried in order (``MATCHERS``), each returning where the response
starts in the query. Today: the exact prefix, then the prompt found further in (decoding may
add a BOS or whitespace in front). The contract's fuller rules (collapsing a repeated image
placeholder, whitespace around special tokens, the (k+1)-th assistant-turn header of a known
chat template) are further matchers appended to that list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

__all__ = ["END_OF_TURN_TOKENS", "MATCHERS", "QuerySplit", "split_query", "strip_end_of_turn"]

#: End-of-turn, end-of-text and padding tokens of the common chat templates (ChatML/Qwen,
#: Llama 3, Llama 2, Gemma, Phi), removed from the end of a response.
END_OF_TURN_TOKENS: tuple[str, ...] = (
    "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>", "</s>",
    "<eos>", "<end_of_turn>", "<pad>", "<|pad|>",
)


def _rstrip_end(text: str, end: int) -> int:
    """The end of ``text[:end].rstrip()``, without copying."""
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return end


def strip_end_of_turn(text: str, tokens: Iterable[str] = END_OF_TURN_TOKENS) -> str:
    """``text`` without trailing end-of-turn tokens and the whitespace around them.

    Tokens are removed from the end as long as one ends the text (the longest first, so a
    token that ends another does not cut it in half). Linear in ``len(text)``: the end is
    moved back instead of slicing the text once per token.

    Args:
        text: a decoded response.
        tokens: the tokens to remove (empty strings are ignored).

    >>> strip_end_of_turn("<answer>No.</answer><|im_end|>\\n<|endoftext|>")
    '<answer>No.</answer>'
    """
    ordered = sorted({t for t in tokens if t}, key=len, reverse=True)
    end = _rstrip_end(text, len(text))
    while True:
        for token in ordered:
            if text.endswith(token, 0, end):
                end = _rstrip_end(text, end - len(token))
                break
        else:
            return text[:end]


class QuerySplit(NamedTuple):
    """A query cut in two: the prompt as given, and the response after it."""

    prompt: str
    response: str


#: A rule that finds where the response starts in ``query`` given ``prompt`` (``None``: no match).
Matcher = Callable[[str, str], int | None]


def _exact_prefix(query: str, prompt: str) -> int | None:
    return len(prompt) if query.startswith(prompt) else None


def _prompt_inside(query: str, prompt: str) -> int | None:
    # Decoding may add a BOS token or whitespace in front of the prompt.
    at = query.find(prompt)
    return None if at < 0 else at + len(prompt)


#: The matching rules, tried in order; the first that matches decides.
MATCHERS: tuple[Matcher, ...] = (_exact_prefix, _prompt_inside)


def split_query(
    query: str, prompt: str | None, tokens: Iterable[str] = END_OF_TURN_TOKENS
) -> QuerySplit | None:
    """``(prompt, response)`` from OpenRLHF's query, or ``None`` when the prompt is not in it.

    Args:
        query: prompt + response, as OpenRLHF decodes it.
        prompt: the prompt text; empty or ``None`` means the whole query is the response.
        tokens: end-of-turn tokens stripped from the response's end.

    >>> split_query("<s>Q: hi A: hello<|im_end|>", "Q: hi")
    QuerySplit(prompt='Q: hi', response=' A: hello')
    >>> split_query("something else", "Q: hi") is None
    True
    """
    if not prompt:
        return QuerySplit("", strip_end_of_turn(query, tokens))
    for matcher in MATCHERS:
        start = matcher(query, prompt)
        if start is not None:
            return QuerySplit(prompt, strip_end_of_turn(query[start:], tokens))
    return None
