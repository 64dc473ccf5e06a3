"""Prometheus metrics of one service instance (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_REWARD_BUCKETS = tuple(i / 10 for i in range(11))
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


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
        self.rewards = Histogram(
            "reward_value", "Distribution of rewards by profile", ["profile"],
            buckets=_REWARD_BUCKETS, registry=r,
        )
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
