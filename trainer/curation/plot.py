"""The curation plot (``OUT.png``): quality against instability with the box drawn, and the
marginal histograms of both. matplotlib is imported only here (the ``train`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_qi"]


def plot_qi(
    points: Sequence[tuple[float, float, str]],
    box: tuple[float, float, float],
    path: Path,
    title: str = "QI-Box",
) -> None:
    """Scatter of quality (x) vs instability (y) with the box drawn, and marginal histograms.

    ``points`` are ``(quality, instability, state)`` with state ``kept``, ``box`` (inside
    the box but cut by the target size or the strata) or ``out``; ``box`` is
    ``(lo, hi, min_instability)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    lo, hi, min_inst = box
    qs = [p[0] for p in points]
    ss = [p[1] for p in points]
    fig = plt.figure(figsize=(8, 8))
    grid = fig.add_gridspec(
        2, 2, width_ratios=(4, 1), height_ratios=(1, 4), hspace=0.05, wspace=0.05
    )
    ax = fig.add_subplot(grid[1, 0])
    ax_q = fig.add_subplot(grid[0, 0], sharex=ax)
    ax_s = fig.add_subplot(grid[1, 1], sharey=ax)
    styles = {
        "out": ("tab:gray", 0.5, "outside the box"),
        "box": ("tab:orange", 0.7, "in the box, cut"),
        "kept": ("tab:red", 0.85, "kept"),
    }
    for state, (color, alpha, label) in styles.items():
        xs = [p[0] for p in points if p[2] == state]
        ys = [p[1] for p in points if p[2] == state]
        if xs:
            ax.scatter(xs, ys, s=12, alpha=alpha, c=color, label=f"{label} ({len(xs)})")
    kept = [p for p in points if p[2] == "kept"]
    top = max([0.5, *ss]) * 1.05
    ax.add_patch(
        Rectangle(
            (lo, min_inst), hi - lo, top - min_inst, fill=False, ec="tab:blue", lw=2, label="QI-Box"
        )
    )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.01, top)
    ax.set_xlabel("quality (mean reward over scored samples)")
    ax.set_ylabel("instability (std of rewards)")
    ax.legend(loc="upper left", fontsize=8)
    bins = 20
    ax_q.hist(qs, bins=bins, range=(0, 1), color="tab:gray")
    for x in (lo, hi):
        ax_q.axvline(x, color="tab:blue", lw=1.5)
    ax_s.hist(ss, bins=bins, range=(0, top), orientation="horizontal", color="tab:gray")
    ax_s.axhline(min_inst, color="tab:blue", lw=1.5)
    ax_q.tick_params(labelbottom=False)
    ax_s.tick_params(labelleft=False)
    ax_q.set_title(f"{title}: {len(kept)} kept of {len(points)} prompts with statistics")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
