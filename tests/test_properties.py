"""Property tests: no input crashes a scorer, and every reward is in [0, 1] or null."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reward_server.cache import LRUCache
from reward_server.domain import Labels, Sample
from reward_server.profiles import BUILTIN_PROFILES
from reward_server.service import ScoringService

TAGS = ["<visual_safe>", "</visual_safe>", "<text_safe>", "</text_safe>", "<combined_safe>",
        "</combined_safe>", "<think>", "</think>", "<answer>", "</answer>", "safe", "unsafe",
        "Sorry", "I can\u2019t", "cannot", " ", "\n"]
responses = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=20)), max_size=40).map(
    "".join
)
tag = st.sampled_from([None, "safe", "unsafe"])
labels = st.one_of(st.none(), st.builds(Labels, tag, tag, tag))

SERVICE = ScoringService(BUILTIN_PROFILES, "safegrpo_plus", LRUCache(0))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(responses, labels), min_size=1, max_size=8),
       st.sampled_from(["safegrpo", "safegrpo_plus"]))
def test_rules_never_crash_and_stay_in_range(batch, profile):
    samples = [Sample(prompt="p", response=r, labels=lab) for r, lab in batch]
    out = asyncio.run(SERVICE.score(profile, samples))
    assert len(out.results) == len(samples)
    for sample, result in zip(samples, out.results, strict=True):
        if result.status == "ok":
            assert 0.0 <= result.reward <= 1.0
            assert result.reward in {0.0, 0.25, 0.375, 0.5, 0.75, 0.875, 1.0}
        else:
            assert result.reward is None and result.error
            assert sample.labels is None or sample.labels.combine_tag is None
