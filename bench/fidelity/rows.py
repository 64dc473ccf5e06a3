"""Row schemas, and the helpers every builder shares to make and filter rows.

Rows have one schema per kind, and every builder returns them deduplicated, capped and in a
fixed order, so two builds of the same pins give byte-identical files:

* refusal: answer, prompt, label (refusal|compliance|partial|unknown), source, model, family,
  lang, orig_label (the upstream label, verbatim, so a mapping can be audited or redone);
* injection: text, family, source, lang, grader_directed, template;
* benign: text, prompt, source, model, lang.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any, Literal

csv.field_size_limit(2**31 - 1)  # answers run to megabytes in a few CSV cells

Kind = Literal["refusal", "injection", "benign"]
Row = dict[str, Any]

# Rows kept per source at most. No source reaches its cap; the caps bound a run if an
# upstream file grows.
CAP: dict[str, int] = {"refusal": 20_000, "injection": 5_000, "benign": 6_000}


def unique(rows: Iterable[Row], field: str, kind: Kind, min_len: int = 1) -> list[Row]:
    """First row per distinct ``field`` value, short values dropped, at most ``CAP[kind]``.

    Builders order their rows so that the first ones are the ones to keep.
    """
    seen: set[str] = set()
    out: list[Row] = []
    for row in rows:
        value = row[field]
        if not isinstance(value, str) or len(value.strip()) < min_len or value in seen:
            continue
        seen.add(value)
        out.append(row)
        if len(out) == CAP[kind]:
            break
    return out


def read_csv(data: bytes, comments: bool = False) -> list[dict[str, str]]:
    """CSV records as dicts; with ``comments``, lines starting with ``#`` between records go.

    A ``#`` line inside a quoted cell (a markdown heading in an answer) is data, so a line
    counts as a comment only when the quotes seen so far are balanced.
    """
    # newline="" splits records as open(..., newline="") would: on \n, \r\n and \r only.
    lines: Iterable[str] = io.StringIO(data.decode("utf-8-sig"), newline="")
    if comments:
        kept, open_quote = [], False
        for line in lines:
            if not open_quote and line.startswith("#"):
                continue
            kept.append(line)
            open_quote ^= line.count('"') % 2 == 1
        lines = kept
    return list(csv.DictReader(lines))


def s(value: Any) -> str:
    return "" if value is None else str(value).strip()


def refusal(answer: str, prompt: str, label: str, source: str, model: str, family: str,
            lang: str, orig_label: str) -> Row:
    return {"answer": answer, "prompt": prompt, "label": label, "source": source,
            "model": model, "family": family, "lang": lang, "orig_label": orig_label}


_GRADER = re.compile(
    r"(\bjudge\b|\bgrader\b|\bevaluator\b|\bscorer\b|reward model|\brubric\b|\bverdict\b|"
    r"full score|\bscore\b|\brating\b|\bgrade\b|10/10|pick me|\bevaluation\b)", re.I)
_PLACEHOLDER = re.compile(r"\{\{?\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}?\}|\[INSERT PROMPT HERE\]", re.I)


def injection(text: str, family: str, source: str, lang: str = "en",
              grader: bool | None = None, template: bool | None = None) -> Row:
    """An injection row; unset flags come from the keyword / placeholder heuristics."""
    text = text.strip("\n")
    return {"text": text, "family": family, "source": source, "lang": lang or "en",
            "grader_directed": bool(_GRADER.search(text)) if grader is None else grader,
            "template": bool(_PLACEHOLDER.search(text)) if template is None else template}


def injections(rows: Iterable[Row]) -> list[Row]:
    return unique(rows, "text", "injection", min_len=3)


def benign(text: str, prompt: str, source: str, model: str) -> Row:
    return {"text": text.strip(), "prompt": prompt, "source": source, "model": model,
            "lang": "en"}


def benigns(rows: Iterable[Row]) -> list[Row]:
    return unique(rows, "text", "benign", min_len=2)


# ----------------------------------------------------------------- families and languages


def family_en(model: str) -> str:
    low = model.lower()
    return next((k for k in ("gpt", "llama", "vicuna", "claude", "mistral", "qwen", "gemma")
                 if k in low), "other")


_ML_FAMILIES = (("gpt", "gpt"), ("claude", "claude"), ("llama", "llama"), ("qwen", "qwen"),
                ("chatglm", "chatglm"), ("baichuan", "baichuan"), ("xverse", "xverse"),
                ("jais", "jais"), ("ace-gpt", "acegpt"), ("yandex", "yandexgpt"),
                ("vikhr", "vikhr"), ("apertus", "apertus"), ("hyperclova", "hyperclova"))


def _family_ml(model: str) -> str:
    low = model.lower()
    if "ace-gpt" in low:  # would otherwise match "gpt"
        return "acegpt"
    return next((fam for key, fam in _ML_FAMILIES if key in low), "other")


def ml(answer: str, prompt: str, label: str, source: str, model: str, lang: str,
       orig: str) -> Row:
    return refusal(answer, prompt, label, source, model, _family_ml(model), lang, orig)


_SCRIPTS = {"zh": r"[\u4e00-\u9fff]", "ar": r"[\u0600-\u06ff]", "ru": r"[\u0400-\u04ff]",
            "ko": r"[\uac00-\ud7af]", "ja": r"[\u3040-\u30ff]"}
_STOPWORDS = {
    "en": "the and is are of to in that this with for it you be on not as",
    "de": "der die das und ist nicht ich sie es zu den mit von ein eine auch auf für sich dass",
    "fr": "le la les et est une des pas je vous que qui dans pour du sur il ce avec",
    "es": "el la los las y es una que de en no por para con del se su como lo",
    "it": "il la le e è una che di non per con del della un sono si come gli lo",
    "pt": "o a os as e é uma que de em não por para com do da um se como",
    "nl": "de het een en is niet ik je dat van voor met op zijn ook er die",
}
_STOP = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}
# English commentary from a model that translated instead of answering.
_COMMENTARY = re.compile(
    r"This translation|translation maintains|Here's a breakdown|original sentence")


def _share(text: str, pattern: str) -> float:
    bare = re.sub(r"\s", "", text)
    return len(re.findall(pattern, bare)) / len(bare) if bare else 0.0


def in_language(text: str, lang: str) -> bool:
    """Whether ``text`` is mostly in ``lang``: script share, or stopwords for Latin scripts."""
    if _COMMENTARY.search(text):
        return False
    if lang == "ja":
        kana, han = _share(text, _SCRIPTS["ja"]), _share(text, _SCRIPTS["zh"])
        return kana > 0.05 or (han > 0.3 and kana > 0.02)
    if lang in _SCRIPTS:
        return _share(text, _SCRIPTS[lang]) > {"ko": 0.2}.get(lang, 0.3)
    if _share(text, r"[A-Za-zÀ-ÿ]") <= 0.5:
        return False
    words = re.findall(r"[a-zà-ÿ]+", text.lower())
    english = sum(w in _STOP["en"] for w in words)
    return sum(w in _STOP[lang] for w in words) > 2 * english


# PyRIT's scorer evaluation sets feed two kinds: pyrit_refusal and pyrit_responses.
PYRIT_EVALS = "pyrit/datasets/scorer_evals"
