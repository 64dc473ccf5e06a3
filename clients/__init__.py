"""Python clients of the reward service (sync and async), trainer adapters and a CLI.

    from clients import RewardClient
    with RewardClient("http://127.0.0.1:8000", api_key=None) as client:
        results = client.score(samples, profile="safegrpo_plus")

- ``RewardClient`` / ``AsyncRewardClient``: ``score(samples, profile=None) -> list[Result]``,
  with chunking of large batches, bounded concurrency and retries (503, timeouts, connection
  errors; never 4xx). A sample with bad labels or images gets an ``invalid`` result on its
  own (never sent); a malformed one (unknown field, no response) raises.
- ``trl_reward(url=..., profile=...)``: an async reward function for TRL's ``GRPOTrainer``.
- ``clients.adapters.verl.compute_score`` / ``compute_score_batch``: verl custom rewards.
- ``clients.adapters.openrlhf``: OpenRLHF ``--remote_rm_url`` (HTTP or file mode).
- ``python -m clients score IN.jsonl -o OUT.jsonl``: resumable batch scoring.

Modules, one job each: ``models`` (``Result``, request chunks), ``samples`` (caller's sample ->
wire sample), ``retry`` (``RetryPolicy``, ``Retry-After``), ``_base`` (the client without I/O),
``sync`` / ``aio`` (the send loops), ``errors``, ``adapters``, ``__main__`` (the CLI). Nothing
here imports the service: the shared formats come from ``reward_formats`` (standard library
only), so ``pip install`` without extras (httpx, tqdm) is enough to use the clients.
"""

from clients.adapters.trl import TRLReward, trl_reward
from clients.aio import AsyncRewardClient
from clients.errors import (
    InvalidSampleError,
    RewardClientError,
    RewardConnectionError,
    RewardServiceError,
    RewardTimeout,
    SampleDataError,
)
from clients.models import Result
from clients.retry import RetryPolicy
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
    "SampleDataError",
    "TRLReward",
    "trl_reward",
]
