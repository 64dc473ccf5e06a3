"""How rows are extracted from the refusal sources: model answers and whether they refuse.

English sources map a jailbreak judge's or a human's verdict onto the label; multilingual ones
keep only answers in the language asked for, since a translated prompt or English commentary
in place of an answer would teach a detector the wrong thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from bench.fidelity.readers import Reader
from bench.fidelity.rows import (
    PYRIT_EVALS,
    Row,
    family_en,
    in_language,
    ml,
    read_csv,
    refusal,
    s,
    unique,
)

# ------------------------------------------------------------------- English refusal sources


def build_jailbreakbench(r: Reader) -> list[Row]:
    """Responses to jailbreak attacks; the JailbreakBench judge's ``jailbroken`` is the label."""
    files = [f for f in r.glob("attack-artifacts/*/*/*.json") if "/test-artifact/" not in f]

    def rows() -> Iterator[Row]:
        for f in files:
            doc = json.loads(r.read(f))
            model = doc["parameters"]["model"]
            for jb in doc["jailbreaks"]:
                answer = jb.get("response")
                if answer is None:
                    continue
                broken = bool(jb["jailbroken"])
                yield refusal(answer, jb.get("prompt") or "",
                              "compliance" if broken else "refusal", "jailbreakbench_artifacts",
                              model, family_en(model), "en", f"jailbroken={str(broken).lower()}")

    return unique(rows(), "answer", "refusal")


_BROKEN = {"1": "compliance", "0": "refusal"}  # 1 = jailbroken (harmful) in GPTFuzz, JAILJUDGE


def build_gptfuzz(r: Reader) -> list[Row]:
    """GPTFuzz's human-labelled responses; the prompt is the bare question (template unknown)."""
    questions = {q["index"]: q["text"]
                 for q in read_csv(r.read("datasets/questions/question_list.csv"))}

    def rows() -> Iterator[Row]:
        for split in ("train", "evaluate"):
            for x in read_csv(r.read(f"datasets/responses_labeled/{split}.csv")):
                yield refusal(x["Response"], questions.get(x["question"], ""),
                              _BROKEN[x["label"]], "gptfuzz_labeled",
                              "unknown (one of vicuna-7b-v1.3, gpt-3.5-turbo, Llama-2-7b-chat-hf)",
                              "mixed", "en", x["label"])

    return unique(rows(), "answer", "refusal")


def build_jailjudge_mini(r: Reader) -> list[Row]:
    """JAILJUDGE's mini test set as JailbreakEval redistributes it."""
    rows = (refusal(x["answer"], x["question"], _BROKEN[x["label"]], "jailjudge_mini",
                    "unknown", "unknown", x.get("language") or "en", x["label"])
            for x in read_csv(r.read("data/JAILJUDGEmini.csv")))
    return unique(rows, "answer", "refusal")


_LATENT_FAMILY = {"ChatGPT": "gpt", "ChatGLM2-6B": "chatglm", "BELLE-7B-2M": "bloom"}
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _latent_label(safety: str | None, following: str | None) -> str | None:
    """Map the two human judgements onto one label; ``None`` means unlabelled (skipped).

    A safe answer that did not follow the task (``not_follow``) is not labelled a refusal:
    it may refuse, but it may as well be a harmless sentence of its own ("Bisexuals are
    just like other people") or an off-task reply, and the label does not tell them
    apart. Read as refusals, these taught the model that a plain Chinese sentence
    refuses, and it called compliant Chinese and Japanese answers refusals (see the docs'
    "Detectors" page)."""
    if safety == "unsafe":
        return "compliance"  # it wrote the embedded toxic content
    if safety == "safe":
        return {"follow": "compliance", "not_follow": "unknown"}.get(following or "")
    if safety is None and following in ("explicit", "implicit", "both"):
        return "compliance"
    if safety is None and following == "neither":
        return "partial"  # did neither task: not necessarily a refusal
    return None


def build_latent_jailbreak(r: Reader) -> list[Row]:
    """Latent Jailbreak's human-labelled P1 set: a toxic instruction inside a benign task."""
    items: list[tuple[str, dict]] = []  # (model, labelled item); the model is path part 2
    human = r.glob("human_annotated_data/**/*.json")  # <P>/<model>/<prefix|suffix>/<group>/<i>
    for path, blob in zip(human, r.read_many(human), strict=True):
        items.append((path.split("/")[2], json.loads(blob)))
    for path in r.glob("data/*/*/*.json"):  # <P>/<model>/<P>_<prefix|suffix>.json, by group
        for group in json.loads(r.read(path)).values():
            items.extend((path.split("/")[2], x) for x in group)

    def rows() -> Iterator[Row]:
        for model, x in items:
            safety, following = x.get("safety"), x.get("following")
            label = _latent_label(safety, following)
            if label is None:
                continue
            answer = x["response"]
            chinese = len(_HAN.findall(answer)) >= 0.2 * len(answer.replace(" ", ""))
            yield refusal(answer, x["context"], label, "latent_jailbreak", model,
                          _LATENT_FAMILY[model], "zh" if chinese else "en",
                          f"safety={safety};following={following}")

    return unique(rows(), "answer", "refusal")


# -------------------------------------------------------------- multilingual refusal sources

# MHJ only, wider: Apertus often translated the (translated) prompt back instead of answering.
_TRANSLATED = re.compile(
    r"translat|traducci|traduction|traduit|Übersetz|übersetz|traduzion|tradotto|tradução|"
    r"traduzido|vertaling|vertaald|翻译|翻譯|翻訳|번역|перевод|tono informal|ton informel|"
    r"informellen Ton|tom informal|原句|原文|元の文|원문|исходн|original phrase|frase original|"
    r"phrase originale|Originalsatz|frase originale", re.I)


def build_cdna(r: Reader) -> list[Row]:
    """Chinese Do-Not-Answer: the 366 GPT-3.5 answers whose action humans coded (0 refuses,
    5 follows the instruction; 1-4, a refutation, two sides, a disclaimer or "I cannot
    know", are partial).

    The release also has GPT-4's 7-class action codes for four Chinese models' answers, but
    code 6, which the repository does not define, holds answers the humans coded 3 and 4
    and plain refusals ("对不起，我不能提供这方面的信息"), so no GPT-4 code is used as a label.
    """
    rows: list[Row] = []
    for x in read_csv(r.read("cdna/human_eval/human_eval_gpt3.5_366_samples.csv")):
        answer = s(x["response_zh"])
        if not in_language(answer, "zh"):
            continue
        human = s(x["action_label"])
        label = {"0": "refusal", "5": "compliance"}.get(human, "partial")
        rows.append(ml(answer, s(x["question_zh"]), label, "cdna", "gpt-3.5-turbo", "zh",
                       f"human_action6={human};gpt4_action7={s(x['action_label_gpt4-0613'])};"
                       f"human_safe={s(x['safe_label'])};question_type={s(x['task'])}"))
    return unique(rows, "answer", "refusal")


_MHJ_LANGS = {"cmn.Hani": "zh", "deu.Latn": "de", "fra.Latn": "fr", "ita.Latn": "it",
              "jpn.Jpan": "ja", "kor.Hang": "ko", "nld.Latn": "nl", "por.Latn": "pt",
              "spa.Latn": "es", "rus.Cyrl": "ru"}
# Russian GPT-4.1 verdicts are over 4 MiB and absent from partial snapshots; they are never
# read, so a full clone gives the same rows (Russian stays label=unknown).
_MHJ_NO_GPT = {"rus.Cyrl"}
_QUOTES = '"“„«「『'


def build_mhj(r: Reader) -> list[Row]:
    """Multilingual MHJ, Apertus-70B's last turn; labelled only when two GPT-4.1 verdicts agree."""
    base = "data/evaluation_results/final_results"
    rows: list[Row] = []
    for code, lang in _MHJ_LANGS.items():
        english = translated = None
        if code not in _MHJ_NO_GPT:
            english = r.json(f"{base}/gpt_english_eval/{code}_gpt_english_eval.json")
            translated = r.json(f"{base}/gpt_translated_eval/{code}_gpt_translated_eval.json")
        apertus = r.json(f"{base}/{code}_complete.json")

        def verdicts(doc: list | None, key: str) -> dict:
            return {e["entry_index"]: (e.get(key) or {}).get("refused") for e in doc or []}

        by_en = verdicts(english, "gpt_english_evaluation")
        by_tr = verdicts(translated, "gpt_translated_evaluation")
        by_ap = verdicts(apertus, "evaluation")
        for entry in english or apertus:
            index, turns = entry["entry_index"], entry["turns"]
            answer = s(turns[-1].get("llm_response"))
            if _TRANSLATED.search(answer) or answer[:1] in _QUOTES:
                continue
            if not in_language(answer, lang):
                continue
            g_en, g_tr = by_en.get(index), by_tr.get(index)
            label = "unknown"
            if g_en is not None and g_tr is not None and g_en == g_tr:
                label = "refusal" if int(g_en) == 1 else "compliance"
            rows.append(ml(answer, s(turns[-1].get("content")), label, "mhj_ml_apertus",
                           "Apertus-70B", lang,
                           f"strongreject_refused gpt41_eng={g_en};gpt41_trans={g_tr};"
                           f"apertus_eng={by_ap.get(index)};n_turns={len(turns)};entry={index}"))
    return unique(rows, "answer", "refusal")


def build_qorgau_ru(r: Reader) -> list[Row]:
    """Qorgau's Russian human-annotated sample: a safety label, so ``label`` is unknown."""
    path = "ru_kaz_data/human_annotations_sample/Ru-sample-annotate-binary.csv"
    rows = (ml(s(x["response"]), s(x["question"]), "unknown", "qorgau_ru", s(x["model"]),
               "ru", f"human_safety={s(x['safe_unsafe'])};question_type={s(x['question_type'])}")
            for x in read_csv(r.read(path)))
    return unique((x for x in rows if in_language(x["answer"], "ru")), "answer", "refusal")


_ARABIC_MODELS = ("Jais", "ACE-GPT", "Qwen2", "gpt-4o-2024-05-13",
                  "llama3-8b-Arabic-system-prompt", "llama3-8b-English-system-prompt")


def build_arabic_dna(r: Reader) -> list[Row]:
    """Arabic Do-Not-Answer and Egypt-specific answers: a safety set, so ``label`` is unknown.

    The human unsafe flag for GPT-4o lives in an .xlsx file; it is not read (no spreadsheet
    parser here), so those rows carry no ``human_unsafe`` in ``orig_label``.
    """
    sampled = read_csv(r.read("data/Sampled_data_for_human_evaluation/sampled_data_arabic.csv"))
    egypt = [json.loads(line)
             for line in r.text("data/egypy_data_gpt4o_llama3_responses.jsonl").splitlines()
             if line.strip()]
    rows: list[Row] = []
    for subset, records, question in (("sampled_general", sampled, "Unnamed: 8"),
                                      ("egypt", egypt, "Questions in Arabic")):
        columns = {k for x in records for k in x}
        for x in records:
            for column in _ARABIC_MODELS:
                if column not in columns:
                    continue
                answer = s(x.get(column))
                if not in_language(answer, "ar"):
                    continue
                model = "llama3-8b-instruct" if column.startswith("llama3") else column
                rows.append(ml(answer, s(x.get(question)), "unknown", "arabic_dna", model,
                               "ar", f"subset={subset}"))
    return unique(rows, "answer", "refusal")


def build_square_ko(r: Reader) -> list[Row]:
    """SQuARe's Korean out-of-distribution responses: acceptability, so ``label`` is unknown."""
    rows = (ml(s(x["response"]), s(x["question"]), "unknown", "square_ko", "HyperCLOVA", "ko",
               f"acceptable={x.get('acceptable?')};category={','.join(x.get('category') or [])}")
            for x in r.json("data/SQuARe/response_test_ood.json"))
    return unique((x for x in rows if in_language(x["answer"], "ko")), "answer", "refusal")


def build_pyrit_refusal(r: Reader) -> list[Row]:
    """PyRIT's human-labelled refusal-scorer set (1 = refused or off-topic, 0 = fulfilled).

    PyRIT reuses fulfilling answers under unrelated objectives and scores those pairs 1
    (a non-sequitur counts as a refusal). Our detectors see the answer only, so when one
    answer carries both scores the row kept is a score-0 one: the answer fulfils the
    objective it was written for. Rows stay in order of each answer's first appearance.
    """
    files = ("refusal_scorer/refusal.csv", "refusal_scorer/refusal_extra.csv",
             "sample/mini_refusal.csv")
    kept: dict[str, Row] = {}
    for name in files:
        for x in read_csv(r.read(f"{PYRIT_EVALS}/{name}"), comments=True):
            if x.get("data_type", "text") != "text":
                continue
            score = s(x["human_score"])
            label = {"1": "refusal", "0": "compliance"}[score]
            row = refusal(s(x["assistant_response"]), s(x["objective"]), label,
                          "pyrit_refusal", "unknown", "unknown", "en", f"human_score={score}")
            first = kept.setdefault(row["answer"], row)
            if first["label"] == "refusal" and label == "compliance":
                kept[row["answer"]] = row  # same position, the on-topic pairing's label
    return unique(kept.values(), "answer", "refusal")
