"""``POST /score`` answers in the contract's shape, for fakes that play the reward service.

Client, trainer and curation tests put a :class:`~tests.fakes.http_server.FakeHTTPServer`
where the reward service would be; this builds the body it answers with, so the wire shape
of a ``ScoreResponse`` is written once in the tests. A ``None`` reward is answered as the
contract answers an unscorable sample: ``status: "invalid"``, ``reward: null``, an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Score = tuple[float | None, dict[str, float]]
"""``(reward, components)`` of one sample; a ``None`` reward makes it ``invalid``."""


def score_reply(
    request_body: dict[str, Any],
    scores: Sequence[Score],
    *,
    default_profile: str = "scripted",
    rubric_version: str = "scripted-1",
    invalid_error: str = "scripted: unscorable",
) -> dict[str, Any]:
    """The ``ScoreResponse`` for ``request_body``'s samples, scored ``scores`` in order.

    A sample's ``id`` is echoed back (``null`` when it has none), as the service does.
    """
    samples = request_body["samples"]
    if len(scores) != len(samples):
        raise ValueError(f"{len(scores)} scores for {len(samples)} samples")
    results = []
    for sample, (reward, components) in zip(samples, scores, strict=True):
        ok = reward is not None
        results.append({
            "id": sample.get("id"),
            "status": "ok" if ok else "invalid",
            "reward": reward,
            "components": components if ok else {},
            "penalties": {},
            "judge": None,
            "cached": False,
            "error": None if ok else invalid_error,
        })
    return {
        "profile": request_body.get("profile") or default_profile,
        "rubric_version": rubric_version,
        "rewards": [r["reward"] for r in results],
        "results": results,
    }
