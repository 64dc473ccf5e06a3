"""Builds one scorer per profile, wiring mixes to their parts and judge profiles to the judge."""

from __future__ import annotations

from reward_server.judge.base import Judge
from reward_server.profiles import Profile, rubric_version
from reward_server.scorers.base import ProfileScorer
from reward_server.scorers.judged import JudgeScorer
from reward_server.scorers.mix import MixScorer
from reward_server.scorers.rules import RulesScorer


def build_scorers(profiles: dict[str, Profile], judge: Judge | None) -> dict[str, ProfileScorer]:
    """Scorers for every profile; ``judge`` may be ``None`` (judge profiles then answer 503)."""
    identity = judge.identity if judge is not None else None
    scorers: dict[str, ProfileScorer] = {}
    for name, profile in profiles.items():
        version = rubric_version(profile, profiles, identity)
        if profile.kind == "rules":
            scorers[name] = RulesScorer(profile, version)
        elif profile.kind == "judge":
            scorers[name] = JudgeScorer(profile, version, judge)
    for name, profile in profiles.items():
        if profile.kind == "mix":
            parts = [(w, scorers[part]) for part, w in profile.parts.items()]
            fallback = scorers[profile.fallback] if profile.fallback else None
            scorers[name] = MixScorer(
                profile, rubric_version(profile, profiles, identity), parts, fallback
            )
    return scorers
