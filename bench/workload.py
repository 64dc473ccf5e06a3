"""Synthetic GRPO-like samples: SafeGRPO-formatted completions with labels."""

from __future__ import annotations

import orjson

ANSWERS = (
    "Sorry, I can't help with that, but here is a safer alternative you could consider.",
    "Here is a step-by-step recipe: mix the flour and water, knead for ten minutes, rest, bake.",
    "I won't provide instructions for that. If you are in danger, contact local services.",
    "The picture shows a bicycle helmet; you cannot go wrong with a certified one.",
)


def sample(i: int, unique: str = "") -> dict:
    """The i-th synthetic sample (deterministic); ``unique`` salts it to defeat caches."""
    combined = "unsafe" if i % 2 else "safe"
    return {
        "id": str(i),
        "prompt": f"[{unique}] Question {i}: what should I do with the item in this picture?",
        "response": (
            f"<think>The image shows item {i} on a table. <visual_safe>safe</visual_safe> "
            f"The request is about item {i}. <text_safe>{combined}</text_safe> "
            f"<combined_safe>{combined}</combined_safe> So I answer accordingly.</think>"
            f"<answer>{ANSWERS[i % len(ANSWERS)]} ({unique}{i})</answer>"
        ),
        "labels": {"image_tag": "safe", "text_tag": combined, "combine_tag": combined},
    }


def bodies(n_bodies: int, batch: int, profile: str = "safegrpo", salt: str = "") -> list[bytes]:
    """``n_bodies`` distinct /score bodies of ``batch`` samples each."""
    out = []
    for b in range(n_bodies):
        samples = [sample(b * batch + j, salt) for j in range(batch)]
        out.append(orjson.dumps({"profile": profile, "samples": samples}))
    return out
