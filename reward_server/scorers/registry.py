"""Builds one scorer per profile and stamps each with the version of everything behind it.

``rubric_version`` hashes what a profile's kind says decides its rewards
(``version_payload``): its effective configuration together with everything outside it
that changes rewards, given here (``_Facts``): the refusal detector's version; for a judge
profile the version of the prompt rendered from its rubric, the judge's model, mode and
prompt, and the injection detector's version. So a cache entry or a logged reward always
says which rubric made it. It lives here, not in ``profiles``, because those outside parts
are the scorers'. The boundary markers' secret is not among them: it frames the response,
it is not the rubric.

Which scorer runs a profile is decided here, by its type, and nowhere else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from reward_server.judge.base import Judge
from reward_server.judge.rubric_prompt import prompt_for
from reward_server.profiles import JudgeProfile, MixProfile, Profile, ProfileError, RulesProfile
from reward_server.rubric import Rubric
from reward_server.scorers.base import ProfileScorer
from reward_server.scorers.injection import INJECTION_DETECTOR_VERSION
from reward_server.scorers.judged import JudgeScorer
from reward_server.scorers.mix import MixScorer
from reward_server.scorers.refusal import get_refusal_detector
from reward_server.scorers.rules import RulesScorer


@dataclass(frozen=True)
class _Facts:
    """``VersionFacts``: what the scorers know that a profile's version depends on."""

    profiles: Mapping[str, Profile]
    judge_identity: dict[str, str] | None

    @property
    def injection_version(self) -> str:
        return INJECTION_DETECTOR_VERSION

    def refusal_version(self, detector: str) -> str:
        return get_refusal_detector(detector).version

    def prompt_version(self, rubric: Rubric) -> str:
        return prompt_for(rubric).version

    def version_of(self, profile: str) -> str:
        return rubric_version(self.profiles[profile], self.profiles, self.judge_identity)


def rubric_version(
    profile: Profile,
    profiles: Mapping[str, Profile],
    judge_identity: dict[str, str] | None,
) -> str:
    """A short hash of everything that decides this profile's rewards."""
    payload = profile.version_payload(_Facts(profiles, judge_identity))
    blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:16]


def build_scorers(profiles: dict[str, Profile], judge: Judge | None) -> dict[str, ProfileScorer]:
    """Scorers for every profile; ``judge`` may be ``None`` (judge profiles then answer 503).
    A mix is built after the profiles it is made of, from their scorers.

    Raises:
        ProfileError: a ``rules`` profile names an unknown refusal detector (start-up).
    """
    scorers: dict[str, ProfileScorer] = {}
    mixes: list[MixProfile] = []
    for name, profile in profiles.items():
        match profile:
            case RulesProfile():
                try:
                    get_refusal_detector(profile.refusal)
                except ValueError as exc:  # the detector's name: listed with the valid ones
                    raise ProfileError(f"profile {name!r}: {exc}") from None
                scorers[name] = RulesScorer(profile, _version_of(profile, profiles, judge))
            case JudgeProfile():
                scorers[name] = JudgeScorer(profile, _version_of(profile, profiles, judge), judge)
            case MixProfile():
                mixes.append(profile)
    for profile in mixes:
        parts = [(w, scorers[part]) for part, w in profile.parts.items()]
        fallback = scorers[profile.fallback] if profile.fallback else None
        scorers[profile.name] = MixScorer(profile, _version_of(profile, profiles, judge), parts,
                                          fallback)  # fmt: skip
    return scorers


def _version_of(
    profile: Profile, profiles: Mapping[str, Profile], judge: Judge | None
) -> str | Callable[[], str]:
    """A rules profile's ``rubric_version``; for one that uses the judge, a function giving
    the version for the judge's identity at the time (computed once per identity)."""
    if judge is None or not profile.uses_judge(profiles):
        return rubric_version(profile, profiles, None)  # no judge in it: no identity either
    versions: dict[bytes, str] = {}

    def current() -> str:
        identity = judge.identity
        key = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)
        if key not in versions:
            versions[key] = rubric_version(profile, profiles, identity)
        return versions[key]

    return current

