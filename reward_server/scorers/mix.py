"""Profiles of kind ``mix``: a weighted sum of rule and judge profiles (``hybrid``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from reward_server.availability import PartialOutage, Readiness
from reward_server.domain import Sample, ScoreResult, Status
from reward_server.profiles import MixProfile
from reward_server.profiles.names import part_key, part_prefixes
from reward_server.rubric import INJECTION
from reward_server.scorers.base import ProfileScorer


class MixScorer(ProfileScorer):
    """``sum(w_i * part_i)`` when every part can score the sample, else the fallback alone.

    Components and penalties carry every side, prefixed ``rules.`` / ``judge.``, except
    ``injection``: a part that caught an injection (``penalties.injection``) makes the
    sample's reward 0 whatever the other parts say, and ``injection`` is reported as it is,
    unprefixed. Otherwise, if any part is ``invalid`` the mix is ``invalid`` too: a
    half-known reward is not a reward. If a part raises ``PartialOutage`` (the judge failed
    on some samples) the mix raises it too, carrying the samples every part did answer.
    """

    def __init__(
        self,
        profile: MixProfile,
        rubric_version: str | Callable[[], str],
        parts: list[tuple[float, ProfileScorer]],
        fallback: ProfileScorer | None,
    ) -> None:
        super().__init__(profile, rubric_version)
        self.parts = parts
        self.fallback = fallback
        self.uses_judge = any(p.uses_judge for _, p in parts) or bool(
            fallback and fallback.uses_judge
        )
        self._prefixes = part_prefixes([p.profile for _, p in parts])

    def _needed(self) -> list[ProfileScorer]:
        needed = [p for _, p in self.parts]
        if self.fallback is not None and self.fallback not in needed:
            needed.append(self.fallback)
        return needed

    def readiness(self) -> Readiness:
        states = [(scorer.name, scorer.readiness()) for scorer in self._needed()]
        for name, state in states:
            if not state.ready:
                return Readiness(False, f"{name}: {state.detail}")
        return Readiness(True, "; ".join(state.detail for _, state in states))

    def _route(self, sample: Sample) -> str | None:
        """``"mix"``, ``"fallback"`` or ``None`` when neither can score the sample."""
        if all(p.unscorable(sample) is None for _, p in self.parts):
            return "mix"
        if self.fallback is not None and self.fallback.unscorable(sample) is None:
            return "fallback"
        return None

    def unscorable(self, sample: Sample) -> str | None:
        if self._route(sample) is not None:
            return None
        reasons = [r for _, p in self.parts if (r := p.unscorable(sample))]
        return "; ".join(reasons) or f"profile {self.name} cannot score this sample"

    async def score(self, samples: Sequence[Sample]) -> list[ScoreResult]:
        routes = [self._route(s) for s in samples]
        mixed = [i for i, route in enumerate(routes) if route == "mix"]
        alone = [i for i, route in enumerate(routes) if route != "mix"]
        jobs = [p.score([samples[i] for i in mixed]) for _, p in self.parts]
        if alone and self.fallback is not None:
            jobs.append(self.fallback.score([samples[i] for i in alone]))
        outputs, outage = _answered(await asyncio.gather(*jobs, return_exceptions=True))
        results: list[ScoreResult | None] = [None] * len(samples)
        for row, i in enumerate(mixed):
            parts = [out[row] for out in outputs[: len(self.parts)]]
            if all(r is not None for r in parts):
                results[i] = self._combine(parts)  # type: ignore[arg-type]
        if alone and self.fallback is not None:
            prefix = self.fallback.profile.side
            for row, i in enumerate(alone):
                if (r := outputs[-1][row]) is not None:
                    results[i] = _prefixed(r, prefix)
        if outage is not None:  # a part could not answer some samples: 503, keep the rest
            raise PartialOutage(outage.message, results, outage.retry_after)
        return results  # type: ignore[return-value]

    def _combine(self, part_results: list[ScoreResult]) -> ScoreResult:
        errors = [
            f"{prefix}: {r.error}"
            for prefix, r in zip(self._prefixes, part_results, strict=True)
            if r.status is not Status.OK
        ]
        components: dict[str, float] = {}
        penalties: dict[str, float] = {}
        judge = None
        reward = 0.0
        for (weight, _), prefix, r in zip(self.parts, self._prefixes, part_results, strict=True):
            components.update({part_key(prefix, k): v for k, v in r.components.items()})
            penalties.update({part_key(prefix, k): v for k, v in r.penalties.items()})
            judge = judge or r.judge
            if r.reward is not None:
                reward += weight * r.reward
        if INJECTION in penalties:  # caught by a judge part: 0, whatever the rules half says
            return ScoreResult.ok(0.0, components=components, penalties=penalties, judge=judge)
        if errors:
            return ScoreResult.invalid(
                "; ".join(errors), components=components, penalties=penalties, judge=judge
            )
        return ScoreResult.ok(
            min(1.0, max(0.0, reward)), components=components, penalties=penalties, judge=judge
        )


def _answered(
    outputs: list[list[ScoreResult] | BaseException],
) -> tuple[list[list[ScoreResult | None]], PartialOutage | None]:
    """Each part's results (``None`` where a ``PartialOutage`` left a sample unanswered),
    and the first such outage; any other exception is raised as it is."""
    for out in outputs:
        if isinstance(out, BaseException) and not isinstance(out, PartialOutage):
            raise out
    outage = next((out for out in outputs if isinstance(out, PartialOutage)), None)
    rows = [out.answered if isinstance(out, PartialOutage) else out for out in outputs]
    return rows, outage  # type: ignore[return-value]


def _prefixed(result: ScoreResult, prefix: str) -> ScoreResult:
    return ScoreResult(
        status=result.status,
        reward=result.reward,
        components={part_key(prefix, k): v for k, v in result.components.items()},
        penalties={part_key(prefix, k): v for k, v in result.penalties.items()},
        judge=result.judge,
        error=result.error,
    )
