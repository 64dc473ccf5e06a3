"""Profiles of kind ``judge``: SaFeR-VLM's generative reward, on the profile's rubric,
through a configured judge, behind the injection rule.

The policy is trained against the judge and learns whatever moves it; text addressed to
the grader is the cheapest move. So before the judge is asked, every response goes
through ``detect_injections`` with the rubric's reply keys (and ``step_safety``): a hit
is reward 0 with ``components.injection = 1`` and ``penalties.injection = -1``, and the
judge never sees it (a mix that includes this profile gives the sample 0 too, whatever its
other parts say: ``reward_server.scorers.mix``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from reward_formats.response import has_answer
from reward_formats.steps import split_steps
from reward_server.availability import PartialOutage, Readiness
from reward_server.domain import Sample, ScoreResult
from reward_server.judge.base import Judge
from reward_server.offload import run_sized, text_chars
from reward_server.profiles import JudgeProfile
from reward_server.rubric import INJECTION, STEP_KEY, JudgeVerdict
from reward_server.scorers.base import ProfileScorer
from reward_server.scorers.injection import InjectionHit, detect_injections
from reward_server.scorers.safer_vlm import aggregate, no_answer_result

log = logging.getLogger(__name__)


def injection_result(sample: Sample, hit: InjectionHit) -> ScoreResult:
    """A caught response: reward 0, ``injection`` 1 in components and -1 in penalties."""
    log.info("injection caught (%s) at %d: %r", hit.rule, hit.start, hit.excerpt)
    return ScoreResult.ok(
        0.0,
        components={"format": 1.0 if has_answer(sample.response) else 0.0, INJECTION: 1.0},
        penalties={INJECTION: -1.0},
    )


class JudgeScorer(ProfileScorer):
    """Asks the judge about every sample with an answer block and aggregates its verdict,
    unless the injection rule caught the response (see module docstring).

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

    def __init__(
        self, profile: JudgeProfile, rubric_version: str | Callable[[], str], judge: Judge | None
    ) -> None:
        super().__init__(profile, rubric_version)
        self.judge = judge
        self.rubric = profile.rubric
        # The judge's reserved keys count whatever the rubric: a forged "step_safety" score
        # addresses a grader under any profile, not only under a process rubric.
        self.injection_keys = tuple(dict.fromkeys((*profile.rubric.reply_keys, STEP_KEY)))

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
        keys = self.injection_keys  # a large request is checked in a worker thread (offload)
        hits = await run_sized(
            text_chars(samples),
            lambda: detect_injections([s.response for s in samples], rubric_keys=keys),
        )
        for i, (sample, hit) in enumerate(zip(samples, hits, strict=True)):
            if hit is not None:
                results[i] = injection_result(sample, hit)
            elif has_answer(sample.response):
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
            judged = [samples[i] for i in to_judge]
            # Step splitting of process verdicts reads every response: sized like the rest.
            for i, result in zip(to_judge, await run_sized(
                text_chars(judged),
                lambda: [self._result(s, v) for s, v in zip(judged, verdicts, strict=True)],
            ), strict=True):
                results[i] = result
        return results  # type: ignore[return-value]
