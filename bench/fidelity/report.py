"""The fidelity case as markdown tables and as a chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _cv(x: Any) -> str:
    """A cross-validated figure, or an empty cell where there is none."""
    return "" if x is None else f"{_pct(x)} (cv)"


def markdown(case: dict[str, Any]) -> str:
    """Tables: refusal by source, family and language; injection by family; false
    positives; cost."""
    every = case["all_sources"]
    refusal, injection = every["refusal"], every["injection"]
    lines = [f"Refusal (`{refusal['version']}`), accuracy %: held-out sources measured directly,"
             " training sources cross-validated (5 folds, grouped by prompt; each fold cleaned "
             "and fitted as the shipped model is). `uncleaned fit`: a fit on every row, not "
             "cleaned, cross-validated the same way", "",
             "| source | use | n | keyword | prefix | plus | uncleaned fit |",
             "|---|---|---|---|---|---|---|"]
    for name, row in refusal["by_source"].items():
        plus = _pct(row["plus"]) if "plus" in row else _cv(row.get("plus_cross_validated"))
        lines.append(f"| {name} | {row['use']} | {row['n']} | {_pct(row['keyword'])} | "
                     f"{_pct(row['prefix'])} | {plus} | "
                     f"{_cv(row.get('plus_cross_validated_uncleaned'))} |")
    lines.append(f"| **all training sources** | train | | | | "
                 f"{_cv(refusal['cross_validated_overall'])} | "
                 f"{_cv(refusal.get('cross_validated_uncleaned_overall'))} |")
    for title, key in (("model family", "held_out_by_family"), ("language", "held_out_by_lang")):
        lines += ["", f"| {title} (held-out sources) | n | keyword | prefix | plus |",
                  "|---|---|---|---|---|"]
        for name, row in refusal[key].items():
            lines.append(f"| {name} | {row['n']} | {_pct(row['keyword'])} | "
                         f"{_pct(row['prefix'])} | {_pct(row['plus'])} |")
    for title, key in (("model family", "cross_validated_by_family"),
                       ("language", "cross_validated_by_lang")):
        lines += ["", f"| {title} (training sources, cv) | n | plus |", "|---|---|---|"]
        for name, row in refusal[key].items():
            lines.append(f"| {name} | {row['n']} | {_pct(row['accuracy'])} |")
    lines += ["", f"Injection (`{injection['version']}`), % caught when planted at the start, "
              "middle or end of real answers", "", "| attack family | how | n | caught |",
              "|---|---|---|---|"]
    for name, row in injection["families"].items():
        lines.append(f"| {name} | {row['how']} | {row['n']} | {_pct(row['catch'])} |")
    lines += ["", "| false positives on | n | flagged | % |", "|---|---|---|---|"]
    for name, row in injection["false_positives"].items():
        lines.append(f"| {name} | {row['n']} | {row['flagged']} | {_pct(row['rate'])} |")
    cost = case.get("cost_us_per_kb") or {}
    if cost.get("answers"):
        lines += ["", f"Cost, median µs per kB of answer (one core; {cost['answers']} real "
                  f"answers, median {cost['median_chars']} characters), one answer per call: "
                  f"keyword {cost['keyword']}, plus {cost['plus']}, injection "
                  f"{cost['injection']}; {cost.get('batch')} answers per call, as the service "
                  f"calls them: keyword {cost.get('keyword_batched')}, plus "
                  f"{cost.get('plus_batched')}, injection {cost.get('injection_batched')}"]
    return "\n".join(lines)


def png(case: dict[str, Any], path: Path) -> None:
    """Refusal accuracy per source (three detectors) and injection catch per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = case["all_sources"]
    sources = every["refusal"]["by_source"]
    families = every["injection"]["families"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    names = list(sources)
    xs = range(len(names))
    for shift, key, label in ((-0.27, "keyword", "keyword rule"), (0.0, "prefix", "prefix match"),
                              (0.27, "plus", "plus (cv on training sources)")):
        values = [sources[n].get(key, sources[n].get("plus_cross_validated")) or 0 for n in names]
        left.bar([x + shift for x in xs], values, 0.27, label=label)
    left.set_xticks(list(xs), [n.replace("_", "\n", 1) for n in names], fontsize=7)
    left.set_ylim(0, 1)
    left.set_ylabel("accuracy")
    left.set_title("refusal, by source")
    left.legend(fontsize=7)
    fam = list(families)
    right.barh(range(len(fam)), [families[f]["catch"] for f in fam],
               color=["tab:blue" if families[f]["how"] == "never trained on" else "tab:orange"
                      for f in fam])  # fmt: skip
    right.set_yticks(range(len(fam)), fam, fontsize=7)
    right.set_xlim(0, 1)
    right.set_xlabel("share caught (orange: left out of training, blue: never trained on)")
    right.set_title("injection, by attack family")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: Where the published report lives and where the docs show it.
ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "bench" / "results" / "fidelity"
DOC = ROOT / "docs" / "detectors.md"
BEGIN, END = "<!-- fidelity:begin -->", "<!-- fidelity:end -->"


def docs_with_tables(doc: str, case: dict[str, Any]) -> str:
    """``doc`` with the tables between the fidelity markers replaced by ``case``'s."""
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{markdown(case)}\n{END}{tail}"


def main() -> None:
    """``python -m bench.fidelity.report``: put the published tables in the docs (the chart
    is ``docs/img/fidelity.png``, a link to the published one)."""
    import json

    case = json.loads((PUBLISHED / "report.json").read_text())["cases"]["fidelity"]
    DOC.write_text(docs_with_tables(DOC.read_text(), case))


if __name__ == "__main__":
    main()
