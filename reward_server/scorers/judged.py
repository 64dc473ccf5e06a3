"""Profiles of kind ``judge``: SaFeR-VLM's generative reward, on the profile's rubric,
through a configured judge."""

from __future__ import annotations

from collections.abc import Sequence

from reward_formats.response import has_answer
from reward_formats.steps import split_steps
from reward_server.availability import PartialOutage, Readiness
from reward_server.domain import Sample, ScoreResult
from reward_server.judge.base import Judge
from reward_server.profiles import Profile
from reward_server.rubric import JudgeVerdict
from reward_server.scorers.base import ProfileScorer
from reward_server.scorers.safer_vlm import aggregate, no_answer_result


class JudgeScorer(ProfileScorer):
    """Asks the judge about every sample with an answer block and aggregates its verdict.

    Components: ``format`` and each dimension of the rubric as ``(x - 1) / 9`` (after
    mapping its scale onto 1–10), and ``process_safety`` for a process rubric with steps;
    penalties: each flag in points; ``judge`` carries the raw verdict, and for a process
    rubric ``steps`` and ``first_unsafe_step``.

    A verdict that arrived but could not be used (a reason string) makes its sample
    ``invalid``. A judge that failed on some samples (a call that timed out or lost its
    connection) raises ``PartialOutage``: the request is a 503, and the samples that were
    answered travel with it as results, so the service can cache them for the retry.
    """

    uses_judge = True

    def __init__(self, profile: Profile, rubric_version: str, judge: Judge | None) -> None:
        super().__init__(profile, rubric_version)
        self.judge = judge
        self.rubric = profile.rubric

    def readiness(self) -> Readiness:
        if self.judge is None:
            return Readiness(False, "no judge configured (REWARD_JUDGE_BACKEND=none)")
        return self.judge.readiness()

    def _result(self, sample: Sample, verdict: JudgeVerdict | str) -> ScoreResult:
        if isinstance(verdict, str):
            return ScoreResult.invalid(f"judge: {verdict}")
        # the judge split the same response the same way, so the offsets match its scores
        steps = split_steps(sample.response) if verdict.step_safety else ()
        return aggregate(verdict, self.rubric, steps)

    async def score(self, samples: Sequence[Sample]) -> list[ScoreResult]:
        results: list[ScoreResult | None] = [None] * len(samples)
        to_judge: list[int] = []
        for i, sample in enumerate(samples):
            if has_answer(sample.response):
                to_judge.append(i)
            else:
                results[i] = no_answer_result()
        if to_judge:
            assert self.judge is not None  # readiness() was checked by the service
            try:
                verdicts = await self.judge.judge([samples[i] for i in to_judge], self.rubric)
            except PartialOutage as outage:
                for i, verdict in zip(to_judge, outage.answered, strict=True):
                    if verdict is not None:
                        results[i] = self._result(samples[i], verdict)
                raise PartialOutage(outage.message, results, outage.retry_after) from None
            for i, verdict in zip(to_judge, verdicts, strict=True):
                results[i] = self._result(samples[i], verdict)
        return results  # type: ignore[return-value]
