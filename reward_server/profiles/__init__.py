"""Reward profiles: a profile is configuration, not code.

A profile is one of three kinds, each its own type (``reward_server.profiles.kinds``):

* ``RulesProfile`` (``kind = "rules"``): SafeGRPO's ``F * (tag_weight*T +
  behavior_weight*B)`` with a refusal detector;
* ``JudgeProfile`` (``kind = "judge"``): a rubric (``reward_server.rubric``): weighted
  judge dimensions, flag penalties and a safety gate; SaFeR-VLM's by default, optionally
  with per-step safety of the reasoning (``process``);
* ``MixProfile`` (``kind = "mix"``): a weighted sum of other profiles (``parts``) with a
  ``fallback`` profile for samples some part cannot score.

The built-ins are in ``builtin``; a TOML file adds or overrides them (``loader``). A
profile is checked here for everything configuration can know; the refusal detector's
name is checked, and ``rubric_version`` computed, where scorers are built
(``reward_server.scorers.registry``), since only the scorers know the detectors and the
judge. Configuration depends on nothing it configures: this package imports the rubric's
data and no scorer.
"""

from reward_server.profiles.builtin import BUILTIN_PROFILES
from reward_server.profiles.kinds import (
    KINDS,
    JudgeProfile,
    MixProfile,
    Profile,
    ProfileError,
    RulesProfile,
    VersionFacts,
)
from reward_server.profiles.loader import load_profiles

__all__ = [
    "BUILTIN_PROFILES",
    "KINDS",
    "JudgeProfile",
    "MixProfile",
    "Profile",
    "ProfileError",
    "RulesProfile",
    "VersionFacts",
    "load_profiles",
]
