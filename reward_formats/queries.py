"""OpenRLHF's query: the prompt and the response decoded together, end-of-turn tokens left on.

OpenRLHF sends ``query`` (prompt + response text, decoded from token ids with
``skip_special_tokens=False``) and ``prompts``; the response is the part of the query after
its prompt, without the end-of-turn and padding tokens the decoder leaves at its end
(SafeGRPO's format allows nothing after ``</answer>``). The service's ``/get_reward`` and
the OpenRLHF file adapter both call ``split_query`` so they cannot disagree.

The decoded query is not always the prompt string plus the response: a vision-language
processor expands a prompt's single ``<|image_pad|>`` (``<image>``, ``<|video_pad|>``…) to
one copy per image patch before the ids are decoded, and some tokenizers decode spaces next
to special tokens differently (Llama 2: ``<s> [INST]`` for the prompt's ``<s>[INST]``). So
``split_query`` tries the contract's rules in order (``MATCHERS``), each giving where the
response starts in the query, and reports which one matched:

``exact``
    the prompt is a prefix of the query, or follows only special tokens and whitespace the
    decoder added in front (a BOS, left padding). A prompt that ends in a placeholder is
    such a prefix of a query that repeats it: the copies after it stay in the response, as
    nothing tells them from the response's own.
``normalised``
    the same after normalising both sides: runs of one repeated placeholder token collapsed
    to one, whitespace next to a special token removed. The response starts at the original
    query offset of the normalised prompt's end (an offset map is kept while normalising), so
    the response is always the query's own text.
``truncated``
    the query begins with a *suffix* of the prompt (either way above) that holds the
    prompt's last assistant header, its open generation turn: OpenRLHF cut a prompt over
    its length budget from the left (``prompt_token_ids[-max_prompt_length:]``, earlier
    turns lost) and decoded what was left, while ``prompts`` still carries the whole
    prompt. The longest such suffix is the kept part; a cut inside a multi-byte character
    decodes as U+FFFD at the query's start, which is skipped. Tried before ``header``,
    whose count of assistant turns is wrong once turns are cut off (it would take a header
    the response wrote for the generation prompt's).
``header``
    the text after the (k+1)-th assistant-turn header of a known chat template
    (``CHAT_TEMPLATES``), where k is the number of assistant turns the prompt already
    completed. Counting from the start, never taking "the last header", is what keeps a
    response that writes a header of its own from hiding its beginning.

Every rule is linear in ``len(query) + len(prompt)``: the special-token patterns have bounded
length, ``str.find`` is linear, normalising is one pass with a piecewise offset map, and the
longest prompt suffix that begins the query is one Knuth-Morris-Pratt pass.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import NamedTuple

__all__ = [
    "CHAT_TEMPLATES",
    "END_OF_TURN_TOKENS",
    "MATCHERS",
    "ChatTemplate",
    "Matcher",
    "QuerySplit",
    "split_query",
    "strip_end_of_turn",
]

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
    """A query cut in two: the prompt as given, the response after it, and the rule that
    found the cut (``exact``, ``normalised``, ``truncated`` or ``header``; see the module
    docstring), which
    the service logs and counts."""

    prompt: str
    response: str
    method: str


class Matcher(NamedTuple):
    """A matching rule: its name (``QuerySplit.method``) and a function giving where the
    response starts in ``query`` for a non-empty ``prompt`` (``None``: no match). It must be
    linear in ``len(query) + len(prompt)``."""

    method: str
    find: Callable[[str, str], int | None]


# --------------------------------------------------------------------------- special tokens

#: A special token as tokenizers decode it: ``<|…|>`` (ChatML, Llama 3, Qwen-VL, Phi),
#: ``<name>``/``</name>`` (``<s>``, ``</s>``, ``<image>``, ``<start_of_turn>``), and Llama 2's
#: ``[INST]``/``[/INST]``/``<<SYS>>``. Every alternative has a bounded length, so scanning
#: is linear. Tags such as ``<think>`` match too; that only normalises whitespace next to
#: them, on both sides alike.
_SPECIAL = (
    r"<</?SYS>>"
    r"|\[/?INST\]"
    r"|<\|[^\s<>|]{1,64}\|>"
    r"|</?[A-Za-z_][\w.-]{0,63}>"
)
_SPECIAL_TOKEN = re.compile(_SPECIAL)
#: What a decoder may put in front of the prompt: special tokens (BOS, padding), whitespace.
_LEADING_RUN = re.compile(rf"(?:\s|{_SPECIAL})*")
#: A special token whose runs collapse to one: a vision/audio placeholder or padding
#: (``<|image_pad|>``, ``<|video_pad|>``, ``<image>``, ``<|placeholder|>``, ``<IMG_CONTEXT>``).
_PLACEHOLDER = re.compile(
    r"pad|image|img|video|vision|audio|placeholder|patch|soft_token|context", re.IGNORECASE
)


def _after_leading_run(text: str, at: int) -> bool:
    """Whether ``text[:at]`` is only special tokens and whitespace (what a decoder adds)."""
    return at == 0 or _LEADING_RUN.fullmatch(text, 0, at) is not None


def _common_prefix(text: str, pos: int, expected: str) -> int:
    """How many characters of ``expected`` ``text`` repeats from ``pos``."""
    n = 0
    while n < len(expected) and pos + n < len(text) and text[pos + n] == expected[n]:
        n += 1
    return n


class _Normalised(NamedTuple):
    """A text normalised for matching, with a piecewise map back to the original.

    The normalised text is a sequence of pieces: plain text copied verbatim, or one special
    token standing for a run of identical placeholders. ``starts[i]`` is piece i's offset in
    ``text``; ``origins[i]``/``ends[i]`` its span in the original.
    """

    text: str
    starts: list[int]
    origins: list[int]
    ends: list[int]

    def original_offset(self, at: int) -> int:
        """The original offset of normalised boundary ``at``: after the whole run a piece
        stands for when ``at`` ends it, so a prompt ending in a placeholder ends after the
        query's N copies of it."""
        if at <= 0 or not self.starts:
            return 0
        i = bisect_right(self.starts, at - 1) - 1
        piece_end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.text)
        return self.ends[i] if at == piece_end else self.origins[i] + at - self.starts[i]


def _normalise(text: str) -> _Normalised:
    """``text`` with runs of one placeholder token collapsed to one and whitespace next to
    special tokens removed; one pass over ``text``."""
    chunks: list[str] = []
    starts: list[int] = []
    origins: list[int] = []
    ends: list[int] = []
    size = 0

    def add(piece: str, begin: int, end: int) -> None:
        nonlocal size
        chunks.append(piece)
        starts.append(size)
        origins.append(begin)
        ends.append(end)
        size += len(piece)

    pos, after_token, run_token = 0, False, None
    for match in _SPECIAL_TOKEN.finditer(text):
        begin, end = match.span()
        lo, hi = pos, begin
        while after_token and lo < hi and text[lo].isspace():
            lo += 1
        while hi > lo and text[hi - 1].isspace():
            hi -= 1
        if lo < hi:
            add(text[lo:hi], lo, hi)
            run_token = None
        token = match.group()
        if token == run_token:
            ends[-1] = end  # one more copy of the placeholder the last piece stands for
        else:
            add(token, begin, end)
            run_token = token if _PLACEHOLDER.search(token) else None
        pos, after_token = end, True
    while after_token and pos < len(text) and text[pos].isspace():
        pos += 1
    if pos < len(text):
        add(text[pos:], pos, len(text))
    return _Normalised("".join(chunks), starts, origins, ends)


# --------------------------------------------------------------------------- chat templates


class ChatTemplate(NamedTuple):
    """A chat template's assistant-turn header and the token that closes a turn."""

    name: str
    assistant_header: re.Pattern[str]
    turn_end: str


#: The known chat templates (Qwen-VL uses ChatML). Whitespace inside a header is optional,
#: as some decoders put spaces between special tokens.
CHAT_TEMPLATES: tuple[ChatTemplate, ...] = (
    ChatTemplate("chatml", re.compile(r"<\|im_start\|>[ \t]*assistant"), "<|im_end|>"),
    ChatTemplate(
        "llama3",
        re.compile(r"<\|start_header_id\|>\s*assistant\s*<\|end_header_id\|>"),
        "<|eot_id|>",
    ),
    ChatTemplate("llama2", re.compile(r"\[/INST\]"), "</s>"),
    ChatTemplate("gemma", re.compile(r"<start_of_turn>[ \t]*model"), "<end_of_turn>"),
    ChatTemplate("phi3", re.compile(r"<\|assistant\|>"), "<|end|>"),
)


def _prompt_template(prompt: str) -> tuple[ChatTemplate, list[re.Match[str]]] | None:
    """The template whose assistant header comes last in ``prompt``, with its headers."""
    best: tuple[ChatTemplate, list[re.Match[str]]] | None = None
    for template in CHAT_TEMPLATES:
        headers = list(template.assistant_header.finditer(prompt))
        if headers and (best is None or headers[-1].start() > best[1][-1].start()):
            best = (template, headers)
    return best


# --------------------------------------------------------------------------- matchers


def _exact_prefix(query: str, prompt: str) -> int | None:
    """The prompt verbatim, at the start or after tokens the decoder put in front."""
    at = query.find(prompt)  # the first occurrence: never later than the real prompt
    return at + len(prompt) if at >= 0 and _after_leading_run(query, at) else None


def _normalised_prefix(query: str, prompt: str) -> int | None:
    """The exact rule on normalised texts, mapped back to the original query."""
    norm_query, norm_prompt = _normalise(query), _normalise(prompt)
    # The prompt's end is next to the response's first token, which may be special (a
    # "<think>" after ChatML's "assistant\n"): its trailing whitespace is not matched either.
    wanted = norm_prompt.text.rstrip()
    if not wanted:
        return None
    at = norm_query.text.find(wanted)
    if at < 0 or not _after_leading_run(norm_query.text, at):
        return None
    start = norm_query.original_offset(at + len(wanted))
    # Skip as much of the prompt's unmatched trailing whitespace as the query repeats, and no
    # more, so whitespace that begins the response stays in it.
    dropped = prompt[norm_prompt.original_offset(len(wanted)):]
    return start + _common_prefix(query, start, dropped)


def _longest_overlap(query: str, prompt: str) -> int:
    """The length of the longest suffix of ``prompt`` that is a prefix of ``query``.

    Knuth-Morris-Pratt with the query's first ``len(prompt)`` characters as the pattern,
    run over as much of the prompt's end as the pattern is long (no longer suffix can
    match): linear in ``min(len(query), len(prompt))``.

    >>> _longest_overlap("lo world", "hello")
    2
    """
    pattern = query[: len(prompt)]
    if not pattern:
        return 0
    border = [0] * len(pattern)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = border[k - 1]
        if pattern[i] == pattern[k]:
            k += 1
        border[i] = k
    k = 0
    for char in prompt[len(prompt) - len(pattern):]:
        if k == len(pattern):
            k = border[k - 1]
        while k and char != pattern[k]:
            k = border[k - 1]
        if char == pattern[k]:
            k += 1
    return k


def _generation_turn(prompt: str) -> int | None:
    """Where the prompt's open assistant turn begins (its last assistant header, with no
    turn end after it), or ``None`` when the prompt ends in no such turn."""
    found = _prompt_template(prompt)
    if found is None:
        return None
    template, headers = found
    start = headers[-1].start()
    return None if prompt.find(template.turn_end, start) >= 0 else start


#: What a decoder makes of a multi-byte character whose first bytes were cut off.
_REPLACEMENT = "\ufffd"


def _truncated_prefix(query: str, prompt: str) -> int | None:
    """After the longest suffix of the prompt that begins the query and holds its open
    generation turn; verbatim first, then on normalised texts (see ``_normalised_prefix``)."""
    skip = len(query) - len(query.lstrip(_REPLACEMENT))
    body = query[skip:]
    turn = _generation_turn(prompt)
    if turn is not None:
        kept = _longest_overlap(body, prompt)
        if kept >= len(prompt) - turn:
            return skip + kept
    norm_query, norm_prompt = _normalise(body), _normalise(prompt)
    wanted = norm_prompt.text.rstrip()
    turn = _generation_turn(wanted)
    if turn is None:
        return None
    kept = _longest_overlap(norm_query.text, wanted)
    if kept < len(wanted) - turn:
        return None
    start = skip + norm_query.original_offset(kept)
    dropped = prompt[norm_prompt.original_offset(len(wanted)):]
    return start + _common_prefix(query, start, dropped)


def _after_assistant_header(query: str, prompt: str) -> int | None:
    """After the query's (k+1)-th assistant header, k = the prompt's completed assistant turns.

    A turn is completed when the template's turn-end token follows its header in the prompt;
    the open turn the prompt ends with (the generation prompt) is the (k+1)-th. Text the
    prompt has after that header (ChatML's newline, a prefilled empty ``<think>`` block) is
    skipped when the query repeats it.
    """
    found = _prompt_template(prompt)
    if found is None:
        return None
    template, headers = found
    last_end = prompt.rfind(template.turn_end)
    completed = sum(1 for header in headers if header.start() < last_end)
    start = None
    for i, header in enumerate(template.assistant_header.finditer(query)):
        if i == completed:
            start = header.end()
            break
    if start is None:
        return None
    tail = prompt[headers[completed].end():] if completed < len(headers) else ""
    if query.startswith(tail, start):
        return start + len(tail)
    return start + _common_prefix(query, start, tail[: len(tail) - len(tail.lstrip())])


#: The matching rules, tried in order; the first that matches decides.
MATCHERS: tuple[Matcher, ...] = (
    Matcher("exact", _exact_prefix),
    Matcher("normalised", _normalised_prefix),
    Matcher("truncated", _truncated_prefix),
    Matcher("header", _after_assistant_header),
)


def split_query(
    query: str, prompt: str | None, tokens: Iterable[str] = END_OF_TURN_TOKENS
) -> QuerySplit | None:
    """``(prompt, response, method)`` from OpenRLHF's query, ``None`` when no rule matches.

    Args:
        query: prompt + response, as OpenRLHF decodes it.
        prompt: the prompt text; empty or ``None`` means the whole query is the response.
        tokens: end-of-turn tokens stripped from the response's end.

    >>> split_query("<s>Q: hi A: hello<|im_end|>", "Q: hi")
    QuerySplit(prompt='Q: hi', response=' A: hello', method='exact')
    >>> split_query("<s> [INST] hi [/INST] Sure</s>", "<s>[INST] hi [/INST]")
    QuerySplit(prompt='<s>[INST] hi [/INST]', response=' Sure', method='normalised')
    >>> split_query("something else", "Q: hi") is None
    True
    """
    if not prompt:
        return QuerySplit("", strip_end_of_turn(query, tokens), "exact")
    for matcher in MATCHERS:
        start = matcher.find(query, prompt)
        if start is not None:
            return QuerySplit(prompt, strip_end_of_turn(query[start:], tokens), matcher.method)
    return None
