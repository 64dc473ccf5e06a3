"""Python clients of the reward service (sync and async), trainer adapters and a CLI.

    from clients import RewardClient
    with RewardClient("http://127.0.0.1:8000", api_key=None) as client:
        results = client.score(samples, profile="safegrpo_plus")

- ``RewardClient`` / ``AsyncRewardClient``: ``score(samples, profile=None) -> list[Result]``,
  with chunking of large batches, bounded concurrency and retries (503, timeouts, connection
  errors; never 4xx).
- ``trl_reward(url=..., profile=...)``: an async reward function for TRL's ``GRPOTrainer``.
- ``clients.adapters.verl.compute_score`` / ``compute_score_batch``: verl custom rewards.
- ``clients.adapters.openrlhf``: OpenRLHF ``--remote_rm_url`` (HTTP or file mode).
- ``python -m clients score IN.jsonl -o OUT.jsonl``: resumable batch scoring.
"""

from clients._base import Result, RetryPolicy
from clients.adapters.trl import TRLReward, trl_reward
from clients.aio import AsyncRewardClient
from clients.errors import (
    InvalidSampleError,
    RewardClientError,
    RewardConnectionError,
    RewardServiceError,
    RewardTimeout,
)
from clients.sync import RewardClient

__all__ = [
    "AsyncRewardClient",
    "InvalidSampleError",
    "Result",
    "RetryPolicy",
    "RewardClient",
    "RewardClientError",
    "RewardConnectionError",
    "RewardServiceError",
    "RewardTimeout",
    "TRLReward",
    "trl_reward",
]
