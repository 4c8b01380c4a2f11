"""The Encoders page (renderer): copies every shown result JSON (and its predictions file) into SITE/results/,
draws AUROC against parameters (SVG) per view and renders templates/encoders.html from the summary's
`encoders_page` block alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from leaderboard.site.site_dir import SiteDirError


def copy_result_files(files: list[str], results_dir: Path, out: Path) -> None:
    """SITE/results/<file> for every shown result and its predictions (paths relative to the results folder, as the
    summary lists them), so each number is one click from the files it is recomputed from.

    Nothing else in SITE/results/ is touched: the previous build's copies were removed when the folder was claimed
    (leaderboard.site.site_dir), so a file still there under a name this build writes is someone else's: refused."""
    target = out / "results"
    target.mkdir(parents=True, exist_ok=True)
    copied: set[str] = set()
    for name in files:
        if name in copied or not (Path(results_dir) / name).is_file():
            continue
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise SiteDirError(f"a shown result file is named {name[:200]!r}: not a path inside the results folder")
        if (target / name).exists() or (target / name).is_symlink():
            raise SiteDirError(f"{target / name} was not written by `runner leaderboard build` and a filed result "
                               "has that name: move it away, then build again")
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if not (target / name).parent.resolve().is_relative_to(target.resolve()):  # a linked sub-folder
            raise SiteDirError(f"{(target / name).parent} leads outside {target} (a symbolic link): remove it")
        shutil.copyfile(Path(results_dir) / name, target / name)
        copied.add(name)


def plot_auroc_vs_parameters(view: dict, path: Path) -> bool:
    """Mean AUROC over the ranked tasks against parameters (log scale), one labelled point per ranked encoder with a
    known size; False (no figure) with fewer than two such points: one point compares nothing."""
    points = [(row["parameters"], row["mean_auroc"], row["title"]) for row in view["rows"] if row.get("parameters")]
    if len(points) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cxr-registry"}):  # text stays (escaped) text
        fig, ax = plt.subplots(figsize=(5.6, 3.4), dpi=100)
        ax.scatter([p[0] for p in points], [p[1] for p in points], color="#0b5cad", zorder=3)
        for x, y, label in points:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set(xlabel="Parameters (log scale)", ylabel="Mean AUROC over the view's tasks")
        ax.grid(True, linewidth=0.3)
        fig.tight_layout()
        fig.savefig(path, format="svg", metadata={"Date": None})
        plt.close(fig)
    return True


def si_count(value) -> str:
    """362733568 -> '363 M', 97152 -> '97.2 k': parameter counts short enough for a table column."""
    if value is None:
        return "—"
    for size, suffix in ((1e9, " B"), (1e6, " M"), (1e3, " k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return str(value)


def write_encoders_page(out: Path, page: dict, results_dir: Path, env, common: dict) -> None:
    """Render SITE/encoders.html (and SITE/encoders.json, the ranking) from the summary's `encoders_page` block."""
    import json

    copy_result_files(page["files"], results_dir, out)
    ranking = page["ranking"]
    (out / "encoders.json").write_text(json.dumps(ranking, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    plots = {}
    for index, key in enumerate(ranking["views"]):
        name = f"auroc-vs-parameters-{index}.svg"
        if plot_auroc_vs_parameters(ranking["views"][key], out / "static" / name):
            plots[key] = name
    html = env.get_template("encoders.html").render(
        root="", title="Encoders ranked", ranking=ranking, plots=plots, labels=page["labels"],
        benchmark_titles=page["benchmark_titles"], dataset_titles=page["dataset_titles"], **common)
    (out / "encoders.html").write_text(html, encoding="utf-8")
