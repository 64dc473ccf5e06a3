"""The resume sidecar of curation (``OUT.stats.jsonl``): what was sampled and scored.

A header line holds the run's fingerprint (policy, decoding, seed, K, profile); then one
line per sampled and scored prompt (:class:`PromptStats`). A re-run with the same settings
skips the prompts already there; a run with other settings is refused, naming the fields,
since mixing their rewards would make the statistics meaningless.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.curation.qibox import prompt_stats

logger = logging.getLogger(__name__)

__all__ = ["STATS_VERSION", "PromptStats", "StatsStore"]

STATS_VERSION = 1


@dataclass
class PromptStats:
    """What was sampled and scored for one prompt (one line of the sidecar)."""

    key: str
    id: str
    rewards: list[float | None]
    statuses: list[str] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    rubric_version: str | None = None

    @property
    def scored(self) -> list[float]:
        return [r for r in self.rewards if r is not None]

    @property
    def n_null(self) -> int:
        return sum(r is None for r in self.rewards)

    def quality(self, min_scored: int = 1) -> float | None:
        return prompt_stats(self.rewards, min_scored)[0]

    def instability(self, min_scored: int = 1) -> float | None:
        return prompt_stats(self.rewards, min_scored)[1]


class StatsStore:
    """The append-only sidecar: a header line with the run's fingerprint, then one line per
    sampled and scored prompt. A torn last line (a crash mid-write) is dropped on load."""

    def __init__(self, path: Path, fingerprint: dict[str, Any]) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.done: dict[str, PromptStats] = {}
        if path.exists() and path.stat().st_size:
            self._load()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as f:
                f.write(json.dumps({"_header": {"version": STATS_VERSION, **fingerprint}}) + "\n")

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        header = json.loads(lines[0]).get("_header", {})
        previous = {k: v for k, v in header.items() if k != "version"}
        if previous != self.fingerprint:
            diff = sorted(
                k
                for k in set(previous) | set(self.fingerprint)
                if previous.get(k) != self.fingerprint.get(k)
            )
            raise SystemExit(
                f"{self.path} was written by a run with different settings ({', '.join(diff)}); "
                "resume with the same settings, or pass a new --stats_file"
            )
        good = [lines[0]]
        for n, line in enumerate(lines[1:], 2):
            try:
                data = json.loads(line)
                if not line.endswith("\n"):
                    raise ValueError("torn line")
            except ValueError:
                logger.warning("%s:%d: dropping an incomplete line (interrupted run)", self.path, n)
                continue
            self.done[data["key"]] = PromptStats(**data)
            good.append(line)
        if len(good) != len(lines):
            self.path.write_text("".join(good), encoding="utf-8")

    def append(self, stats: PromptStats) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(stats), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[stats.key] = stats
