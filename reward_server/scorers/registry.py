"""Builds one scorer per profile and stamps each with the version of everything behind it.

``rubric_version`` hashes a profile's effective configuration together with everything
outside it that changes rewards (the refusal detector's version; for a judge profile the
judge's model, mode and prompt version and the injection detector's version), so a cache
entry or a logged reward always says which rubric made it. It lives here, not in
``profiles``, because those outside parts are the scorers'. The boundary markers' secret
is not among them: it frames the response, it is not the rubric.

A judge profile's rubric is hashed with the version of the prompt rendered from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from reward_server.judge.base import Judge
from reward_server.judge.rubric_prompt import prompt_for
from reward_server.profiles import Profile, ProfileError
from reward_server.scorers.base import ProfileScorer
from reward_server.scorers.injection import INJECTION_DETECTOR_VERSION
from reward_server.scorers.judged import JudgeScorer
from reward_server.scorers.mix import MixScorer
from reward_server.scorers.refusal import get_refusal_detector
from reward_server.scorers.rules import RulesScorer


def check_refusal_detectors(profiles: dict[str, Profile]) -> None:
    """Every ``rules`` profile names a refusal detector that exists.

    Raises:
        ProfileError: naming the profile and listing the valid detectors.
    """
    for profile in profiles.values():
        if profile.kind != "rules":
            continue
        try:
            get_refusal_detector(profile.refusal)
        except ValueError as exc:
            raise ProfileError(f"profile {profile.name!r}: {exc}") from None


def _judge_config(profile: Profile) -> dict[str, Any]:
    """What a judge profile's version hashes: its configuration and the version of the
    prompt rendered from its rubric."""
    return {**profile.config(), "prompt": prompt_for(profile.rubric).version}


def rubric_version(
    profile: Profile,
    profiles: dict[str, Profile],
    judge_identity: dict[str, str] | None,
) -> str:
    """A short hash of everything that decides this profile's rewards."""
    payload: dict[str, Any] = {"name": profile.name, "config": profile.config()}
    if profile.kind == "rules":
        payload["refusal_version"] = get_refusal_detector(profile.refusal).version
    elif profile.kind == "judge":
        payload["config"] = _judge_config(profile)
        payload["judge"] = judge_identity
        payload["injection_version"] = INJECTION_DETECTOR_VERSION
    else:
        payload["parts"] = {
            name: rubric_version(profiles[name], profiles, judge_identity)
            for name in sorted({*profile.parts, *([profile.fallback] if profile.fallback else [])})
        }
    blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:16]


def build_scorers(profiles: dict[str, Profile], judge: Judge | None) -> dict[str, ProfileScorer]:
    """Scorers for every profile; ``judge`` may be ``None`` (judge profiles then answer 503).

    Raises:
        ProfileError: a ``rules`` profile names an unknown refusal detector (start-up).
    """
    check_refusal_detectors(profiles)
    scorers: dict[str, ProfileScorer] = {}
    for name, profile in profiles.items():
        version = _version_of(profile, profiles, judge)
        if profile.kind == "rules":
            scorers[name] = RulesScorer(profile, version)
        elif profile.kind == "judge":
            scorers[name] = JudgeScorer(profile, version, judge)
    for name, profile in profiles.items():
        if profile.kind == "mix":
            parts = [(w, scorers[part]) for part, w in profile.parts.items()]
            fallback = scorers[profile.fallback] if profile.fallback else None
            scorers[name] = MixScorer(profile, _version_of(profile, profiles, judge), parts,
                                      fallback)  # fmt: skip
    return scorers


def _version_of(
    profile: Profile, profiles: dict[str, Profile], judge: Judge | None
) -> str | Callable[[], str]:
    """A rules profile's ``rubric_version``; for one that uses the judge, a function giving
    the version for the judge's identity at the time (computed once per identity)."""
    if judge is None or not _uses_judge(profile, profiles):
        return rubric_version(profile, profiles, None)  # no judge in it: no identity either
    versions: dict[bytes, str] = {}

    def current() -> str:
        identity = judge.identity
        key = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)
        if key not in versions:
            versions[key] = rubric_version(profile, profiles, identity)
        return versions[key]

    return current


def _uses_judge(profile: Profile, profiles: dict[str, Profile]) -> bool:
    """A judge profile, or a mix of one (a mix's parts are never mixes)."""
    names = [*profile.parts, *([profile.fallback] if profile.fallback else [])]
    return profile.kind == "judge" or any(profiles[n].kind == "judge" for n in names)
