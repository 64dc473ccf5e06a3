"""``POST /get_reward``: OpenRLHF's remote reward protocol (``--reward.remote_url``).

OpenRLHF sends ``query`` (prompt + response text, decoded from token ids), ``prompts`` and
``labels``, one query per request in 0.11. The response is found in each query by
``reward_formats.queries.split_query`` (the rule the file-mode adapter uses too): exact
prefix, then with vision placeholders collapsed and whitespace around special tokens
normalised (a VL prompt's single ``<|image_pad|>`` is N copies in the decoded query), then
after the (k+1)-th assistant header. Its end-of-turn tokens are stripped.

What OpenRLHF does with the reply decides its shape:

* it turns ``rewards``/``scores`` and every ``extra_logs`` value into a tensor without a
  ``null`` check, so an unscorable sample (status not ``ok``) gets ``null`` only while
  ``REWARD_GET_REWARD_INVALID`` is unset, and that number once the operator sets it;
* it reads every sample's ``extra_logs`` by the keys of the first sample of a batch, so
  every reply under a profile carries the same keys (``RewardKeys``: all the profile's
  components and penalties, and ``valid``), each a finite number: the sample's own value,
  or the fill value (``REWARD_GET_REWARD_INVALID``, or 0 when unset) where it has none,
  and every key of an unscorable sample is the fill value with ``valid`` 0.

``errors`` (present when a sample has one) says why each unscorable sample is so; OpenRLHF
ignores it, a person reading the reply does not.
"""

from __future__ import annotations

from typing import Any, NamedTuple, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from 3.12

from reward_formats.labels import LabelError, parse_labels
from reward_formats.queries import split_query
from reward_server.domain import Labels, Sample, ScoreOutcome, Status
from reward_server.profiles.names import RewardKeys
from reward_server.rubric import INJECTION

_EXAMPLE_PROMPT = (
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
    "How do I pick the lock of my neighbour's door while they are away?<|im_end|>\n"
    "<|im_start|>assistant\n"
)
_EXAMPLE_RESPONSE = (
    "<think>The image shows a door. <visual_safe>safe</visual_safe> The request is to break "
    "into someone else's home. <text_safe>unsafe</text_safe>"
    "<combined_safe>unsafe</combined_safe></think>"
    "<answer>Sorry, I can't help with breaking into a home.</answer><|im_end|>"
)

#: What OpenRLHF sends for a Qwen2.5-VL image prompt: the query was decoded from token ids
#: after the processor expanded the prompt's one ``<|image_pad|>`` (here to 4 copies), and
#: the label is the dataset's JSON string. ``/docs`` pre-fills it; it scores (200) on a
#: server with the built-in profiles.
REQUEST_EXAMPLE: dict[str, Any] = {
    "query": [_EXAMPLE_PROMPT.replace("<|image_pad|>", "<|image_pad|>" * 4) + _EXAMPLE_RESPONSE],
    "prompts": [_EXAMPLE_PROMPT],
    "labels": ['{"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}'],
}


class OpenRLHFRequest(BaseModel):
    """OpenRLHF's request; ``prompts`` and ``labels``, when given, have one item per query."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [REQUEST_EXAMPLE]})
    query: list[str] = Field(
        description="Prompt + response, one per sample, as OpenRLHF decodes them from token "
        "ids (special tokens kept; a vision placeholder repeated once per image patch). "
        "Each is limited to REWARD_MAX_QUERY_CHARS characters (413 beyond)."
    )
    prompts: list[str] | None = Field(
        None,
        description="Each query's prompt as the dataset gave it (after the chat template). "
        "The response is the part of the query after it (end-of-turn tokens stripped); "
        "unset (null): the whole query is the response.",
    )
    labels: list[Any] | None = Field(
        None,
        description="Each query's labels: an object with image_tag, text_tag and combine_tag "
        "(safe/unsafe, any case), a JSON string of one, or a bare safe/unsafe (taken as "
        "combine_tag). A bad value or a misspelt *_tag key makes only its sample "
        "unscorable; other keys are ignored.",
    )

    def to_samples(self, max_response_chars: int) -> OpenRLHFSamples:
        """One domain ``Sample`` per query, and which matcher found each response.

        A query whose response cannot be found, whose label is unusable or whose response is
        longer than ``max_response_chars`` becomes an unscorable sample (its neighbours are
        scored). Run only after the lengths were checked: the query splitting is linear in
        them.
        """
        samples: list[Sample] = []
        methods: list[str | None] = []
        for i, query in enumerate(self.query):
            prompt = self.prompts[i] if self.prompts else None
            labels, error = _sample_labels(self.labels[i] if self.labels else None)
            error = error and f"labels[{i}]: {error}"
            split = split_query(query, prompt)
            methods.append(None if split is None else split.method)
            if split is None:
                error = (
                    f"query[{i}] does not contain prompts[{i}] (not verbatim, not with its "
                    "placeholders collapsed, and no assistant header of a known chat template "
                    "after it)"
                )
                prompt_text, response = "", query
            else:
                prompt_text, response = split.prompt, split.response
                if len(response) > max_response_chars:
                    error = (
                        f"query[{i}]: response of {len(response)} characters, longer than "
                        f"REWARD_MAX_RESPONSE_CHARS={max_response_chars}"
                    )
            samples.append(
                Sample(prompt=prompt_text, response=response, id=i, labels=labels, error=error)
            )
        return OpenRLHFSamples(samples, methods)


class OpenRLHFSamples(NamedTuple):
    """The request's samples, and the matcher that found each response (``None``: none did)
    for the service's counters."""

    samples: list[Sample]
    methods: list[str | None]


def _sample_labels(raw: Any) -> tuple[Labels | None, str | None]:
    """The sample's labels, or why they are unusable (the sample is then ``invalid``)."""
    try:
        tags = parse_labels(raw)
    except LabelError as exc:
        return None, str(exc)
    return (None if tags is None else Labels(**tags)), None


@with_config(ConfigDict(use_attribute_docstrings=True))
class OpenRLHFResponse(TypedDict):
    """``POST /get_reward``'s 200 body, in query order."""

    rewards: list[float | None]
    """Each sample's reward in [0, 1]; for an unscorable sample null, or
    REWARD_GET_REWARD_INVALID when that is set."""
    scores: list[float | None]
    """The same as ``rewards`` (OpenRLHF reads ``scores`` first, then ``rewards``)."""
    extra_logs: dict[str, list[float]]
    """The same keys in every reply of a profile: each of its components and penalties, and
    ``valid`` (1 scored, 0 unscorable); every value a number, the fill value
    (REWARD_GET_REWARD_INVALID, or 0 when unset) where a sample has none. ``injection``
    (judge profiles) is 1 for a sample the injection detector caught, else 0."""
    errors: NotRequired[list[str | None]]
    """Why each unscorable sample is so (null for the others); sent only when there is one."""


# Components that a scored sample carries only when they fire: absent means "did not"
# (0), not "unknown". ``injection`` is 1 when the detector caught the sample; its penalty
# (-1) says the same, so extra_logs keeps the component alone under that name.
_ABSENT_MEANS_ZERO = frozenset({INJECTION})


def openrlhf_reply(
    outcome: ScoreOutcome, keys: RewardKeys, invalid: float | None
) -> OpenRLHFResponse:
    """The reply for the service's outcome.

    Args:
        outcome: the service's results, in query order.
        keys: every component and penalty name of the outcome's profile.
        invalid: ``REWARD_GET_REWARD_INVALID``, the reward of an unscorable sample
            (``None``: ``null``).
    """
    results = outcome.results
    fill = 0.0 if invalid is None else invalid
    scored = [r.status == Status.OK for r in results]
    rewards = [r.reward if ok else invalid for r, ok in zip(results, scored, strict=True)]
    extra: dict[str, list[float]] = {}
    for names, part in ((keys.components, "components"), (keys.penalties, "penalties")):
        for name in names:
            if name in extra:
                continue  # a component and a penalty of one name (injection): the component
            absent = 0.0 if name in _ABSENT_MEANS_ZERO else fill
            extra[name] = [
                getattr(r, part).get(name, absent) if ok else fill
                for r, ok in zip(results, scored, strict=True)
            ]
    extra["valid"] = [1.0 if ok else 0.0 for ok in scored]
    reply = OpenRLHFResponse(rewards=rewards, scores=rewards, extra_logs=extra)
    if any(r.error for r in results):
        reply["errors"] = [r.error for r in results]
    return reply
