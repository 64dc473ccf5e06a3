"""The Serve overhead published on docs/ray.md is the committed bench report's, figure for
figure, and its chart is that report's chart."""

from __future__ import annotations

import json
import re

from tests.fakes.servers import ROOT

REPORT = ROOT / "bench" / "results" / "ray_serve"
PAGE = ROOT / "docs" / "ray.md"


def test_the_docs_quote_the_committed_ray_serve_report() -> None:
    report = json.loads((REPORT / "report.json").read_text())
    rows = report["cases"]["ray_serve"]["rows"]
    page = PAGE.read_text()
    assert f"Run {report['started']}" in page
    assert "python -m bench --cases ray_serve --out bench/results/ray_serve" in page
    for row in rows:
        line = next(x for x in page.splitlines() if x.startswith(f"| {row['label']} |"))
        cells = [c.strip().strip("*").replace(",", "") for c in line.strip("|").split("|")]
        u, s = row["uvicorn"], row["serve"]
        figures = [u["samples_per_s"], s["samples_per_s"], row["throughput_ratio"],
                   u["p50_ms"], s["p50_ms"], row["p50_ratio"]]
        for cell, figure in zip(cells[1:], figures, strict=True):
            places = len(cell.split(".")[1]) if "." in cell else 0
            assert float(cell) == round(figure, places), (row["label"], cell, figure)
        assert u["errors"] == s["errors"] == 0
    assert re.search(r"!\[[^]]*\]\(img/ray_serve\.png\)", page)
    assert (ROOT / "docs" / "img" / "ray_serve.png").read_bytes() == (
        REPORT / "report.png").read_bytes()
