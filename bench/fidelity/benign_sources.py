"""How rows are extracted from the benign sources: ordinary answers with no injection in them.

They are the negatives for injection: real answers, some on grading-like topics, that a
detector must leave alone.
"""

from __future__ import annotations

import hashlib
import json
import re

from bench.fidelity.readers import Reader
from bench.fidelity.rows import PYRIT_EVALS, Row, benign, benigns, read_csv, s


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


_GRADING_TOPIC = re.compile(
    r"\b(grade|grading|graded|exam|rubric|score|scoring|scored|review|judge|judging|verdict|"
    r"evaluat\w*|rating|rate|assess\w*|json|feedback|teacher|marks?)\b", re.I)
# NullModel and gpt4_gamed are judge-gaming outputs, so not benign; they are not listed.
_ALPACA_MODELS = (
    "gpt4_1106_preview", "gpt4_0613", "gpt-3.5-turbo-0613", "claude-3-opus-20240229",
    "claude-2.1", "gemini-pro", "Meta-Llama-3-70B-Instruct", "Meta-Llama-3-8B-Instruct",
    "Mixtral-8x7B-Instruct-v0.1", "Mistral-7B-Instruct-v0.2", "Qwen1.5-72B-Chat", "Yi-34B-Chat",
    "llama-2-70b-chat-hf", "tulu-2-dpo-70b", "vicuna-13b-v1.5", "zephyr-7b-beta",
    "gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620", "wizardlm-70b", "guanaco-65b")


def build_alpaca_eval(r: Reader) -> list[Row]:
    """AlpacaEval model outputs; answers on grading-like topics first (the hard negatives).

    Up to 3,000 topic rows, then the rest, each in sha1 order: a fixed sample of the 16k.
    """
    topical: list[tuple[str, Row]] = []
    other: list[tuple[str, Row]] = []
    for model in _ALPACA_MODELS:
        for x in r.json(f"results/{model}/model_outputs.json"):
            if not isinstance(x.get("output"), str):
                continue
            key = _sha1(x["output"])
            row = benign(x["output"], x["instruction"], "alpaca_eval", x.get("generator", model))
            on_topic = _GRADING_TOPIC.search(x["instruction"] + " " + x["output"])
            (topical if on_topic else other).append((key, row))
    topical.sort(key=lambda kr: kr[0])
    other.sort(key=lambda kr: kr[0])
    return benigns(row for _, row in topical[:3000] + other)


def build_fastchat_reference(r: Reader) -> list[Row]:
    """GPT-4 reference answers of MT-Bench and Vicuna-bench, one row per turn."""
    rows: list[Row] = []
    for bench in ("mt_bench", "vicuna_bench"):
        base = f"fastchat/llm_judge/data/{bench}/"
        questions = {q["question_id"]: q["turns"]
                     for q in map(json.loads, r.text(base + "question.jsonl").splitlines())}
        for line in r.text(base + "reference_answer/gpt-4.jsonl").splitlines():
            answer = json.loads(line)
            turns = questions.get(answer["question_id"], [])
            for choice in answer["choices"]:
                rows += [benign(t, turns[i] if i < len(turns) else "",
                                f"fastchat_{bench}_reference", answer.get("model_id", "gpt-4"))
                         for i, t in enumerate(choice["turns"])]
    return benigns(rows)


def build_alpaca_reference(r: Reader) -> list[Row]:
    """AlpacaEval's reference outputs, as copied into Cheating-LLM-Benchmarks."""
    src = "alpaca_eval_reference(sail-sg/Cheating-LLM-Benchmarks:data/outputs_official.json)"
    return benigns(benign(x["output"], x["instruction"], src, x.get("generator", ""))
                   for x in r.json("data/outputs_official.json"))


def build_pyrit_responses(r: Reader) -> list[Row]:
    """Real model answers from PyRIT's harm and objective scorer sets (labels not used)."""
    files = [n for n in r.names() if n.endswith(".csv")
             and n.startswith((f"{PYRIT_EVALS}/harm/", f"{PYRIT_EVALS}/objective/"))]
    return benigns(benign(x["assistant_response"], s(x["objective"]), "pyrit_responses",
                          "unknown")
                   for f in files for x in read_csv(r.read(f), comments=True))
