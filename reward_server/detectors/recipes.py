"""How the two shipped detectors are trained: data in, model and measurements out.

One recipe per detector, used both for the shipped weights (``python -m
bench.fidelity.train``, on public data) and for a user's retraining on their own labelled
rollouts (``python -m reward_server.detectors``). Each returns the model and a report of
what it measured, which travels in the model file's header.

**Refusal** (``bag`` model): labelled answers, plus the multilingual augmentation of
:mod:`~reward_server.detectors.augment`. Public refusal labels are noisy (a "not
jailbroken" answer may be off-topic rather than a refusal), so the recipe cross-validates
a fit on every row, drops the rows that out-of-fold model contradicts with high confidence
(``clean_below``) and fits the final model on the rest. The accuracy it reports is of that
whole recipe: each fold is cleaned by a cross-validation of its own training part before
the fit that reads the held-out fold, so no held-out row decides what is cleaned; an
augmentation example that quotes a real answer (``bodies``) is kept in that answer's fold. The
plain fit's figure is reported beside it (``cross_validated_uncleaned``): it agrees more
with the sources' noisy labels, and less with sources never trained on.
Rows whose source starts with ``own:`` (the team's regression cases) are trained on but
never cleaned and never counted in a figure.

**Injection** (``window`` model): positives are grader-directed texts (public attack
texts and augmentation sentences, each a run of at most ``window`` tokens); negatives are
random runs of 3 to ``window`` tokens from real answers, the runs a window model scores at
inference. The threshold is set on answers held out from training, so that at most
``fp_target`` of them would be flagged.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reward_server.detectors.augment import disguise, grader_sentences, refusal_examples
from reward_server.detectors.linear import NgramModel, bag_features, window_features
from reward_server.detectors.train import Example, FitConfig, cross_validate, fit, sigmoid

__all__ = [
    "INJECTION_HEADER",
    "REFUSAL_HEADER",
    "Labelled",
    "held_out",
    "injection_model",
    "refusal_model",
]

REFUSAL_HEADER = {"mode": "bag", "head_chars": 1200, "tail_chars": 300, "opening": 8}
INJECTION_HEADER = {"mode": "window", "window": 24}


@dataclass(frozen=True, slots=True)
class Labelled:
    """One labelled text. ``source`` names where it came from (a data set, an attack
    family); cross-validation keeps a source's rows with the same prompt in one fold."""

    text: str
    label: bool
    source: str
    prompt: str = ""
    weight: float = 1.0
    family: str = ""  # the model family that wrote it, when known (reported, not used)
    lang: str = ""


def _stable(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16)


def held_out(text: str, share: int = 3) -> bool:
    """Whether a benign answer is in the held-out part (``share`` tenths), by its hash: the
    same answer is held out in every run and on every machine."""
    return _stable(text) % 10 < share


def refusal_model(
    rows: Sequence[Labelled],
    *,
    bodies: Sequence[str] = (),
    augment_per_language: int = 40,
    augment_english: int = 20,
    clean_below: float = 0.15,
    folds: int = 5,
    epochs: int = 200,
    seed: int = 0,
    progress: Callable[[str], object] | None = None,
) -> tuple[NgramModel, dict]:
    """The refusal model and its report (the recipe's out-of-fold accuracy per source,
    family and language, the uncleaned fit's, what was cleaned). It fits ``folds + 1``
    times ``folds + 1`` models: the nested cross-validation is most of its cost.

    ``bodies``: real answers the augmentation puts after a compliant opening.
    """
    rng = random.Random(seed)
    data = list(rows)
    groups = [f"{r.source}:{_stable(r.prompt) if r.prompt else _stable(r.text)}" for r in data]
    group_of: dict[str, str] = {}  # an answer's fold group (its first row's, if repeated)
    for r, group in zip(data, groups, strict=True):
        group_of.setdefault(r.text, group)
    for text, label, quoted in refusal_examples(rng, list(bodies), augment_per_language,
                                                augment_english):  # fmt: skip
        data.append(Labelled(text, label, "augment"))
        # An example quoting a real answer stays in that answer's fold: otherwise the
        # answer's words would be read in training while the answer itself is held out.
        groups.append(group_of.get(quoted) or f"augment:{_stable(text)}")
    header = dict(REFUSAL_HEADER)
    external = np.array([r.source != "augment" and not r.source.startswith("own:") for r in data])
    examples = [
        Example(buckets, r.label, r.weight, group,
                cleanable=bool(counted))  # the public rows: counted, and so cleanable
        for r, buckets, group, counted in zip(
            data, bag_features(header, [r.text for r in data]), groups, external, strict=True)
    ]  # fmt: skip
    cfg = FitConfig(header=header, epochs=epochs)

    def kept(part: Sequence[Example], logits: np.ndarray) -> list[int]:
        """Indices of ``part`` to fit on: every row that is not cleanable, and each
        cleanable row whose label its out-of-fold ``logits`` give at least ``clean_below``."""
        p = sigmoid(logits)
        return [i for i, (ex, pi) in enumerate(zip(part, p, strict=True))
                if not ex.cleanable or (pi if ex.label else 1.0 - pi) >= clean_below]  # fmt: skip

    def recipe(part: Sequence[Example]) -> NgramModel:
        """What ships, on ``part``: cross-validate, clean, fit on the rest."""
        return fit([part[i] for i in kept(part, cross_validate(part, cfg, folds=folds))], cfg)

    if progress:
        progress(f"refusal: {folds}-fold cross-validation of the whole recipe on "
                 f"{len(examples)} examples (each fold cleaned by its own {folds} folds)")
    truth = np.array([r.label for r in data])
    right = (cross_validate(examples, cfg, folds=folds, train=recipe) > 0) == truth
    if progress:
        progress(f"refusal: {folds}-fold cross-validation of a fit on every row (to clean)")
    logits = cross_validate(examples, cfg, folds=folds)
    right_uncleaned = (logits > 0) == truth

    def tables(ok: np.ndarray, fields: Sequence[str]) -> dict[str, dict[str, dict]]:
        hits: dict[str, dict[str, list[bool]]] = {f: {} for f in fields}
        for r, hit, counted in zip(data, ok, external, strict=True):
            if counted:
                for f in fields:
                    if key := getattr(r, f):
                        hits[f].setdefault(key, []).append(bool(hit))
        return {f: {k: {"accuracy": round(float(np.mean(v)), 4), "n": len(v)}
                    for k, v in sorted(hits[f].items())}
                for f in fields}  # fmt: skip

    def overall(ok: np.ndarray) -> float | None:
        return round(float(ok[external].mean()), 4) if external.any() else None

    shipped = tables(right, ("source", "family", "lang"))
    report: dict = {
        "cross_validated": shipped["source"],
        "cross_validated_by_family": shipped["family"],
        "cross_validated_by_lang": shipped["lang"],
        "cross_validated_overall": overall(right),
        # A plain fit on every row, not cleaned: its out-of-fold agreement with the
        # sources' own (noisy) labels, beside the recipe's.
        "cross_validated_uncleaned": tables(right_uncleaned, ("source",))["source"],
        "cross_validated_uncleaned_overall": overall(right_uncleaned),
    }
    keep = kept(examples, logits)
    dropped = Counter(data[i].source for i in set(range(len(data))) - set(keep))
    report["cleaned"] = dict(sorted(dropped.items()))
    report["trained_on"] = dict(sorted(Counter(data[i].source for i in keep).items()))
    if progress:
        progress(f"refusal: fitting on {len(keep)} examples ({sum(dropped.values())} cleaned)")
    model = fit([examples[i] for i in keep], cfg)
    model.header["report"] = report
    return model, report


def _run(text: str, rng: random.Random, shortest: int, longest: int,
         count: int = 1) -> list[np.ndarray]:  # fmt: skip
    """The buckets of ``count`` random runs of ``shortest``..``longest`` tokens of ``text``
    (all of it when shorter): each run's unigrams, stems and the bigrams inside it."""
    ((unigram, bigram, stem),) = window_features([text])
    runs = []
    for _ in range(count):
        n = rng.randint(shortest, longest)
        start = rng.randrange(len(unigram) - n + 1) if len(unigram) > n else 0
        end = min(len(unigram), start + n)
        runs.append(np.concatenate((unigram[start:end], bigram[start + 1 : end],
                                    stem[start:end])))  # fmt: skip
    return runs


def injection_model(
    attacks: Sequence[Labelled],
    benign: Sequence[str],
    *,
    own_benign: Sequence[str] = (),
    own_weight: float = 6.0,
    augment: int = 8000,
    runs_per_answer: int = 4,
    fp_target: float = 0.004,
    epochs: int = 200,
    seed: int = 0,
    progress: Callable[[str], object] | None = None,
) -> tuple[NgramModel, dict]:
    """The injection model and its report (threshold, false positives on held-out answers).

    ``attacks``: grader-directed texts (``label`` True); ``benign``: real answers, of which
    the :func:`held_out` part only sets the threshold; ``own_benign``: more negatives, each
    weighing ``own_weight`` (hand-picked near misses: answers about graders and scores).
    """
    rng = random.Random(seed)
    header = dict(INJECTION_HEADER)
    width = int(header["window"])
    train = [t for t in benign if not held_out(t)]
    check = [t for t in benign if held_out(t)]
    examples: list[Example] = []
    for texts, weight in ((train, 1.0), (own_benign, own_weight)):
        for text in texts:
            examples += [Example(run, False, weight, "benign")
                         for run in _run(text, rng, 3, width, runs_per_answer)]  # fmt: skip
    sentences = grader_sentences(rng)
    for _ in range(augment):
        sentence = next(sentences)
        if rng.random() < 0.3:
            sentence = disguise(sentence, rng)
        examples += [Example(run, True, 1.0, "augment")
                     for run in _run(sentence, rng, width, width)]  # fmt: skip
    for attack in attacks:
        examples += [Example(run, True, attack.weight, attack.source)
                     for run in _run(attack.text, rng, width, width, 2)]  # fmt: skip
    if progress:
        progress(f"injection: fitting on {len(examples)} runs")
    model = fit(examples, FitConfig(header=header, epochs=epochs))
    logits = np.array([r.logit for r in model.read_many(check)]) if check else np.zeros(1)
    model = NgramModel(model.weights, model.bias, float(np.quantile(logits, 1.0 - fp_target)),
                       model.header)  # fmt: skip
    report = {
        "threshold": round(model.threshold, 4),
        "held_out_answers": len(check),
        "held_out_false_positive_rate": round(float(np.mean(logits > model.threshold)), 5),
        "trained_on": dict(sorted(Counter(e.group for e in examples).items())),
    }
    model.header["report"] = report
    return model, report
