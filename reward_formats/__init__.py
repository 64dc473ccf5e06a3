"""The formats every part of the project shares: one implementation each, stdlib only.

The service (``reward_server``), the trainer and evaluation (``trainer``) and the clients
(``clients``) all import these; none reimplements them. The package depends on nothing
outside the standard library (a PIL image is encoded through its own ``save``), so the
client side can ship it without the server's dependencies.

Public API (import from the submodule or from the package):

``reward_formats.response`` — ``<think>``/``<answer>`` splitting, all linear in the text:
    ``answer_span(response, start=0) -> (begin, end) | None``
        the answer body's span: first ``<answer>`` at/after ``start`` to the first
        ``</answer>`` after it.
    ``answer_body(response, start=0) -> str | None``
        that body (unstripped): the answer the rewards read.
    ``has_answer(response) -> bool``
        a closed answer block exists (SaFeR-VLM's format gate).
    ``reasoning_span(response) -> (start, end) | None``
        where the reasoning is: before the first ``</think>``, after a ``<think>`` if any.
    ``reasoning(response) -> str | None``
        the text of that span, stripped.
    ``split_response(response) -> (reasoning | None, answer)``
        evaluation's split; its answer is ``answer_body`` when there is one, with documented
        fallbacks (unclosed ``<answer>``, unclosed ``<think>``, untagged text) otherwise.
    ``judge_split(response) -> (reasoning | None, answer)``
        what the SaFeR-VLM judge is shown (before / from the first ``<answer>``, tags dropped).

``reward_formats.steps`` — the reasoning's steps, with offsets (process-level judging,
step-level credit, per-step evaluation):
    ``split_steps(response, max_steps=MAX_STEPS) -> list[Step]``
        ``Step(index, start, end)`` (a NamedTuple, ``index`` from 1); cut on ``Step N:``
        markers, else on blank lines; at most ``MAX_STEPS`` (12), more merged into that
        many of near-equal length; ``response[start:end]`` is the step's text.

``reward_formats.queries`` — OpenRLHF's prompt+response query:
    ``END_OF_TURN_TOKENS``: the end-of-turn/EOS/padding tokens stripped from a response.
    ``strip_end_of_turn(text, tokens=END_OF_TURN_TOKENS) -> str`` (linear).
    ``split_query(query, prompt, tokens=END_OF_TURN_TOKENS) -> QuerySplit | None``
        ``QuerySplit(prompt, response, method)`` (a NamedTuple; ``method`` is ``exact``,
        ``normalised`` or ``header``), ``None`` when no rule finds the response; the rules
        are the ordered ``MATCHERS`` tuple (exact prefix; placeholder runs collapsed and
        whitespace around special tokens normalised; the (k+1)-th assistant header).

``reward_formats.labels`` — SafeTag-VL labels per the contract:
    ``TAG_KEYS`` (``image_tag``, ``text_tag``, ``combine_tag``), ``TAG_VALUES`` (``safe``,
    ``unsafe``), ``LabelError`` (a ``ValueError``; the message names the key and what is
    accepted).
    ``is_tag_key(key) -> bool`` (a key the contract reads: a tag or a ``*_tag`` typo)
    ``normalise_tag(value, key="combine_tag") -> "safe" | "unsafe" | None``
    ``normalise_labels(mapping) -> dict[str, str]`` (known tags only; ``*_tag`` typos raise,
        other keys are ignored)
    ``parse_labels(raw) -> dict[str, str] | None`` (a mapping, a JSON string of one, or a
        bare ``safe``/``unsafe`` taken as ``combine_tag``; ``None``/``""`` give ``None``)
    ``tag_rule(key) -> str`` (what a value must be, as the error messages say it)

``reward_formats.images`` — images as data URLs with the true MIME type:
    ``sniff_mime(data) -> str | None`` (PNG, JPEG, GIF, WEBP, BMP by magic bytes),
    ``MIME_TYPES``, ``data_url(data, mime=None) -> str`` (sniffed when not given),
    ``to_data_url(ref) -> str`` (bytes, a path, a PIL image, a ``{"bytes", "path"}`` dict,
    or a data URL returned unchanged), ``is_pil_image(obj) -> bool``.

``reward_formats.json_object`` — lenient JSON extraction from a model's reply:
    ``extract_json_object(text, accept=None) -> dict | None`` (plain JSON, a fenced block,
    the outermost ``{…}``, then with ``accept`` the last balanced object it approves).

``reward_formats.lists`` — ``as_list(value) -> list`` (one value or many, as a list).

``reward_formats.jsonl`` — ``read_objects(path) -> [(line number, dict)]``: JSON Lines read
strictly, a bad line raising ``ValueError("path:line: ...")``.
"""

from reward_formats.images import MIME_TYPES, data_url, is_pil_image, sniff_mime, to_data_url
from reward_formats.json_object import extract_json_object
from reward_formats.labels import (
    TAG_KEYS,
    TAG_VALUES,
    LabelError,
    is_tag_key,
    normalise_labels,
    normalise_tag,
    parse_labels,
    tag_rule,
)
from reward_formats.lists import as_list
from reward_formats.queries import (
    END_OF_TURN_TOKENS,
    MATCHERS,
    QuerySplit,
    split_query,
    strip_end_of_turn,
)
from reward_formats.response import (
    answer_body,
    answer_span,
    has_answer,
    judge_split,
    reasoning,
    reasoning_span,
    split_response,
)
from reward_formats.steps import MAX_STEPS, Step, split_steps

__all__ = [
    "END_OF_TURN_TOKENS",
    "MATCHERS",
    "MAX_STEPS",
    "MIME_TYPES",
    "TAG_KEYS",
    "TAG_VALUES",
    "LabelError",
    "QuerySplit",
    "Step",
    "answer_body",
    "answer_span",
    "as_list",
    "data_url",
    "extract_json_object",
    "has_answer",
    "is_pil_image",
    "is_tag_key",
    "judge_split",
    "normalise_labels",
    "normalise_tag",
    "parse_labels",
    "reasoning",
    "reasoning_span",
    "sniff_mime",
    "split_query",
    "split_response",
    "split_steps",
    "strip_end_of_turn",
    "tag_rule",
    "to_data_url",
]
