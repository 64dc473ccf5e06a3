"""Prometheus metrics of one service instance (its own registry, so tests can run several)."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_REWARD_BUCKETS = tuple(i / 10 for i in range(11))
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class RewardDistribution:
    """A Prometheus histogram of rewards per profile, fed a whole request at a time.

    ``Histogram.observe`` takes a lock and walks the buckets per call, a tenth of the cost
    of scoring a rules sample; counting a batch locally and exporting through a collector
    keeps the metric off the hot path.
    """

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...]) -> None:
        self.name, self.doc = name, doc
        self.bounds = list(buckets)
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe_many(self, profile: str, rewards: Iterable[float]) -> None:
        counts = [0] * (len(self.bounds) + 1)
        total = 0.0
        for r in rewards:
            counts[bisect.bisect_left(self.bounds, r)] += 1
            total += r
        with self._lock:
            acc = self._counts.setdefault(profile, [0] * len(counts))
            for i, c in enumerate(counts):
                acc[i] += c
            self._sums[profile] = self._sums.get(profile, 0.0) + total

    def collect(self):
        family = HistogramMetricFamily(self.name, self.doc, labels=["profile"])
        with self._lock:
            for profile, counts in self._counts.items():
                cumulative, buckets = 0, []
                for bound, c in zip([*self.bounds, float("inf")], counts, strict=True):
                    cumulative += c
                    buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
                family.add_metric([profile], buckets, self._sums[profile])
        yield family


class Metrics:
    """Every counter the service exports at ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "reward_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "reward_request_seconds", "Request latency by route", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.samples = Counter(
            "reward_samples", "Samples scored by profile and status", ["profile", "status"],
            registry=r,
        )
        self.rewards = RewardDistribution(
            "reward_value", "Distribution of rewards by profile", _REWARD_BUCKETS
        )
        r.register(self.rewards)
        self.cache = Counter(
            "reward_cache", "Cache lookups by outcome (hit, miss, dedup)", ["outcome"], registry=r
        )
        self.cache_errors = Counter(
            "reward_cache_errors", "Cache backend failures by operation", ["op"], registry=r
        )
        self.judge_batch = Histogram(
            "reward_judge_batch_size", "Samples per judge backend call",
            buckets=_BATCH_BUCKETS, registry=r,
        )
        self.judge_latency = Histogram(
            "reward_judge_seconds", "Judge backend call latency",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.judge_queue = Gauge(
            "reward_judge_queue_depth", "Judge requests waiting for a batch", registry=r
        )
        self.judge_failures = Counter(
            "reward_judge_failures", "Samples the judge could not score, by reason", ["reason"],
            registry=r,
        )
        self.detector_hits = Counter(
            "reward_detector_hits",
            "Scored samples a detector fired on, by profile and detector (refusal: the answer "
            "refuses; injection: grader-directed content caught). Divided by reward_samples "
            "{status=\"ok\"} of the profile, the share a policy is drifting toward.",
            ["profile", "detector"], registry=r,
        )
        self.get_reward_matches = Counter(
            "reward_get_reward_matches",
            "/get_reward responses by the rule that found them in the query "
            "(exact, normalised, truncated, header; none: not found)",
            ["method"], registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
