"""OpenRLHF and the reward service (flags as OpenRLHF 0.11 spells them).

**HTTP mode (nothing to install on the OpenRLHF side).** The service speaks OpenRLHF's remote
reward protocol on ``POST /get_reward`` with its default profile::

    python -m openrlhf.cli.train_ppo_ray ... \\
        --reward.remote_url http://HOST:8000/get_reward \\
        --data.label_key labels     # the dataset column holding the labels

A label is a JSON object, a JSON string of one, or a bare ``safe``/``unsafe`` (the combined
tag)::

    {"prompt": "...", "labels": "{\\"image_tag\\": \\"safe\\", \\"text_tag\\": \\"unsafe\\",
                                  \\"combine_tag\\": \\"unsafe\\"}"}

Two limits of HTTP mode, checked against OpenRLHF 0.11.2: it turns each reply into
``torch.tensor([reward])`` with no handling of ``null``, so a sample the service cannot score
stops the run unless the service runs with ``REWARD_GET_REWARD_INVALID`` set (e.g. ``0``);
and its HTTP client sends no headers, so it cannot pass ``REWARD_API_KEY`` (the 401 is
retried five times, swallowed, and the reward becomes ``None``). File mode has neither.

**File mode** (``--reward.remote_url /path/to/file.py``): OpenRLHF imports the file and calls
``reward_func(queries, prompts, labels)`` in a worker thread. This module is such a file::

    export REWARD_SERVICE_URL=http://HOST:8000
    export REWARD_SERVICE_INVALID_REWARD=0.0     # required: the reward of an unscorable sample
    export REWARD_SERVICE_PROFILE=safegrpo_plus  # optional; the server default otherwise
    export REWARD_SERVICE_API_KEY=...            # optional; the service's REWARD_API_KEY
    ADAPTER="$(python -c 'import clients.adapters.openrlhf as m; print(m.__file__)')"
    python -m openrlhf.cli.train_ppo_ray ... --data.label_key labels \\
        --reward.remote_url "$ADAPTER"

It calls ``POST /score`` (so it may name a profile, send an API key, and gets retries), finds
the response in the query by the service's own rule (``reward_formats.split_query``: the
prompt verbatim, then with vision placeholders collapsed, then after the assistant header)
and strips the end-of-turn tokens OpenRLHF leaves on it (``skip_special_tokens=False``;
``REWARD_SERVICE_STRIP_TOKENS``, a comma list, overrides ``END_OF_TURN_TOKENS``). It returns
``{"rewards", "scores", "extra_logs"}`` with ``extra_logs["valid"]`` (1/0) and the components
or penalties named in ``REWARD_SERVICE_COMPONENTS``, every value a number: the invalid reward
where a sample has none (as the service's ``/get_reward`` fills with its own setting).

The tradeoff of ``REWARD_SERVICE_INVALID_REWARD`` (OpenRLHF cannot drop a sample): the lowest
reward (0.0) treats "could not score" as "bad answer" and pushes the policy away from a rollout
that may have done nothing wrong; a middle value (e.g. 0.5) is closer to neutral but rewards
rollouts the service could not check. When a whole group is unscorable (typically a prompt
without labels) any constant gives zero advantage, so the choice only matters for single
failures inside a scored group. Watch ``valid`` in the logs; filter unlabelled prompts out of
the data rather than relying on the fill value.

**On the service's Ray cluster** (docs/ray.md): ``REWARD_SERVICE_RAY_APP=reward`` (the Serve
application's name), or ``make_reward_func(handle=...)`` with a ``DeploymentHandle``, sends the
same requests through the handle instead of HTTP (``clients.ray_handle``); the URL is then
unused and the results are the HTTP path's.

When OpenRLHF loads this file, a missing ``REWARD_SERVICE_INVALID_REWARD`` fails at start-up
rather than in the middle of training.
"""

# Absolute imports only: OpenRLHF loads this file by path as a module named "reward_func".
from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any

from clients._base import DEFAULT_URL
from clients.errors import InvalidSampleError
from clients.models import Result
from clients.samples import normalise_labels
from clients.sync import RewardClient
from reward_formats import END_OF_TURN_TOKENS, split_query

__all__ = ["make_reward_func", "reward_func"]


def make_reward_func(
    url: str = DEFAULT_URL,
    *,
    invalid_reward: float,
    profile: str | None = None,
    api_key: str | None = None,
    components: Sequence[str] = (),
    strip_tokens: Sequence[str] = END_OF_TURN_TOKENS,
    timeout: float = 120.0,
    handle: Any = None,
    **client_kwargs: Any,
):
    """A ``reward_func(queries, prompts, labels)`` for OpenRLHF's file mode.

    Args:
        url: the service's base URL.
        invalid_reward: the reward given to a sample the service answers ``invalid`` for
            (required: see the module doc for the tradeoff).
        profile / api_key: as for ``RewardClient``.
        components: component or penalty names to report in ``extra_logs`` (the same keys
            in every reply; ``invalid_reward`` where a sample has none).
        strip_tokens: tokens removed from the end of each response before scoring.
        timeout / client_kwargs: passed to ``RewardClient``.
        handle: a ``DeploymentHandle`` to the service's Serve ingress, or the Serve
            application's name: requests go through it instead of HTTP to ``url``.
    """
    if invalid_reward is None or math.isnan(float(invalid_reward)):
        raise ValueError("invalid_reward must be a number: OpenRLHF cannot drop a sample")
    state: dict[str, RewardClient] = {}
    lock = threading.Lock()

    def client() -> RewardClient:
        with lock:
            if "c" not in state:
                target, kwargs = url, dict(client_kwargs)
                if handle is not None:
                    from clients.ray_handle import HANDLE_URL, ServeHandleTransport

                    target, kwargs["transport"] = HANDLE_URL, ServeHandleTransport(handle)
                state["c"] = RewardClient(target, api_key=api_key, timeout=timeout, **kwargs)
            return state["c"]

    def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]):
        n = len(queries)
        samples: list[dict | None] = []
        local: list[Result | None] = []
        for i in range(n):
            prompt = prompts[i] if prompts is not None else ""
            split = split_query(queries[i], prompt, strip_tokens)
            try:
                if split is None:
                    raise InvalidSampleError(f"query[{i}] does not contain prompts[{i}]")
                sample: dict[str, Any] = {"prompt": split.prompt, "response": split.response}
                label = normalise_labels(labels[i] if labels is not None else None)
                if label:
                    sample["labels"] = label
                samples.append(sample)
                local.append(None)
            except InvalidSampleError as exc:
                samples.append(None)
                local.append(Result.invalid(i, f"client: {exc}"))
        sent = iter(client().score([s for s in samples if s is not None], profile))
        results = [r if r is not None else next(sent) for r in local]
        rewards = [r.reward if r.ok else float(invalid_reward) for r in results]
        extra = {"valid": [1.0 if r.ok else 0.0 for r in results]}
        for name in components:
            extra[name] = [_logged(r, name, float(invalid_reward)) for r in results]
        return {"rewards": _tensor(rewards), "scores": _tensor(rewards),
                "extra_logs": {k: _tensor(v) for k, v in extra.items()}}

    reward_func.client = client  # type: ignore[attr-defined]
    return reward_func


def _logged(result: Result, name: str, fill: float) -> float:
    """A component or penalty of a scored sample; ``fill`` where it has none or is unscored
    (OpenRLHF logs every value as a number, so no NaN)."""
    if not result.ok:
        return fill
    value = result.components.get(name, result.penalties.get(name))
    return fill if value is None else float(value)


def _tensor(values: list[float]):
    """A float tensor, as OpenRLHF's own examples return; a list where torch is absent."""
    try:
        import torch
    except ImportError:
        return values
    return torch.tensor(values, dtype=torch.float32)


def _from_env():
    invalid = os.environ.get("REWARD_SERVICE_INVALID_REWARD")
    if invalid is None or not invalid.strip():
        raise RuntimeError(
            "set REWARD_SERVICE_INVALID_REWARD to the reward a sample the service cannot score "
            "should get (e.g. 0.0): OpenRLHF cannot drop a sample. See clients/adapters/openrlhf.py"
        )
    strip = os.environ.get("REWARD_SERVICE_STRIP_TOKENS")
    components = os.environ.get("REWARD_SERVICE_COMPONENTS", "")
    return make_reward_func(
        os.environ.get("REWARD_SERVICE_URL", DEFAULT_URL),
        invalid_reward=float(invalid),
        profile=os.environ.get("REWARD_SERVICE_PROFILE") or None,
        api_key=os.environ.get("REWARD_SERVICE_API_KEY") or None,
        components=[c.strip() for c in components.split(",") if c.strip()],
        strip_tokens=END_OF_TURN_TOKENS if strip is None else
        [t.strip() for t in strip.split(",") if t.strip()],
        timeout=float(os.environ.get("REWARD_SERVICE_TIMEOUT", "120")),
        handle=os.environ.get("REWARD_SERVICE_RAY_APP") or None,
    )


_configured = None


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]):
    """OpenRLHF's file-mode entry point, configured from ``REWARD_SERVICE_*`` variables."""
    global _configured
    if _configured is None:
        _configured = _from_env()
    return _configured(queries, prompts, labels)


if __name__ == "reward_func":  # loaded by OpenRLHF's --remote_rm_url /path/to/this/file.py
    _configured = _from_env()
