"""A closed-loop HTTP load generator: N workers each send pre-built bodies back to back.

Bodies are serialised before the clock starts, so the generator's own cost is a socket
write and a read; both sides of a comparison are driven by the same generator.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import httpx


@dataclass
class LoadResult:
    requests: int
    samples: int
    seconds: float
    samples_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int

    def as_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _pct(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx] * 1000


async def run_load(
    url: str,
    bodies: Sequence[bytes],
    samples_per_body: int,
    concurrency: int = 4,
    seconds: float = 3.0,
    max_requests: int | None = None,
    warmup: int = 3,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POST ``bodies`` round-robin to ``url`` for ``seconds`` (or ``max_requests``)."""
    hdrs = {"content-type": "application/json", **(headers or {})}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        for body in bodies[:warmup]:
            await client.post(url, content=body, headers=hdrs)
        latencies: list[float] = []
        errors = 0
        next_index = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal next_index, errors
            while time.perf_counter() < deadline:
                if max_requests is not None and next_index >= max_requests:
                    return
                body = bodies[next_index % len(bodies)]
                next_index += 1
                t0 = time.perf_counter()
                r = await client.post(url, content=body, headers=hdrs)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    done = len(latencies)
    return LoadResult(
        requests=done,
        samples=done * samples_per_body,
        seconds=elapsed,
        samples_per_s=done * samples_per_body / elapsed if elapsed else 0.0,
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p95_ms=_pct(latencies, 0.95),
        p99_ms=_pct(latencies, 0.99),
        errors=errors,
    )
