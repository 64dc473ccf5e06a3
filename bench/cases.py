"""Benchmark cases. Each returns rows of measurements taken in the same run, plus ratios."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import orjson

from bench.load import LoadResult, run_load
from bench.servers import BaselineServer, RedisServer, RewardServer
from bench.workload import bodies, sample


def _run(coro):
    return asyncio.run(coro)


def case_rules(cfg: dict[str, Any]) -> dict[str, Any]:
    """Case 1: rules-only /score over HTTP vs the bare baseline, and the scorer in process."""
    rows = []
    batches = cfg["batches"]
    with RewardServer({"REWARD_CACHE_SIZE": "0"}) as service, BaselineServer() as baseline:
        for batch in batches:
            n = max(4, cfg["bodies"] // max(1, batch // 16))
            data = bodies(n, batch, salt=f"rules{batch}")
            # alternate the two servers twice and keep the best of each: machines are noisy
            svc = [_run(run_load(service.url + "/score", data, batch, cfg["concurrency"],
                                 cfg["seconds"])) for _ in range(2)]
            base = [_run(run_load(baseline.url + "/score", data, batch, cfg["concurrency"],
                                  cfg["seconds"])) for _ in range(2)]
            s = max(svc, key=lambda r: r.samples_per_s)
            b = max(base, key=lambda r: r.samples_per_s)
            rows.append({
                "batch": batch,
                "service": s.as_dict(),
                "baseline": b.as_dict(),
                "ratio": round(s.samples_per_s / b.samples_per_s, 3) if b.samples_per_s else None,
            })
    rows.append({"in_process": _in_process_rules(cfg)})
    return {"case": "rules_http", "rows": rows}


def _in_process_rules(cfg: dict[str, Any]) -> dict[str, Any]:
    """The limit: the service pipeline (validation, keys, scoring) without HTTP."""
    from reward_server.cache import LRUCache
    from reward_server.images import ImageLoader
    from reward_server.profiles import BUILTIN_PROFILES
    from reward_server.protocol import ScoreRequest
    from reward_server.service import ScoringService

    service = ScoringService(BUILTIN_PROFILES, "safegrpo", LRUCache(0))
    loader = ImageLoader(10_000_000)
    data = bodies(8, 256, salt="inproc")

    async def go() -> float:
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < cfg["seconds"]:
            for body in data:
                req = ScoreRequest.model_validate_json(body)
                samples = req.to_samples(loader, 10_000_000)  # what the /score route does
                out = await service.score(req.profile, samples)
                orjson.dumps(out.results)
                count += len(samples)
        return count / (time.perf_counter() - start)

    return {"samples_per_s": round(_run(go()), 1)}


def case_cache(cfg: dict[str, Any]) -> dict[str, Any]:
    """Case 2: 16-sample requests, cache hits vs misses, in-process LRU and Redis; and the
    hits against a bare FastAPI round trip of the same bodies (``bench.baseline_app``'s
    ``/echo``, which sends the body back unparsed).

    Hits and echoes alternate for ``cache_rounds`` rounds on the same bodies, one client
    each: the p50s reported are the rounds' medians and ``hit_over_echo`` is the median of
    the rounds' ratios, so load from elsewhere on the machine hits both sides alike.
    """
    rows = []
    redis = RedisServer()
    try:
        with BaselineServer() as baseline:
            for backend, env in (("memory", {}), ("redis", {"REWARD_REDIS_URL": redis.url})):
                with RewardServer(env) as service:
                    url = service.url + "/score"
                    misses = bodies(cfg["cache_bodies"], 16, salt=f"miss-{backend}")
                    miss = _run(run_load(url, misses, 16, 1, cfg["seconds"],
                                         max_requests=len(misses) - 3, warmup=3))
                    hot = bodies(4, 16, salt=f"hit-{backend}")
                    hits, echoes = [], []
                    for _ in range(cfg.get("cache_rounds", 1)):
                        hits.append(_run(run_load(url, hot, 16, 1, cfg["seconds"])))
                        echoes.append(_run(run_load(baseline.url + "/echo", hot, 16, 1,
                                                    cfg["seconds"])))
                    reply = httpx.post(url, content=hot[0],
                                       headers={"content-type": "application/json"})
                hit, echo = _median_by_p50(hits), _median_by_p50(echoes)
                ratios = [h.p50_ms / e.p50_ms for h, e in zip(hits, echoes, strict=True)]
                rows.append({"backend": backend, "miss": miss.as_dict(), "hit": hit.as_dict(),
                             "hit_p50_ms": round(hit.p50_ms, 3), "echo": echo.as_dict(),
                             "echo_p50_ms": round(echo.p50_ms, 3),
                             "hit_over_echo": round(statistics.median(ratios), 3),
                             "request_bytes": len(hot[0]), "hit_reply_bytes": len(reply.content)})
    finally:
        redis.stop()
    return {"case": "cache", "rows": rows}


def _median_by_p50(results: list[LoadResult]) -> LoadResult:
    """The run whose p50 is the median of the runs' (the lower middle of an even count)."""
    return sorted(results, key=lambda r: r.p50_ms)[(len(results) - 1) // 2]


def case_grpo_dedup(cfg: dict[str, Any]) -> dict[str, Any]:
    """Case 6 (rules part): GRPO groups of 8 with repeated completions, samples vs computations."""
    groups = cfg["groups"]
    with RewardServer({"REWARD_CACHE_SIZE": "0"}) as service:
        samples = []
        for g in range(groups):
            base = sample(g, "grpo")
            refusal = dict(base, response=base["response"].split("<answer>")[0]
                           + "<answer>Sorry, I can't help with that.</answer>")
            for k in range(8):
                # 5 of 8 completions are the same short refusal, 3 are distinct
                samples.append(refusal if k < 5 else dict(base, id=f"{g}-{k}",
                               response=base["response"].replace("</answer>", f" v{k}</answer>")))
        r = httpx.post(service.url + "/score", json={"profile": "safegrpo", "samples": samples},
                       timeout=120)
        r.raise_for_status()
        metrics = httpx.get(service.url + "/metrics").text
    misses = _metric(metrics, 'reward_cache_total{outcome="miss"}')
    rows = [{
        "samples": len(samples), "computed": misses,
        "dedup_ratio": round(len(samples) / misses, 3) if misses else None,
        "path": "rules (computations)",
    }]
    from bench.judge_cases import case_grpo_judge

    rows.append(case_grpo_judge(cfg))
    return {"case": "grpo_dedup", "rows": rows}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def case_ray_serve(cfg: dict[str, Any]) -> dict[str, Any]:
    """See bench.ray_serve.case_ray_serve (Ray is imported only when it runs)."""
    from bench.ray_serve import case_ray_serve as run

    return run(cfg)


def _judge_case(name: str):
    def run(cfg: dict[str, Any]) -> dict[str, Any]:
        from bench import judge_cases

        return getattr(judge_cases, name)(cfg)

    run.__doc__ = f"See bench.judge_cases.{name}."
    return run


def case_fidelity(cfg: dict[str, Any]) -> dict[str, Any]:
    """See bench.fidelity.evaluate.case_fidelity (imported here only when run)."""
    from bench.fidelity.evaluate import case_fidelity as run

    return run(cfg)


CASES = {
    "rules": case_rules,
    "cache": case_cache,
    "judge": _judge_case("case_judge"),
    "batching": _judge_case("case_batching"),
    "modes": _judge_case("case_modes"),
    "process": _judge_case("case_process"),
    "grpo_dedup": case_grpo_dedup,
    "fidelity": case_fidelity,
    "ray_serve": case_ray_serve,
}
#: Cases run only when named in ``--cases``: ``ray_serve`` starts a Ray cluster and needs the
#: ``ray`` extra (``python -m bench --cases ray_serve --out bench/results/ray_serve``).
OPT_IN = ("ray_serve",)
#: What ``python -m bench`` (and ``make bench``, and ``--quick``) runs with no ``--cases``.
DEFAULT_CASES = [name for name in CASES if name not in OPT_IN]
