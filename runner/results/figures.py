"""Figures: matplotlib only, no statistics. Runs draw them for their own output folder (UMAP, label efficiency),
and the site's renderer draws the same figures from the numbers a summary carries (ROC curves, UMAP coordinates,
label-efficiency points), so it needs nothing from the analysis or metrics modules.

Every text that comes from a card or a result goes through `plain_text`: matplotlib reads `$...$` as TeX, and a
name such as `$\\frac{$` would otherwise break the figure (or the build).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def plain_text(text) -> str:
    """Text shown as is in a figure: every `$` escaped, so matplotlib never enters math mode."""
    return str(text).replace("$", "\\$")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_umap(xy, labels, png_path: str | Path, svg_path: str | Path | None = None, title: str | None = None) -> dict:
    """Scatter of 2-D points, negatives (0) blue and positives (1) red, as in the paper's Figure 1; {png, svg} paths."""
    plt = _pyplot()
    xy, labels = np.asarray(xy, dtype=float), np.asarray(labels).astype(int)
    fig, ax = plt.subplots(figsize=(5, 5))
    for value, colour in ((0, "tab:blue"), (1, "tab:red")):
        rows = labels == value
        ax.scatter(xy[rows, 0], xy[rows, 1], s=4, alpha=0.6, c=colour, label=f"{value} (n={int(rows.sum())})",
                   rasterized=True)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.legend(title="label", markerscale=3)
    if title:
        ax.set_title(plain_text(title), fontsize=9)
    fig.tight_layout()
    paths = {}
    for key, path in (("png", png_path), ("svg", svg_path)):
        if path is None:
            continue
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
        paths[key] = str(path)
    plt.close(fig)
    return paths


def plot_label_efficiency(curves: Mapping[str, Mapping], png_path: str | Path, title: str | None = None) -> str:
    """One mean ± sd AUROC curve per encoder (encoder id -> label_efficiency() result), saved as PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for encoder_id, result in sorted(curves.items()):
        pts = [p for p in result["points"] if p["mean_auroc"] is not None]
        if not pts:
            continue
        n = np.array([p["positives_per_class"] for p in pts])
        mean = np.array([p["mean_auroc"] for p in pts])
        sd = np.array([p["sd_auroc"] or 0.0 for p in pts])
        ax.plot(n, mean, marker="o", label=plain_text(encoder_id))
        ax.fill_between(n, mean - sd, mean + sd, alpha=0.2)
    ax.set_xscale("log")
    sizes = sorted({p["positives_per_class"] for r in curves.values() for p in r["points"]})
    if sizes:  # label the sizes that were run, as plain numbers (not 3 x 10^1)
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training positives per class")
    ax.set_ylabel("AUROC (mean ± sd over seeds and folds)")
    ax.legend()
    if title:
        ax.set_title(plain_text(title))
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=150)
    plt.close(fig)
    return str(png_path)


def plot_roc(curves: Sequence[Mapping], path: str | Path) -> str:
    """ROC curves ({label, fpr, tpr} each) with the chance line, the legend outside the axes so it hides no curve."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=100)
    for curve in curves:
        ax.plot(curve["fpr"], curve["tpr"], label=plain_text(curve["label"]), linewidth=1.5)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1))
    ax.set_aspect("equal")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, format="png", bbox_inches="tight")
    plt.close(fig)
    return str(path)
