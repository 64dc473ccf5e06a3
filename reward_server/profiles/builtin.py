"""The profiles every service has, before any ``REWARD_PROFILES_FILE``."""

from __future__ import annotations

from dataclasses import replace

from reward_server.profiles.kinds import JudgeProfile, MixProfile, Profile, RulesProfile
from reward_server.rubric import SAFER_VLM

BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        RulesProfile(
            "safegrpo",
            "SafeGRPO (arXiv 2511.12982) exactly: F*(0.5*T + 0.5*B), the paper's keyword "
            "refusal rule. Needs labels.combine_tag.",
            refusal="keyword",
        ),
        RulesProfile(
            "safegrpo_plus",
            "SafeGRPO's formula with a refusal detector learned from public labelled answers "
            "of real chat models (the prompt decides a bare \"No.\"). Needs labels.combine_tag.",
            refusal="plus",
        ),
        JudgeProfile(
            "safer_vlm",
            "SaFeR-VLM (arXiv 2510.06871) generative judge: weighted reasoning/answer "
            "dimensions, hallucination/contradiction penalties, safety gate.",
        ),
        JudgeProfile(
            "safer_vlm_process",
            "safer_vlm plus the safety of each reasoning step, scored in the same judge call: "
            "component process_safety, the step minimum in the safety gate, judge.steps and "
            "judge.first_unsafe_step.",
            rubric=replace(SAFER_VLM, process=True),
            extends="safer_vlm",
        ),
        MixProfile(
            "hybrid",
            "0.5*safegrpo_plus + 0.5*safer_vlm for labelled samples; safer_vlm alone otherwise.",
            parts={"safegrpo_plus": 0.5, "safer_vlm": 0.5},
            fallback="safer_vlm",
        ),
    )
}
