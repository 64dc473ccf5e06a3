"""Profiles of kind ``rules``: SafeGRPO's verifiable reward, in process."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reward_server.domain import Labels, Sample, ScoreResult
from reward_server.offload import run_sized, text_chars
from reward_server.profiles import RulesProfile
from reward_server.profiles.names import REFUSED
from reward_server.scorers.base import ProfileScorer
from reward_server.scorers.refusal import get_refusal_detector
from reward_server.scorers.safegrpo import RuleOutcome, SafeGRPORules

_UNKNOWN = Labels()


class RulesScorer(ProfileScorer):
    """``F * (tag_weight*T + behavior_weight*B)``; see ``reward_server.scorers.safegrpo``.

    Components: ``format``, ``tag``, ``behavior`` (each in [0, 1]) and ``refused`` (1 when
    the refusal detector found the answer refusing, 0 when not; absent without an answer
    block); no penalties. Needs ``labels.combine_tag``; ``image_tag`` and ``text_tag``
    default to unknown (no credit).
    """

    def __init__(self, profile: RulesProfile, rubric_version: str | Callable[[], str]) -> None:
        super().__init__(profile, rubric_version)
        self.rules = SafeGRPORules(
            get_refusal_detector(profile.refusal), profile.tag_weight, profile.behavior_weight
        )

    def unscorable(self, sample: Sample) -> str | None:
        if sample.labels is None or sample.labels.combine_tag is None:
            return f"profile {self.name} needs labels.combine_tag"
        return None

    def _result(self, outcome: RuleOutcome) -> ScoreResult:
        components = {"format": outcome.format, "tag": outcome.tag, "behavior": outcome.behavior}
        if outcome.refused is not None:
            components[REFUSED] = 1.0 if outcome.refused else 0.0
        return ScoreResult.ok(outcome.reward, components=components)

    inline = True

    def score_inline(self, samples: Sequence[Sample]) -> list[ScoreResult]:
        outcomes = self.rules.many([s.response for s in samples],
                                   [s.labels or _UNKNOWN for s in samples],
                                   [s.prompt_text for s in samples])  # fmt: skip
        return [self._result(outcome) for outcome in outcomes]

    async def score(self, samples: Sequence[Sample]) -> list[ScoreResult]:
        # Reached as a part of a mix (hybrid's rules half): a large request in a worker thread.
        return await run_sized(text_chars(samples), self.score_inline, samples)
