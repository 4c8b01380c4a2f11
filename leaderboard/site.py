"""`runner leaderboard build`: render filed results into a static site that works offline and from file://.

Pages: index.html (Table 1 and any further tasks, synthetic demo results in a section of their own), one page per task
(card, hashes, per-fold numbers, ROC curve, analyses), one per encoder; leaderboard.json and leaderboard.csv carry every
number shown. Row order and labels come from the task cards' `leaderboard` block, never from this module.

Tie groups: in a row with two or more reproduced results on the same manifest (same manifest sha256) whose predictions
were filed beside them, the encoders not significantly different from the best are marked (runner.analysis.paired:
paired patient bootstrap on the fold-mean AUROC and F1, Holm across the row, at the task card's analyses.paired.alpha, default 0.05). Reported
numbers come without predictions, so their rows say that no test was made.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from leaderboard.submit import PREDICTIONS_NAME, RESULTS_DIR
from runner.results import ResultError, read_result, validate_result

HERE = Path(__file__).resolve().parent
SECTIONS = {  # section key -> heading; which section a task belongs to is said by its card (leaderboard.table)
    "table1": "Table 1 — MedImageInsight vs. CXR-Foundation on MIMIC-CXR and NIH ChestX-ray14",
    "extra": "More tasks",
    "demo": "Synthetic demo data — not a clinical benchmark",
}
METRICS = (("auroc", "AUROC"), ("f1", "F1"))
EXTRAS = (("stability", "Stability (mean cos)"), ("subgroup_gap", "Largest subgroup AUROC gap"))
DEFAULT_ALPHA = 0.05
NO_TEST_REPORTED = "no significance test: reported numbers (no per-image predictions were published)"


@dataclass(frozen=True)
class Entry:
    """One filed result, as the site shows it."""

    file: str
    result: dict
    stale: bool  # a card changed after the result was filed: shown, but flagged

    @property
    def column(self) -> tuple[str, str]:
        return self.result["encoder"]["id"], self.result["provenance"]


@dataclass
class Row:
    task_id: str
    disease: str
    dataset: str
    cells: dict = field(default_factory=dict)  # (metric, encoder_id, provenance) -> cell dict


def _section_of(task_card, dataset_card, result: dict | None) -> str:
    if (result and result.get("synthetic")) or (dataset_card and dataset_card.data.get("synthetic")):
        return "demo"
    table = (task_card.data.get("leaderboard") or {}).get("table", "extra")
    return table if table in SECTIONS else "extra"


def _row_labels(task_card, registry) -> tuple[int, str, str]:
    """(order, disease, dataset) shown for a task, from its card (falling back to label and dataset card)."""
    board = task_card.data.get("leaderboard") or {}
    label = task_card.data.get("label") or {}
    dataset = registry.datasets.get(task_card.data.get("dataset"))
    dataset_name = (dataset.data.get("title") if dataset else None) or task_card.data.get("dataset", "")
    return (board.get("order", 10_000), board.get("disease") or label.get("name") or label.get("id", ""),
            board.get("dataset_label") or dataset_name)


def load_entries(results_dir: Path, registry) -> tuple[list[Entry], list[str]]:
    """Every valid filed result whose cards exist; and one message per file that could not be shown."""
    entries, skipped = [], []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            result = read_result(path)
        except ResultError as exc:
            skipped.append(str(exc))
            continue
        problems = validate_result(result)
        if problems:
            skipped.append(f"{path.name}: invalid result: {problems[0]}")
            continue
        task = registry.tasks.get(result["task"]["id"])
        encoder = registry.encoders.get(result["encoder"]["id"])
        if task is None or encoder is None:
            skipped.append(f"{path.name}: no card for task {result['task']['id']!r} or encoder {result['encoder']['id']!r}")
            continue
        stale = task.sha256 != result["task"]["sha256"] or encoder.sha256 != result["encoder"]["sha256"]
        entries.append(Entry(path.name, result, stale))
    return entries, skipped


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _num(value) -> str:
    """Generic display of an analysis value: floats to 4 significant digits, everything else as text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)


def _cell(entry: Entry, metric: str) -> dict:
    m = entry.result["metrics"][metric]
    if m["mean"] is None:
        text = "n/a"
    elif m["half_width"] is not None and m["ci_method"] in ("t-interval", "reported"):  # symmetric intervals only
        text = f"{_fmt(m['mean'])} ± {_fmt(m['half_width'])}"
    elif m["ci_low"] is not None and m["ci_high"] is not None:
        text = f"{_fmt(m['mean'])} [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]"
    else:
        text = _fmt(m["mean"])
    return {"text": text, "mean": m["mean"], "reason": m.get("reason"), "entry": entry, "best": False, "tie": None,
            "provenance": entry.result["provenance"], "stale": entry.stale, "ci_method": m["ci_method"]}


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else -1.0


def _analysis(result: dict, name: str) -> dict:
    """result["analyses"][name] when it is a computed block (not skipped/failed), else {}."""
    block = (result.get("analyses") or {}).get(name)
    return block if isinstance(block, dict) and block.get("status") not in ("skipped", "failed") else {}


def stability_mean(result: dict) -> float | None:
    """Mean cosine of every augmented view to its original (analyses.stability.overall.mean)."""
    overall = _analysis(result, "stability").get("overall")
    value = overall.get("mean") if isinstance(overall, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def largest_subgroup_gap(result: dict) -> tuple[float, str] | None:
    """(largest AUROC gap over the attributes, 'attribute: group vs group') from analyses.subgroups."""
    best = None
    attributes = _analysis(result, "subgroups").get("attributes")
    for attribute, data in sorted((attributes or {}).items() if isinstance(attributes, dict) else []):
        gap = data.get("largest_gap") if isinstance(data, dict) else None
        if isinstance(gap, dict) and isinstance(gap.get("auroc_diff"), (int, float)) and \
                (best is None or gap["auroc_diff"] > best[0]):
            hi, lo = (list(gap.get("between") or []) + ["?", "?"])[:2]
            best = (float(gap["auroc_diff"]), f"{attribute}: {hi} vs {lo}")
    return best


@dataclass
class TieGroups:
    """Which reproduced results of one task are not significantly different from the best, per metric."""

    task_id: str
    alpha: float
    manifest_sha256: str | None = None
    by_metric: dict = field(default_factory=dict)  # metric -> runner.analysis.paired.tie_groups() output
    note: str | None = None  # why there is no test, or what was left out

    def mark(self, metric: str, encoder_id: str) -> str | None:
        """'best', 'tied' or 'worse' for a compared encoder; None when it was not compared."""
        groups = self.by_metric.get(metric)
        if not groups or encoder_id not in groups["values"]:
            return None
        if encoder_id == groups["best"]:
            return "best"
        return "tied" if encoder_id in groups["tied_with_best"] else "worse"


def compute_ties(task_card, task_entries: list[Entry], results_dir: Path) -> TieGroups:
    """Tie groups of one task from the predictions filed beside its reproduced results (same manifest only)."""
    alpha = float(((task_card.data.get("analyses") or {}).get("paired") or {}).get("alpha", DEFAULT_ALPHA))
    ties = TieGroups(task_card.id, alpha)
    reproduced = [e for e in task_entries if e.result["provenance"] == "reproduced" and e.result.get("manifest")]
    if not reproduced:
        ties.note = NO_TEST_REPORTED if task_entries else None
        return ties
    by_manifest: dict[str, list[Entry]] = {}
    for entry in reproduced:
        by_manifest.setdefault(entry.result["manifest"]["sha256"], []).append(entry)
    sha, group = max(by_manifest.items(), key=lambda kv: (len(kv[1]), kv[0]))
    ties.manifest_sha256 = sha
    notes = [NO_TEST_REPORTED] if any(e.result["provenance"] == "reported" for e in task_entries) else []
    if len(by_manifest) > 1:
        notes.append(f"{len(reproduced) - len(group)} result(s) on another manifest not compared")
    predictions = {}
    for entry in group:
        path = Path(results_dir) / (Path(entry.file).stem + "." + PREDICTIONS_NAME)
        if not path.is_file():
            notes.append(f"{entry.result['encoder']['id']}: no predictions filed")
            continue
        try:
            import pandas as pd

            predictions[entry.result["encoder"]["id"]] = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            notes.append(f"{entry.result['encoder']['id']}: unreadable predictions ({exc})")
    if len(predictions) < 2:
        ties.note = "; ".join(notes + ["fewer than two reproduced results with predictions on one manifest: no test"])
        return ties
    from runner.analysis.paired import tie_groups
    from runner.metrics import MetricsInputError

    for metric, _ in METRICS:
        try:
            ties.by_metric[metric] = tie_groups(predictions, alpha=alpha, metric=metric,
                                                metrics_card=task_card.data.get("metrics"))
        except (MetricsInputError, ValueError, KeyError) as exc:
            notes.append(f"{metric}: no test ({exc})")
    ties.note = "; ".join(notes) or None
    return ties


def build_tables(entries: list[Entry], registry, ties: dict[str, TieGroups] | None = None) -> list[dict]:
    """One table per section: rows (tasks, in card order) × columns (encoder × provenance, ranked)."""
    tables = []
    for key, heading in SECTIONS.items():
        rows: dict[str, Row] = {}
        if key == "table1":  # Table 1 keeps every row the cards put there, filled or not
            for task in registry.tasks.values():
                if _section_of(task, registry.datasets.get(task.data.get("dataset")), None) == key:
                    rows[task.id] = Row(task.id, *_row_labels(task, registry)[1:])
        section_entries = []
        for entry in entries:
            task = registry.tasks[entry.result["task"]["id"]]
            if _section_of(task, registry.datasets.get(task.data.get("dataset")), entry.result) != key:
                continue
            if key == "table1" and registry.encoders[entry.column[0]].data.get("adapter") == "metadata":
                continue  # Table 1 shows the metadata baselines as its floor column (leaderboard.floors)
            section_entries.append(entry)
            row = rows.setdefault(task.id, Row(task.id, *_row_labels(task, registry)[1:]))
            overlap = _trained_on(registry, entry.result)
            for metric, _ in METRICS:
                row.cells[(metric, *entry.column)] = {**_cell(entry, metric), "trained_on": overlap}
                tie = (ties or {}).get(task.id)
                if tie is not None and entry.column[1] == "reproduced":
                    row.cells[(metric, *entry.column)]["tie"] = tie.mark(metric, entry.column[0])
            for extra, cell in _extra_cells(entry).items():
                row.cells[(extra, *entry.column)] = cell
        if not rows:
            continue
        # Columns: encoders with a reported (published) number first, as the paper prints them; then by mean AUROC.
        by_encoder: dict[str, list[Entry]] = {}
        for entry in section_entries:
            by_encoder.setdefault(entry.column[0], []).append(entry)
        encoder_order = sorted(by_encoder, key=lambda e: (
            not any(x.column[1] == "reported" for x in by_encoder[e]),
            -_mean([x.result["metrics"]["auroc"]["mean"] for x in by_encoder[e]]), e))
        columns = [(e, p) for e in encoder_order for p in ("reported", "reproduced")
                   if any(x.column == (e, p) for x in by_encoder[e])]
        order = {t.id: _row_labels(t, registry) for t in registry.tasks.values()}
        ordered_rows = sorted(rows.values(), key=lambda r: (order[r.task_id], r.task_id))
        for row in ordered_rows:
            for metric, _ in METRICS:
                means = [c["mean"] for k, c in row.cells.items() if k[0] == metric and c["mean"] is not None]
                for k, c in row.cells.items():
                    if k[0] == metric and means and c["mean"] == max(means):
                        c["best"] = True
        names = {e: registry.encoders[e].data.get("title", e) for e in encoder_order}
        extras = tuple((k, label) for k, label in EXTRAS if any(k == c[0] for r in rows.values() for c in r.cells))
        section_ties = [(ties or {}).get(r.task_id) for r in ordered_rows]
        tested = [t for r, t in zip(ordered_rows, section_ties)  # ties of encoders this table shows as columns
                  if t is not None and t.by_metric and any(c.get("tie") for c in r.cells.values())]
        tables.append({"key": key, "heading": heading, "rows": ordered_rows, "metrics": METRICS, "extras": extras,
                       "columns": [{"encoder": e, "provenance": p, "name": names[e]} for e, p in columns],
                       "alphas": sorted({t.alpha for t in tested}),
                       "untested_reported": any(t is not None and NO_TEST_REPORTED in (t.note or "") for t in section_ties)})
    return tables


def _trained_on(registry, result: dict) -> bool | None:
    from registry.overlap import trained_on

    encoder = registry.encoders.get(result["encoder"]["id"])
    return None if encoder is None else trained_on(encoder.data, result["task"]["dataset"])


def _extra_cells(entry: Entry) -> dict:
    """The stability and subgroup-gap cells of a result, where it has those analyses."""
    cells = {}
    stability = stability_mean(entry.result)
    if stability is not None:
        cells["stability"] = {"text": f"{stability:.4f}", "mean": stability, "reason": None, "entry": entry,
                              "best": False, "tie": None, "provenance": entry.result["provenance"], "stale": entry.stale}
    gap = largest_subgroup_gap(entry.result)
    if gap is not None:
        cells["subgroup_gap"] = {"text": f"{gap[0]:.3f}", "mean": gap[0], "reason": gap[1], "entry": entry,
                                 "best": False, "tie": None, "provenance": entry.result["provenance"], "stale": entry.stale}
    return cells


def _roc_points(entry: Entry, results_dir: Path):
    """(fpr, tpr) of a result: from its `roc` block, else from the predictions file filed beside it."""
    if "roc" in entry.result:
        return entry.result["roc"]["fpr"], entry.result["roc"]["tpr"]
    predictions = Path(results_dir) / (Path(entry.file).stem + "." + PREDICTIONS_NAME)
    if not predictions.is_file():
        return None
    try:
        import pandas as pd
        from sklearn.metrics import roc_curve

        frame = pd.read_parquet(predictions, columns=["label", "prob"])
        fpr, tpr, _ = roc_curve(frame["label"].astype(int), frame["prob"].astype(float))
    except (OSError, ValueError, KeyError, ImportError) as exc:  # a broken predictions file costs the plot, not the site
        print(f"warning: {predictions.name}: no ROC curve ({exc})", file=sys.stderr)
        return None
    return fpr.tolist(), tpr.tolist()


def _plot_roc(curves: list[tuple[str, list, list]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for label, fpr, tpr in curves:
        ax.plot(fpr, tpr, label=label, linewidth=1.5)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def analysis_views(task_id: str, entries: list[Entry], folder: Path) -> dict:
    """What the task page shows of the results' analyses, flattened for the template; figures drawn into `folder`."""
    views: dict = {"stability": [], "kmeans": [], "umap": [], "subgroups": [], "label_efficiency": None,
                   "label_efficiency_rows": [], "transfer": [], "paired": []}
    curves = {}
    for e in entries:
        r, name = e.result, e.result["encoder"]["name"]
        stability = _analysis(r, "stability")
        if isinstance(stability.get("overall"), dict):
            kinds = stability.get("by_kind") if isinstance(stability.get("by_kind"), dict) else {}
            views["stability"].append({"encoder": name, "overall": stability["overall"],
                                       "kinds": {k: v.get("mean") for k, v in kinds.items() if isinstance(v, dict)},
                                       "different_images": (stability.get("different_images") or {}).get("mean")})
        clustering = _analysis(r, "clustering")
        kmeans = clustering.get("kmeans") if isinstance(clustering.get("kmeans"), dict) else {}
        if kmeans:
            chosen = kmeans.get("chosen_k")
            views["kmeans"].append({"encoder": name, "chosen_k": chosen, "n_init": kmeans.get("n_init"),
                                    "silhouette": (kmeans.get("silhouette") or {}).get(str(chosen)),
                                    "k_tried": sorted(int(k) for k in (kmeans.get("silhouette") or {})),
                                    "ari": kmeans.get("ari"), "nmi": kmeans.get("nmi"), "reason": kmeans.get("reason")})
        figure = _umap_figure(task_id, e, clustering, folder)
        if figure:
            views["umap"].append({"encoder": name, **figure})
        for attribute, data in sorted((_analysis(r, "subgroups").get("attributes") or {}).items()):
            for group, g in sorted(((data or {}).get("groups") or {}).items()):
                views["subgroups"].append({"encoder": name, "attribute": attribute, "group": group, **g})
        efficiency = _analysis(r, "label_efficiency")
        if isinstance(efficiency.get("points"), list):
            curves[name] = efficiency
            for point in efficiency["points"]:
                views["label_efficiency_rows"].append({"encoder": name, **{k: point.get(k) for k in (
                    "positives_per_class", "n_runs", "mean_auroc", "sd_auroc", "reason")}})
        transfer = _analysis(r, "transfer")
        if transfer.get("kind") == "transfer task":
            views["transfer"].append({"encoder": name, "target": transfer.get("test_task"), **transfer})
        else:
            for target, t in sorted(transfer.items()):
                if isinstance(t, dict):
                    views["transfer"].append({"encoder": name, "target": target, "train_task": task_id, **t})
        paired = _analysis(r, "paired")
        for metric, groups in sorted(paired.items()):
            if isinstance(groups, dict) and "tied_with_best" in groups:
                views["paired"].append({"encoder": name, "metric": metric, **groups})
    if curves:
        from runner.analysis.label_efficiency import plot_label_efficiency

        name = f"{task_id}-label-efficiency.png"
        try:
            plot_label_efficiency(curves, folder / name, title=task_id)
            views["label_efficiency"] = name
        except (KeyError, TypeError, ValueError) as exc:  # a malformed block costs the figure, not the site
            print(f"warning: {task_id}: no label-efficiency figure ({exc})", file=sys.stderr)
    return views


def _umap_figure(task_id: str, entry: Entry, clustering: dict, folder: Path) -> dict | None:
    """Draw a result's stored UMAP coordinates as PNG + SVG into folder; {png, svg} file names or None."""
    coordinates = (clustering.get("umap") or {}).get("coordinates") if isinstance(clustering.get("umap"), dict) else None
    if not isinstance(coordinates, dict):
        return None
    from runner.analysis.clustering import plot_umap

    stem = f"{task_id}-{entry.result['encoder']['id']}-{entry.result['provenance']}-umap"
    try:
        import numpy as np

        xy = np.column_stack([coordinates["x"], coordinates["y"]])
        plot_umap(xy, coordinates["label"], folder / f"{stem}.png", folder / f"{stem}.svg",
                  title=f"{entry.result['encoder']['name']} on {task_id}")
    except (KeyError, TypeError, ValueError) as exc:
        print(f"warning: {entry.file}: no UMAP figure ({exc})", file=sys.stderr)
        return None
    return {"png": f"{stem}.png", "svg": f"{stem}.svg"}


def _records(entries: list[Entry], tables: list[dict], ties: dict[str, TieGroups] | None = None) -> list[dict]:
    """Every number on the site, flat: one record per result file."""
    section = {(r.task_id, *c["entry"].column): t["key"] for t in tables for r in t["rows"] for c in r.cells.values()}
    records = []
    for entry in entries:
        r = entry.result
        record = {"section": section.get((r["task"]["id"], *entry.column)), "file": entry.file,
                  "task": r["task"]["id"], "dataset": r["task"]["dataset"], "label": r["task"]["label"],
                  "encoder": r["encoder"]["id"], "encoder_name": r["encoder"]["name"], "provenance": r["provenance"],
                  "stale": entry.stale, "synthetic": bool(r.get("synthetic")),
                  "manifest_sha256": (r.get("manifest") or {}).get("sha256"),
                  "images_per_s": (r.get("throughput") or {}).get("images_per_s")}
        for metric, _ in METRICS:
            for part in ("mean", "ci_low", "ci_high", "half_width", "ci_method"):
                record[f"{metric}_{part}"] = r["metrics"][metric][part]
        tie = (ties or {}).get(r["task"]["id"])
        for metric, _ in METRICS:  # best | tied (not significantly different from the best) | worse | None
            record[f"{metric}_tie"] = tie.mark(metric, r["encoder"]["id"]) if tie and r["provenance"] == "reproduced" \
                else None
        record["tie_alpha"] = tie.alpha if tie and tie.by_metric else None
        record["stability_mean_cosine"] = stability_mean(r)
        gap = largest_subgroup_gap(r)
        record["subgroup_gap_auroc"] = gap[0] if gap else None
        records.append(record)
    return records


def _csv_safe(value):
    """Keep spreadsheet programs from running a submitted string as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_exports(out: Path, records: list[dict], floors: dict | None = None) -> None:
    (out / "leaderboard.json").write_text(json.dumps({"results": records, "floors": floors or {}}, allow_nan=False,
                                                     indent=2) + "\n", encoding="utf-8")
    buffer = io.StringIO()
    fields = list(records[0]) if records else ["task", "encoder"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_safe(v) for k, v in record.items()})
    (out / "leaderboard.csv").write_text(buffer.getvalue(), encoding="utf-8")


def _card_yaml(data: dict) -> str:
    """A resolved card as YAML, identity fields first (the merge with defaults puts them last)."""
    first = [k for k in ("id", "title", "dataset", "label", "adapter") if k in data]
    ordered = {**{k: data[k] for k in first}, **{k: v for k, v in data.items() if k not in first}}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=100)


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["yaml"] = _card_yaml
    env.filters["num"] = _num
    env.filters["keys_of"] = lambda rows: list(dict.fromkeys(k for row in rows if isinstance(row, dict) for k in row))
    env.tests["mapping"] = lambda v: isinstance(v, dict)
    env.tests["sequence"] = lambda v: isinstance(v, (list, tuple))
    return env


def _display_path(path: Path) -> str:
    """The results folder as a reader would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"


def build_site(out_dir: Path, results_dir: Path = RESULTS_DIR, registry=None) -> Path:
    """Render the site into `out_dir` (created, its earlier pages replaced) and return the path of index.html."""
    if registry is None:
        from registry.cards import load_registry

        registry = load_registry()
    out = Path(out_dir)
    for sub in ("tasks", "encoders", "static"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True, exist_ok=True)
    for asset in (HERE / "static").iterdir():
        shutil.copyfile(asset, out / "static" / asset.name)

    entries, skipped = load_entries(results_dir, registry)
    for message in skipped:
        print(f"warning: not shown: {message}", file=sys.stderr)
    ties = {task.id: compute_ties(task, [e for e in entries if e.result["task"]["id"] == task.id], results_dir)
            for task in registry.tasks.values()}
    tables = build_tables(entries, registry, ties)
    from leaderboard.floors import compute_floors

    floors = compute_floors([(e.file, e.result) for e in entries], registry)
    env = _environment()
    common = {"skipped": skipped, "n_results": len(entries), "results_dir": _display_path(Path(results_dir))}

    for task in registry.tasks.values():
        task_entries = [e for e in entries if e.result["task"]["id"] == task.id]
        curves = [(f"{e.result['encoder']['name']} ({e.result['provenance']})", *pts)
                  for e in task_entries if (pts := _roc_points(e, results_dir))]
        roc = None
        if curves:
            roc = f"{task.id}-roc.png"
            _plot_roc(curves, out / "tasks" / roc)
        _, disease, dataset = _row_labels(task, registry)
        page = env.get_template("task.html").render(
            root="../", title=task.data.get("title", task.id), card=task, entries=task_entries, roc=roc,
            disease=disease, dataset=dataset, citations=sorted({e.result.get("citation") for e in task_entries} - {None}),
            ties=ties[task.id], views=analysis_views(task.id, task_entries, out / "tasks"),
            floors=floors["tasks"].get(task.id), floor_source=floors["source"],
            trained_on={e.result["encoder"]["id"]: _trained_on(registry, e.result) for e in task_entries}, **common)
        (out / "tasks" / f"{task.id}.html").write_text(page, encoding="utf-8")

    for encoder in registry.encoders.values():
        encoder_entries = [e for e in entries if e.result["encoder"]["id"] == encoder.id]
        page = env.get_template("encoder.html").render(
            root="../", title=encoder.data.get("title", encoder.id), card=encoder, entries=encoder_entries, **common)
        (out / "encoders" / f"{encoder.id}.html").write_text(page, encoding="utf-8")

    index = out / "index.html"
    index.write_text(env.get_template("index.html").render(
        root="", title="CXR embedding leaderboard", tables=tables, tasks=registry.tasks,
        encoders=registry.encoders, floors=floors, **common), encoding="utf-8")
    _write_exports(out, _records(entries, tables, ties), floors)
    return index


def serve(directory: Path, port: int = 8000) -> None:
    """Serve a built site on 127.0.0.1 until interrupted (for viewing only)."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {directory} at http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
