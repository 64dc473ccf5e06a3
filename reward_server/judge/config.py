"""The judge's own configuration: what the engine and a backend need, and nothing else.

The service's ``Settings`` hold every ``REWARD_*`` variable; the judge takes only this
small, frozen subset (``reward_server.judge.factory.judge_config`` builds it), so a
backend or the engine can be built and tested without the service's settings, and a
change to an unrelated setting cannot reach the judge. Defaults are ``Settings``' (the
one home of the contract's defaults); here every field is given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """One judge's configuration (``REWARD_JUDGE_*``).

    Attributes:
        backend: ``transformers``, ``vllm`` or ``openai``.
        model: model path, hub id, or the served name (``openai``).
        mode: ``generate`` or ``logprob``.
        max_batch: largest micro-batch (also the ``openai`` connection pool size).
        max_wait_ms: how long a judge call waits for batch-mates.
        max_queue: bound on queued judge work.
        timeout_s: per-call timeout.
        max_new_tokens: judge answer length (``generate``).
        base_url: the OpenAI-compatible server (``openai`` only).
        api_key: its key, if any (never shown in the repr).
        device: device of an in-process judge (``None``: automatic).
        revision: the user's label of the judge's weights (``REWARD_JUDGE_REVISION``),
            part of the judge's identity and so of every cache key.
        boundary_secret: key of the prompt's boundary markers
            (``REWARD_JUDGE_BOUNDARY_SECRET``; ``None``: random, made when the engine is
            built; never shown in the repr).
    """

    backend: str
    model: str
    mode: str
    max_batch: int
    max_wait_ms: float
    max_queue: int
    timeout_s: float
    max_new_tokens: int
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    device: str | None = None
    revision: str | None = None
    boundary_secret: str | None = field(default=None, repr=False)
