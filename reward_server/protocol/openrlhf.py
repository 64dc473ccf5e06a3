"""``POST /get_reward``: OpenRLHF's remote reward protocol (``--remote_rm_url``).

OpenRLHF sends ``query`` (prompt + response text), ``prompts`` and ``labels``; the response
is the part of each query after its prompt, without trailing end-of-turn tokens
(``reward_formats.queries.split_query``, the rule the file-mode adapter uses too). An
unscorable sample gets ``null`` in ``rewards`` and ``scores`` (never a made-up number) and
its reason in ``errors``; ``extra_logs["valid"]`` is 1/0. OpenRLHF itself turns rewards into
a tensor without a null check, so send labels with every sample or use the file-mode adapter
``clients/adapters/openrlhf.py`` that maps null to a value you choose.
"""

from __future__ import annotations

from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from 3.12

from reward_formats.labels import LabelError, parse_labels
from reward_formats.queries import split_query
from reward_server.domain import Labels, Sample, ScoreOutcome, Status


class OpenRLHFRequest(BaseModel):
    """OpenRLHF's request; ``prompts`` and ``labels``, when given, have one item per query."""

    model_config = ConfigDict(extra="ignore")
    query: list[str] = Field(description="Prompt + response text, one per sample.")
    prompts: list[str] | None = Field(None, description="Each query's prompt.")
    labels: list[Any] | None = Field(
        None,
        description="A label object, a JSON string of one, or a bare `safe`/`unsafe` "
        "(taken as `combine_tag`).",
    )

    def to_samples(self, max_response_chars: int) -> list[Sample]:
        """One domain ``Sample`` per query; a query whose response cannot be found, whose
        label is unusable or whose response is longer than ``max_response_chars`` becomes an
        unscorable sample (its neighbours are scored).

        Run only after the lengths were checked: the query splitting is linear in them.
        """
        samples: list[Sample] = []
        for i, query in enumerate(self.query):
            prompt = self.prompts[i] if self.prompts else None
            labels, error = _sample_labels(self.labels[i] if self.labels else None)
            error = error and f"labels[{i}]: {error}"
            split = split_query(query, prompt)
            if split is None:
                error = f"query[{i}] does not contain prompts[{i}]"
                split = ("", query)
            elif len(split[1]) > max_response_chars:
                error = (
                    f"query[{i}]: response of {len(split[1])} characters, longer than "
                    f"REWARD_MAX_RESPONSE_CHARS={max_response_chars}"
                )
            samples.append(
                Sample(prompt=split[0], response=split[1], id=i, labels=labels, error=error)
            )
        return samples


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
    """Each sample's reward; null where the sample is unscorable."""
    scores: list[float | None]
    """The same as ``rewards`` (OpenRLHF reads either)."""
    extra_logs: dict[str, list[float | None]]
    """Each reward component by name, and ``valid`` (1 scored, 0 unscorable)."""
    errors: NotRequired[list[str | None]]
    """Why each unscorable sample is so (null for the others); sent only when there is one."""


def openrlhf_reply(outcome: ScoreOutcome) -> OpenRLHFResponse:
    """The reply for the service's outcome."""
    results = outcome.results
    rewards = [r.reward for r in results]
    names = sorted({name for r in results for name in r.components})
    extra: dict[str, list[float | None]] = {
        name: [r.components.get(name) for r in results] for name in names
    }
    extra["valid"] = [1.0 if r.status == Status.OK else 0.0 for r in results]
    reply = OpenRLHFResponse(rewards=rewards, scores=rewards, extra_logs=extra)
    if any(r.error for r in results):
        reply["errors"] = [r.error for r in results]
    return reply
