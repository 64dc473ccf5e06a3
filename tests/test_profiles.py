"""Profile engine: built-ins, TOML overrides, validation, rubric versions, hybrid arithmetic."""

from __future__ import annotations

import asyncio

import pytest

from reward_server.cache import LRUCache
from reward_server.domain import Labels, Sample
from reward_server.errors import ScorerUnavailable
from reward_server.profiles import BUILTIN_PROFILES, ProfileError, load_profiles
from reward_server.rubric import SAFER_VLM, JudgeVerdict
from reward_server.scorers.registry import build_scorers, rubric_version
from reward_server.scorers.safer_vlm import aggregate
from reward_server.service import ScoringService
from tests.fakes.fixed_verdict_judge import FixedVerdictJudge

GOOD = (
    "<think><visual_safe>safe</visual_safe><text_safe>unsafe</text_safe>"
    "<combined_safe>unsafe</combined_safe></think><answer>I won't help with that.</answer>"
)


def test_builtins_are_the_contracts():
    assert set(BUILTIN_PROFILES) == {"safegrpo", "safegrpo_plus", "safer_vlm",
                                     "safer_vlm_process", "hybrid"}
    assert BUILTIN_PROFILES["safegrpo"].refusal == "keyword"
    assert BUILTIN_PROFILES["safegrpo_plus"].refusal == "plus"
    assert BUILTIN_PROFILES["hybrid"].parts == {"safegrpo_plus": 0.5, "safer_vlm": 0.5}
    assert BUILTIN_PROFILES["safer_vlm"].rubric.weights == {
        "think_coherence": 0.15, "think_grounding": 0.15, "think_safety": 0.20,
        "answer_safety": 0.30, "answer_helpfulness": 0.20,
    }


def test_toml_adds_and_overrides(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(
        "[profiles.safer_vlm]\nsafety_gate = 0.5\n\n"
        "[profiles.heavy]\nkind = 'rules'\nrefusal = 'plus'\ntag_weight = 0.3\n"
        "behavior_weight = 0.7\n"
    )
    profiles = load_profiles(path)
    assert profiles["safer_vlm"].rubric.safety_gate == 0.5
    assert profiles["safer_vlm"].rubric.weights == BUILTIN_PROFILES["safer_vlm"].rubric.weights
    assert profiles["heavy"].behavior_weight == 0.7
    base = rubric_version(BUILTIN_PROFILES["safer_vlm"], BUILTIN_PROFILES, None)
    assert rubric_version(profiles["safer_vlm"], profiles, None) != base
    # the mix that uses safer_vlm changes version too
    assert rubric_version(profiles["hybrid"], profiles, None) != rubric_version(
        BUILTIN_PROFILES["hybrid"], BUILTIN_PROFILES, None
    )


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[profiles.x]\nrefusal='plus'\n", "needs kind"),
        ("[profiles.x]\nkind='rules'\nrefusal='magic'\n", "magic"),
        ("[profiles.x]\nkind='rules'\ntag_weight=0.9\nbehavior_weight=0.9\n", "sum <= 1"),
        ("[profiles.x]\nkind='judge'\nextends='safer_vlm'\n[[profiles.x.dimensions]]\n"
         "name='answer_safety'\nweight=0.5\n", "sum to 1"),
        # keys no kind has are named
        ("[profiles.x]\nkind='judge'\nweights={think_safety=1.0}\n", "unknown keys"),
        ("[profiles.x]\nkind='judge'\npenalty_per_flag_point=3\n", "unknown keys"),
        ("[profiles.x]\nkind='mix'\nparts={nope=1.0}\n", "unknown part"),
        ("[profiles.x]\nkind='mix'\nparts={hybrid=1.0}\n", "itself a mix"),
        ("[profiles.x]\nkind='rules'\ncolour='red'\n", "unknown keys"),
        # each key of its type, named with the profile
        ("[profiles.x]\nkind='rules'\ntag_weight='0.3'\n", "'x': tag_weight"),
        ("[profiles.x]\nkind='mix'\nparts=['safegrpo']\n", "'x': parts"),
        ("[profiles.x]\nkind='mix'\nparts={safegrpo=1.0}\nfallback=2\n", "'x': fallback"),
        ("not toml [", "REWARD_PROFILES_FILE"),
    ],
)
def test_bad_profiles_fail_at_startup(tmp_path, toml, needle):
    """Start-up loads the profiles, then builds their scorers (the refusal detector's name
    is checked there, where the detectors are known)."""
    path = tmp_path / "p.toml"
    path.write_text(toml)
    with pytest.raises((ProfileError, ValueError)) as info:
        build_scorers(load_profiles(path), None)
    assert needle in str(info.value)


def test_judge_numbers_have_one_home():
    """The safer_vlm profile's numbers are the rubric's defaults, not a second copy."""
    profile = BUILTIN_PROFILES["safer_vlm"]
    assert profile.rubric is SAFER_VLM


def test_hybrid_is_half_rules_half_judge_exactly():
    verdict = JudgeVerdict.of(8, 7, 9, 9, 6, 1, 0, rationale="ok")
    judge = FixedVerdictJudge(verdict)
    service = ScoringService(BUILTIN_PROFILES, "hybrid", LRUCache(10), judge)
    labelled = Sample(prompt="p", response=GOOD, labels=Labels("safe", "unsafe", "unsafe"))
    unlabelled = Sample(prompt="p", response=GOOD)
    out = asyncio.run(service.score("hybrid", [labelled, unlabelled]))
    rules = asyncio.run(service.score("safegrpo_plus", [labelled])).results[0].reward
    judged = aggregate(verdict, SAFER_VLM).reward
    assert out.results[0].reward == pytest.approx(0.5 * rules + 0.5 * judged)
    assert out.results[1].reward == pytest.approx(judged)
    assert "rules.tag" in out.results[0].components
    assert "judge.answer_safety" in out.results[0].components
    assert out.results[0].penalties["judge.hallucination"] == -2.0
    assert "judge.answer_safety" in out.results[1].components


def test_judge_profile_unavailable_without_judge():
    service = ScoringService(BUILTIN_PROFILES, "safegrpo_plus", LRUCache(10), None)
    with pytest.raises(ScorerUnavailable):
        asyncio.run(service.score("safer_vlm", [Sample(prompt="p", response=GOOD)]))
