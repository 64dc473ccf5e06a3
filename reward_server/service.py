"""The scoring pipeline, free of HTTP: validate → cache → dedupe → score → store.

Identical samples are computed once whether they repeat inside a request or arrive in
concurrent requests (GRPO groups often repeat a short refusal word for word): the first
request to miss a key owns its computation in a task of its own, later ones await it.
Running it as a task means a client that disconnects does not cancel work other requests
are waiting on, and the finished result still lands in the cache. When the judge fails
part-way (``PartialOutage``) the request is a 503, but the samples it did answer are cached,
so the client's retry pays only for the rest.

Hashing and CPU-only scoring read every character of a request, so a large request does
them in a worker thread (``reward_server.offload``): then other requests run while it is
scored, and its keys are published in flight like a judge's, for them to wait on.

Results are ``ScoreResult``s from end to end: the API sends them as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from reward_server.availability import PartialOutage
from reward_server.cache import Cache, CacheRecord, cache_key
from reward_server.domain import Sample, ScoreOutcome, ScoreResult, Status
from reward_server.errors import RewardError, ScorerUnavailable, UnknownProfile
from reward_server.judge.base import Judge
from reward_server.metrics import Metrics
from reward_server.offload import INLINE_CHARS, run_sized, text_chars
from reward_server.profiles import Profile
from reward_server.profiles.names import detector_hits
from reward_server.scorers.base import ProfileScorer
from reward_server.scorers.registry import build_scorers

log = logging.getLogger(__name__)

#: How a computation scores its samples: a scorer's ``score``, or ``score_inline`` in a thread.
_Score = Callable[[list[Sample]], Awaitable[list[ScoreResult]]]


def _keyed(
    scorer: ProfileScorer, samples: Sequence[Sample], judge_identity: dict[str, str] | None
) -> tuple[list[ScoreResult | None], dict[str, list[int]]]:
    """The ``invalid`` result of each sample that cannot be scored as given (``None`` for the
    others), and each other sample's cache key with the positions of the samples sharing it.

    Pure: a large request runs it in a worker thread (hashing reads every character).
    """
    results: list[ScoreResult | None] = [None] * len(samples)
    positions: dict[str, list[int]] = {}
    version = scorer.rubric_version  # a judge profile's follows the judge: read it once
    for i, sample in enumerate(samples):
        reason = sample.error or scorer.unscorable(sample)
        if reason is not None:
            results[i] = ScoreResult.invalid(reason, id=sample.id)
        else:
            key = cache_key(sample, version, judge_identity)
            positions.setdefault(key, []).append(i)
    return results, positions


#: ``score_patiently``: the first wait between tries when the error asks for less, the
#: longest wait, and the least time a try after a wait gets, even when the deadline is nearer.
_FIRST_WAIT_S = 1.0
_MAX_WAIT_S = 30.0
_LAST_TRY_S = 1.0


class ScoringService:
    """Scores samples under named profiles, with caching and in-flight deduplication.

    Args:
        profiles: every profile by name (built-ins plus the TOML file).
        default_profile: used when a request names none.
        cache: the result cache (LRU or Redis).
        judge: the configured judge, or ``None``.
        metrics: where counters go.
    """

    def __init__(
        self,
        profiles: dict[str, Profile],
        default_profile: str,
        cache: Cache,
        judge: Judge | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if default_profile not in profiles:
            raise ValueError(
                f"REWARD_PROFILE={default_profile!r} is not a profile; "
                f"expected one of {sorted(profiles)}"
            )
        self.profiles = profiles
        self.default_profile = default_profile
        self.cache = cache
        self.judge = judge
        self.metrics = metrics or Metrics()
        self.scorers: dict[str, ProfileScorer] = build_scorers(profiles, judge)
        self._inflight: dict[str, asyncio.Future[ScoreResult]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def scorer(self, name: str | None) -> ProfileScorer:
        name = self.default_profile if name is None else name
        scorer = self.scorers.get(name)
        if scorer is None:
            raise UnknownProfile(name, list(self.scorers))
        return scorer

    async def score(self, profile: str | None, samples: Sequence[Sample]) -> ScoreOutcome:
        """Score ``samples`` under ``profile``; one ``ScoreResult`` per sample, in order.

        Raises:
            UnknownProfile: no profile has that name.
            ScorerUnavailable: a scorer the profile needs cannot score now, or failed
                part-way (the results that did finish are cached all the same).
        """
        scorer = self.scorer(profile)
        state = scorer.readiness()
        if not state.ready:
            raise ScorerUnavailable(f"profile {scorer.name} cannot score now: {state.detail}")

        judge_identity = self.judge.identity if (self.judge and scorer.uses_judge) else None
        results, positions = await run_sized(
            text_chars(samples), _keyed, scorer, samples, judge_identity
        )

        keys = list(positions)
        records = await self.cache.get_many(keys)
        hits: dict[str, CacheRecord] = {}
        owned: list[str] = []
        waiting: dict[str, asyncio.Future[ScoreResult]] = {}
        for key, record in zip(keys, records, strict=True):
            if record is not None:
                hits[key] = record
            elif key in self._inflight:
                waiting[key] = self._inflight[key]
            else:
                owned.append(key)
        self.metrics.cache.labels("hit").inc(len(hits))
        self.metrics.cache.labels("miss").inc(len(owned))
        self.metrics.cache.labels("dedup").inc(
            len(waiting) + sum(len(v) - 1 for v in positions.values())
        )

        computed: dict[str, ScoreResult] = {}
        todo = [samples[positions[k][0]] for k in owned]
        if todo and scorer.inline and text_chars(todo) <= INLINE_CHARS:
            # A small CPU-only batch finishes here without yielding, so no concurrent request
            # can be computing the same key in between: no futures or tasks needed.
            computed = dict(zip(owned, scorer.score_inline(todo), strict=True))
            await self._store(computed)
        elif todo:
            # The judge, or a large CPU-only batch in a worker thread: other requests run
            # meanwhile, so they must find these keys in flight and wait for them.
            score: _Score = (
                partial(asyncio.to_thread, scorer.score_inline) if scorer.inline else scorer.score
            )
            loop = asyncio.get_running_loop()
            futures = {key: loop.create_future() for key in owned}
            self._inflight.update(futures)
            task = asyncio.create_task(self._compute(scorer, score, todo, owned, futures))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            waiting.update(futures)

        # One wait for all keys (shielded: our cancellation must not cancel shared futures),
        # then read results; a future holding ScorerUnavailable re-raises it here (503).
        if waiting:
            await asyncio.shield(asyncio.gather(*set(waiting.values()), return_exceptions=True))
        computed.update({key: future.result() for key, future in waiting.items()})

        for key, idxs in positions.items():
            record = hits.get(key)
            for i in idxs:
                sample_id = samples[i].id
                results[i] = (
                    record.result(sample_id) if record else computed[key].for_sample(sample_id)
                )

        out: list[ScoreResult] = results  # type: ignore[assignment]  # every slot is filled
        rewards = [r.reward for r in out if r.reward is not None]
        n_ok = len(rewards)
        self.metrics.rewards.observe_many(scorer.name, rewards)
        self.metrics.samples.labels(scorer.name, "ok").inc(n_ok)
        hits = [detector_hits(r.components) for r in out if r.reward is not None]
        for detector, column in (("refusal", 0), ("injection", 1)):
            fired = sum(h[column] for h in hits)
            if fired:
                self.metrics.detector_hits.labels(scorer.name, detector).inc(fired)
        if len(out) > n_ok:
            self.metrics.samples.labels(scorer.name, "invalid").inc(len(out) - n_ok)
        return ScoreOutcome(scorer.name, scorer.rubric_version, out)

    async def score_patiently(
        self,
        profile: str | None,
        samples: Sequence[Sample],
        budget_s: float,
        client_gone: Callable[[], Awaitable[None]],
    ) -> ScoreOutcome:
        """:meth:`score`, tried again on ``ScorerUnavailable`` for a client that cannot
        retry well itself (OpenRLHF ignores ``Retry-After``; see ``/get_reward``).

        The first try runs as long as it needs (as on ``/score``). After a failure it waits
        the error's ``retry_after`` (at least 1 s, doubling to 30 s) and tries again, each
        later try cut off at the deadline (``budget_s`` from now, but at least
        ``_LAST_TRY_S``: cutting a try off is safe, as shared computations are shielded and
        what finishes is cached). When the deadline has passed, or ``client_gone()``
        returned, the last error is raised.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_s
        floor = _FIRST_WAIT_S
        gone: asyncio.Task[None] | None = None
        try:
            try:
                return await self.score(profile, samples)
            except ScorerUnavailable as exc:
                error = exc
            while (remaining := deadline - loop.time()) > 0:
                wait = min(max(float(error.retry_after), floor), remaining)
                floor = min(floor * 2, _MAX_WAIT_S)
                log.info("%s; trying again in %.1f s", error.message, wait)
                gone = gone or asyncio.ensure_future(client_gone())
                done, _ = await asyncio.wait({gone}, timeout=wait)
                if done:
                    log.info("the client went away while the judge was unavailable")
                    break
                cut_off = max(deadline - loop.time(), _LAST_TRY_S)
                try:
                    return await asyncio.wait_for(self.score(profile, samples), cut_off)
                except ScorerUnavailable as exc:
                    error = exc
                except TimeoutError:
                    error = ScorerUnavailable(
                        f"the judge did not answer within REWARD_GET_REWARD_JUDGE_RETRY_S="
                        f"{budget_s:g}"
                    )
            raise error
        finally:
            if gone is not None:
                gone.cancel()

    async def _compute(
        self,
        scorer: ProfileScorer,
        score: _Score,
        samples: list[Sample],
        keys: list[str],
        futures: dict[str, asyncio.Future[ScoreResult]],
    ) -> None:
        """Run ``score`` (``scorer``'s) on ``samples`` and settle each key's future."""
        try:
            try:
                scored = await score(samples)
                if len(scored) != len(samples):
                    raise RuntimeError(f"scorer {scorer.name} returned the wrong number of results")
            except PartialOutage as exc:
                # The judge failed part-way: what was answered is kept (and cached, so the
                # client's retry is cheap); the waiters on the rest get the 503.
                answered = exc.answered if len(exc.answered) == len(keys) else []
                done = {k: r for k, r in zip(keys, answered, strict=False) if r is not None}
                for key, f in futures.items():
                    if key in done:
                        f.set_result(done[key])
                    elif not f.done():
                        f.set_exception(exc)
                await self._store(done)
                return
            except RewardError as exc:  # whole-request errors (503, 413) reach every waiter
                for f in futures.values():
                    if not f.done():
                        f.set_exception(exc)
                return
            except Exception as exc:
                log.exception("scorer %s failed", scorer.name)
                scored = [ScoreResult.invalid(
                    f"internal scorer error ({type(exc).__name__}); see the service log"
                )] * len(samples)
            values = dict(zip(keys, scored, strict=True))
            for key, value in values.items():
                futures[key].set_result(value)
            await self._store(values)
        except BaseException as exc:  # cancelled at shutdown: never leave waiters hanging
            for f in futures.values():
                if not f.done():
                    f.set_exception(ScorerUnavailable(f"scoring interrupted: {exc!r}"))
            raise
        finally:
            for key in keys:
                if self._inflight.get(key) is futures[key]:
                    del self._inflight[key]
            for f in futures.values():
                if f.done() and not f.cancelled():
                    f.exception()  # mark retrieved: no "never retrieved" warnings

    async def _store(self, values: dict[str, ScoreResult]) -> None:
        """Cache the ``ok`` results; an ``invalid`` one may score on a later try."""
        await self.cache.set_many([(k, r) for k, r in values.items() if r.status == Status.OK])

    async def readiness(self) -> dict[str, Any]:
        """What ``GET /ready`` reports: the default profile's scorers and the cache."""
        state = self.scorer(self.default_profile).readiness()
        cache = await self.cache.status()
        return {
            "ready": state.ready,
            "profile": self.default_profile,
            "detail": state.detail,
            "judge": None if self.judge is None else self._judge_state(),
            "cache": cache,
        }

    def _judge_state(self) -> dict[str, Any]:
        assert self.judge is not None
        state = self.judge.readiness()
        return {**self.judge.identity, "ready": state.ready, "detail": state.detail}

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait for in-flight computations so their results reach the cache (shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    def profiles_view(self) -> dict[str, Any]:
        return {
            name: {
                "rubric_version": s.rubric_version,
                "config": s.profile.config(),
                "ready": s.readiness().ready,
                "default": name == self.default_profile,
            }
            for name, s in self.scorers.items()
        }
