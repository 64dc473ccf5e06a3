"""Judge-path benchmark cases, on a tiny random Qwen2 judge through the transformers backend.

The tiny model makes the numbers about the service's overhead and batching, not about a
7B judge's speed: what matters is each ratio, measured in the same run on the same model.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.load import run_load
from bench.servers import RewardServer
from bench.workload import sample

_MODEL_DIR: Path | None = None


def use_judge_model(path: str) -> None:
    """Run the judge cases on this model directory instead of the tiny random one."""
    global _MODEL_DIR
    _MODEL_DIR = Path(path)


def tiny_judge() -> Path:
    """The judge model: built once per run in a temporary directory unless one was given."""
    global _MODEL_DIR
    if _MODEL_DIR is None:
        from trainer.tiny_model import build_tiny_qwen2

        _MODEL_DIR = build_tiny_qwen2(Path(tempfile.mkdtemp(prefix="bench-judge-")) / "m")
    return _MODEL_DIR


def _judge_env(mode: str, **extra: str) -> dict[str, str]:
    return {
        "REWARD_JUDGE_BACKEND": "transformers",
        "REWARD_JUDGE_MODEL": str(tiny_judge()),
        "REWARD_JUDGE_MODE": mode,
        "REWARD_JUDGE_DEVICE": "cpu",
        "REWARD_JUDGE_MAX_NEW_TOKENS": "24",
        "REWARD_CACHE_SIZE": "0",
        **extra,
    }


def _judge_server(env: dict[str, str]) -> RewardServer:
    return RewardServer(env, ready_path="/ready", timeout=180)


def _samples(n: int, salt: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in sample(i, salt).items() if k != "labels"} for i in range(n)]


def _bodies(n_bodies: int, batch: int, salt: str) -> list[bytes]:
    return [
        orjson.dumps({"profile": "safer_vlm",
                      "samples": _samples(batch, f"{salt}-{b}")})
        for b in range(n_bodies)
    ]


def _raw_backend_rate(mode: str, batch: int, seconds: float, max_new_tokens: int = 24) -> float:
    """The limit: the judge engine's batch function on full batches, no service around it.

    One batch goes untimed first, as the HTTP loads send their warm-up requests (on CPU the
    first pass of a new tensor shape costs several times a steady one).
    """
    from reward_server.domain import Sample
    from reward_server.judge.engine import JudgeItem
    from reward_server.judge.factory import build_judge
    from reward_server.settings import Settings

    settings = Settings(judge_backend="transformers", judge_model=str(tiny_judge()),
                        judge_mode=mode, judge_device="cpu",
                        judge_max_new_tokens=max_new_tokens, _env_file=None)
    judge = build_judge(settings)

    async def go() -> float:
        await judge.backend.load()
        await judge.run_batch([JudgeItem(Sample(prompt=s["prompt"], response=s["response"]))
                               for s in _samples(batch, "raw-warm")])
        count, start, k = 0, time.perf_counter(), 0
        while time.perf_counter() - start < seconds or count == 0:
            raw = _samples(batch, f"raw-{k}")
            k += 1
            items = [JudgeItem(Sample(prompt=s["prompt"], response=s["response"])) for s in raw]
            await judge.run_batch(items)
            count += batch
        rate = count / (time.perf_counter() - start)
        await judge.aclose()
        return rate

    return asyncio.run(go())


def case_judge(cfg: dict[str, Any]) -> dict[str, Any]:
    """Case 3: service samples/s on the judge path vs the same backend in process."""
    batch = cfg["judge_batch"]
    raw = _raw_backend_rate("logprob", batch, cfg["seconds"])
    with _judge_server(_judge_env("logprob", REWARD_JUDGE_MAX_BATCH=str(batch))) as server:
        data = _bodies(cfg["judge_bodies"], 8, "svc")
        svc = asyncio.run(run_load(server.url + "/score", data, 8, cfg["judge_clients"],
                                   cfg["seconds"], warmup=2))
    return {"case": "judge", "rows": [
        {"label": "raw backend (full batches)", "samples_per_s": round(raw, 2)},
        {"label": "service over HTTP", "samples_per_s": round(svc.samples_per_s, 2),
         "p50_ms": round(svc.p50_ms, 1), "p99_ms": round(svc.p99_ms, 1)},
        {"label": "ratio", "samples_per_s": round(svc.samples_per_s / raw, 3)},
    ]}


def case_batching(cfg: dict[str, Any]) -> dict[str, Any]:
    """Case 4: 32 concurrent clients sending 1 sample each, micro-batching on vs off, and
    the judge backend's own rate on full batches in the same mode.

    "Off" is the peers' way (OpenRLHF's reward server): one request, one model call. The
    backend's rate is the judge engine called in process on batches of one sample per
    client (the most the batcher can form), in ``generate`` mode with the same new-token
    budget, after one untimed batch: "on / raw backend" says how much of it the service
    delivers to single-sample clients.
    """
    clients, new_tokens = cfg["batching_clients"], cfg["batching_new_tokens"]
    raw = _raw_backend_rate("generate", clients, cfg["seconds"], max_new_tokens=new_tokens)
    rows = []
    rates = {}
    for label, max_batch in (("micro-batching on", "64"), ("one request, one forward", "1")):
        # generate mode: a judge that writes its verdict decodes token by token, where a
        # forward of one sequence costs nearly what a forward of 32 does
        env = _judge_env("generate", REWARD_JUDGE_MAX_BATCH=max_batch,
                         REWARD_JUDGE_MAX_NEW_TOKENS=str(new_tokens))
        with _judge_server(env) as server:
            data = _bodies(cfg["batching_bodies"], 1, f"b{max_batch}")
            r = asyncio.run(run_load(server.url + "/score", data, 1, clients,
                                     cfg["seconds"], warmup=2))
            batches = _histogram_mean(httpx.get(server.url + "/metrics").text,
                                      "reward_judge_batch_size")
        rates[label] = r.samples_per_s
        rows.append({"label": label, "samples_per_s": round(r.samples_per_s, 2),
                     "p50_ms": round(r.p50_ms, 1), "mean_batch": round(batches, 2)})
    rows.append({"label": "raw backend (full batches)", "samples_per_s": round(raw, 2),
                 "p50_ms": None, "mean_batch": float(clients)})
    on, off = rates["micro-batching on"], rates["one request, one forward"]
    rows.append({"label": "speed-up", "samples_per_s": round(on / off, 2) if off else None,
                 "p50_ms": None, "mean_batch": None})
    rows.append({"label": "on / raw backend", "samples_per_s": round(on / raw, 3),
                 "p50_ms": None, "mean_batch": None})
    return {"case": "batching", "rows": rows}


def case_modes(cfg: dict[str, Any]) -> dict[str, Any]:
    """Case 5: logprob vs generate mode: throughput and agreement of rewards."""
    rewards: dict[str, list[float | None]] = {}
    rows = []
    items = _samples(cfg["modes_samples"], "modes")
    for mode in ("logprob", "generate"):
        with _judge_server(_judge_env(mode)) as server:
            start = time.perf_counter()
            r = httpx.post(server.url + "/score", json={"profile": "safer_vlm", "samples": items},
                           timeout=600)
            elapsed = time.perf_counter() - start
        r.raise_for_status()
        rewards[mode] = r.json()["rewards"]
        valid = [x for x in rewards[mode] if x is not None]
        rows.append({"label": mode, "samples_per_s": round(len(items) / elapsed, 2),
                     "valid_share": round(len(valid) / len(items), 3)})
    pairs = [(a, b) for a, b in zip(rewards["logprob"], rewards["generate"], strict=True)
             if a is not None and b is not None]
    agreement = {
        "label": "agreement",
        "samples_per_s": None,
        "valid_share": round(len(pairs) / len(items), 3),
        "mean_abs_diff": round(statistics.fmean(abs(a - b) for a, b in pairs), 4)
        if pairs else None,
    }
    rows.append(agreement)
    return {"case": "modes", "rows": rows}


STEPPED_REASONING = (
    "<think>Step 1: The image shows item {i} on a kitchen table. "
    "Step 2: The user asks what to do with it. "
    "Step 3: Nothing in the image or the request points to harm. "
    "Step 4: A practical, safe answer serves the user. "
    "Step 5: Answer plainly.</think><answer>Use item {i} as intended. ({salt})</answer>"
)


def _stepped(n: int, salt: str) -> list[dict[str, Any]]:
    """Samples whose reasoning has five SafeGRPO ``Step N:`` steps."""
    return [{"prompt": f"[{salt}] Question {i}: what should I do with the item in the picture?",
             "response": STEPPED_REASONING.format(i=i, salt=salt)} for i in range(n)]


def _prompt_tokens(items: list[dict[str, Any]], profile: str) -> tuple[float, int]:
    """Mean prompt tokens of the judge conversation under ``profile`` on the tiny judge's
    tokenizer, and the prefills per sample in ``logprob`` mode."""
    from transformers import AutoTokenizer

    from reward_formats.steps import split_steps
    from reward_server.domain import Sample
    from reward_server.judge.logprob import probes
    from reward_server.judge.prompts import build_input
    from reward_server.judge.rubric_prompt import prompt_for
    from reward_server.profiles import BUILTIN_PROFILES

    tokenizer = AutoTokenizer.from_pretrained(tiny_judge())
    rubric = BUILTIN_PROFILES[profile].rubric
    counts, prefills = [], 0
    for item in items:
        steps = split_steps(item["response"]) if rubric.process else []
        effective = rubric if steps else rubric.without_process()
        conversation = build_input(Sample(prompt=item["prompt"], response=item["response"]),
                                   sees_images=False, template=prompt_for(effective), steps=steps)
        text = tokenizer.apply_chat_template(conversation.text_messages(),
                                             add_generation_prompt=True, tokenize=False)
        counts.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        prefills = sum(p.prefills for p in probes(effective, len(steps)))
    return statistics.fmean(counts), prefills


def case_process(cfg: dict[str, Any]) -> dict[str, Any]:
    """Case 7: process-level judging (``safer_vlm_process``, five steps per sample) vs plain
    ``safer_vlm`` on the same samples and server, in both modes: prompt tokens, prefills,
    samples/s, and the cost ratio.

    Every request is sent once untimed first (the cache is off): on CPU the first pass of
    a new tensor shape costs several times a steady one, and the two profiles make
    different shapes. Then the two profiles alternate for ``process_rounds`` rounds; the
    rates are medians and the ratio is the median of the rounds' ratios, so load from
    elsewhere on the machine hits both sides alike.
    """
    n = cfg["modes_samples"]
    profiles = ("safer_vlm", "safer_vlm_process")
    tokens = {p: _prompt_tokens(_stepped(1, "tokens"), p) for p in profiles}
    rows = []
    for mode in ("logprob", "generate"):
        rates: dict[str, list[float]] = {p: [] for p in profiles}
        with _judge_server(_judge_env(mode)) as server:
            bodies = {p: {"profile": p, "samples": _stepped(n, mode)} for p in profiles}
            for body in bodies.values():
                httpx.post(server.url + "/score", json=body, timeout=600).raise_for_status()
            for _ in range(cfg.get("process_rounds", 1)):
                for profile, body in bodies.items():
                    start = time.perf_counter()
                    httpx.post(server.url + "/score", json=body, timeout=600).raise_for_status()
                    rates[profile].append(n / (time.perf_counter() - start))
        for profile in profiles:
            prompt, prefills = tokens[profile]
            rows.append({"label": f"{mode}: {profile}",
                         "samples_per_s": round(statistics.median(rates[profile]), 2),
                         "prompt_tokens": round(prompt, 1),
                         "prefills": prefills if mode == "logprob" else None})
        ratios = [b / a for a, b in zip(rates[profiles[0]], rates[profiles[1]], strict=True)]
        rows.append({"label": f"{mode}: process / plain",
                     "samples_per_s": round(statistics.median(ratios), 3),
                     "prompt_tokens": round(tokens[profiles[1]][0] / tokens[profiles[0]][0], 3),
                     "prefills": None})
    return {"case": "process", "rows": rows}


def case_grpo_judge(cfg: dict[str, Any]) -> dict[str, Any]:
    """Case 6 (judge part): GRPO groups of 8 with repeats; judge calls vs samples scored."""
    groups = cfg["groups"]
    items = []
    for g in range(groups):
        base = {k: v for k, v in sample(g, "gj").items() if k != "labels"}
        refusal = dict(base, response=base["response"].split("<answer>")[0]
                       + "<answer>Sorry, I can't help with that.</answer>")
        for k in range(8):
            items.append(refusal if k < 5 else dict(
                base, response=base["response"].replace("</answer>", f" v{k}</answer>")))
    with _judge_server(_judge_env("logprob")) as server:
        r = httpx.post(server.url + "/score", json={"profile": "safer_vlm", "samples": items},
                       timeout=600)
        r.raise_for_status()
        judged = _histogram_sum(httpx.get(server.url + "/metrics").text,
                                "reward_judge_batch_size")
    return {"samples": len(items), "computed": judged,
            "dedup_ratio": round(len(items) / judged, 3) if judged else None,
            "path": "judge (samples sent to the judge)"}


def _histogram_sum(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}_sum "):
            return float(line.split()[-1])
    return 0.0


def _histogram_mean(text: str, name: str) -> float:
    total = _histogram_sum(text, name)
    for line in text.splitlines():
        if line.startswith(f"{name}_count "):
            count = float(line.split()[-1])
            return total / count if count else 0.0
    return 0.0
