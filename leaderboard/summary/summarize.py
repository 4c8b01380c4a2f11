"""The summarize stage (run -> summarize -> render, as HELM does): filed results -> leaderboard.json.

Entry: `summarize(results_dir, registry) -> dict`, written by `write_summary(summary, path)`.

Every number the site shows is computed here, once: the table cells and their best marks, tie groups (paired tests
on the predictions filed beside reproduced results of the same manifest), ROC curves, the analysis views of each
task page, and the cross-task references (a transfer task's in-domain score). The renderer (leaderboard/site/render.py)
only fills templates from this JSON; it imports nothing from runner.analysis or runner.metrics.

The layout is the registry's (registry/benchmarks.yaml `leaderboard`, read by registry.benchmarks.load_layout): the
sections and which benchmarks each holds (the benchmark a task joins decides its section), the metric and extra
columns. Controls (encoder cards with `control: true`, and metadata-only baselines) are shown in clinical sections
for reference but never marked best nor tie-tested there; on synthetic tasks they are all there is, and compete.

Tie groups: in a row with two or more reproduced results on the same manifest (same manifest sha256) whose
predictions were filed beside them, the encoders not significantly different from the best are marked
(runner.analysis.paired, by the task card's analyses.paired.test at its alpha, when analyses.paired.enabled). Reported numbers
come without predictions, so their rows say that no test was made.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from leaderboard.filing.audit import audited
from leaderboard.filing.layout import predictions_of
from leaderboard.filing.verified import verified_problems
from leaderboard.filing.verify import card_matches
from leaderboard.site.text import metric_text
from leaderboard.summary.encoders import encoders_summary
from leaderboard.summary.floors import compute_floors
from leaderboard.summary.ranking import is_control
from registry import plugins
from registry.benchmarks import LeaderboardLayout, load_layout
from registry.cards import load_registry
from registry.negatives import NEGATIVE_CLASSES, table_negatives, task_negatives
from registry.overlap import trained_on
from runner.analysis import json_safe
from runner.analysis.paired import tie_groups
from runner.metrics.scores import METRICS as RESULT_METRICS
from runner.metrics.scores import MetricsInputError
from runner.results.result import ResultError, read_result, validate_result
from runner.runtime.atomic import atomic_write_bytes
from runner.runtime.progress import counted
from runner.sample.manifest import ManifestError, read_manifest
from runner.sample.store import find_stored, results_store
from runner.task_types import column_group, task_type_of

TYPE_ORDER = tuple(plugins.BUILTIN["task_type"])  # the order column groups follow within a section

SUMMARY_VERSION = 2
NO_TEST_REPORTED = "no significance test: reported numbers (no per-image predictions were published)"
NO_TEST_TYPED = "no paired test for this task type yet: its results are regenerated from their embeddings, not predictions"


@dataclass(frozen=True)
class Entry:
    """One filed result, as the summary carries it."""

    file: str
    result: dict
    stale: bool  # a card's behaviour changed after the result was filed: shown, but flagged
    problems: tuple = ()  # why it does not regenerate as filed (leaderboard.filing): shown marked, never ranked or tested
    tier: str | None = None  # how its numbers are verified (TIERS); None when they are not

    @property
    def column(self) -> tuple[str, str]:
        return self.result["encoder"]["id"], self.result["provenance"]

    def as_json(self) -> dict:
        return {"file": self.file, "stale": self.stale, "problems": list(self.problems), "tier": self.tier,
                "result": self.result}


def load_entries(results_dir: Path, registry, records_dir: Path | None = None) -> tuple[list[Entry], list[str]]:
    """Every valid filed result whose cards exist, verified again (leaderboard.filing.submit.filed_problems: the filed
    file must be the registry's regeneration of it; reported numbers what their publication prints; a record in
    `records_dir` stands in for the regeneration when its key matches every input, leaderboard.filing.verified); and one
    message per file that could not be shown."""

    entries, skipped = [], []
    paths = sorted(Path(results_dir).glob("*.json"))
    results = "result" if len(paths) == 1 else "results"
    for path in counted(paths, f"verifying {len(paths)} filed {results} (regenerated, unless a record proves one "
                               "unchanged)"):
        try:
            result = read_result(path)
        except ResultError as exc:
            skipped.append(str(exc))
            continue
        problems = validate_result(result)
        if problems:
            skipped.append(f"{path.name}: invalid result: {problems[0]}")
            continue
        if result["task"]["id"] not in registry.tasks or result["encoder"]["id"] not in registry.encoders:
            skipped.append(f"{path.name}: {card_matches(result, registry)}")
            continue
        problems = tuple(verified_problems(path, result, registry, records_dir))
        entries.append(Entry(path.name, result, card_matches(result, registry) is not None, problems,
                             None if problems else tier_of(result, Path(results_dir), registry)))
    return entries, skipped


# How a number on the site was verified, weakest first (the site's legend says the same).
TIERS = {
    "reported": "printed in a publication; the registry checks it is exactly what the publication prints",
    "predictions": "recomputed by the registry from the filed out-of-fold predictions on the task's pinned manifest; "
                   "the predictions themselves are the submitter's",
    "embeddings": "the registry refitted the classifier itself from the filed embeddings (or, for the metadata "
                  "baseline, the manifest's own columns) and recomputed every number",
    "audited": "refitted from the filed embeddings, and a seeded sample of those embeddings re-computed from the "
               "images with the encoder matched them (runner audit)",
}


def tier_of(result: dict, results_dir: Path, registry) -> str:
    """The tier of a result that regenerates as filed (leaderboard.filing: its verification block is the registry's)."""
    if result["provenance"] == "reported":
        return "reported"
    tier = (result.get("verification") or {}).get("tier", "predictions")
    if tier == "embeddings" and audited(results_dir, result, load_layout(registry.root).audit):
        return "audited"
    return tier


def _cell(entry: Entry, metric: str) -> dict:
    """One table cell of a result's metric (the caller checks the result has it)."""
    m = entry.result["metrics"][metric]
    text = metric_text(m)
    return {"text": text, "mean": m["mean"], "reason": m.get("reason"), "best": False, "tie": None,
            "provenance": entry.result["provenance"], "stale": entry.stale, "ci_method": m["ci_method"],
            "file": entry.file, "unverified": bool(entry.problems), "tier": entry.tier}


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


# ---------------------------------------------------------------------------------------------- tie groups


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

    def as_json(self) -> dict:
        return {"task_id": self.task_id, "alpha": self.alpha, "manifest_sha256": self.manifest_sha256,
                "by_metric": self.by_metric, "note": self.note}


def _filed_predictions(results_dir: Path, result: dict) -> pd.DataFrame | None:
    """A filed result's out-of-fold predictions (None: none filed, or unreadable)."""
    path = predictions_of(results_dir, result)
    try:
        return pd.read_parquet(path) if path is not None and path.is_file() else None
    except (OSError, ValueError):
        return None


def _predictions_path(results_dir: Path, entry: Entry) -> Path | None:
    return predictions_of(results_dir, entry.result)


def compute_ties(task_card, task_entries: list[Entry], results_dir: Path, metrics=RESULT_METRICS,
                 controls=frozenset()) -> TieGroups:
    """Tie groups of one task from the predictions filed beside its reproduced results (same manifest only).
    `controls`: encoder ids left out of the test (a control is never the best of a clinical row)."""
    paired = task_card.spec.analyses.paired
    ties = TieGroups(task_card.id, paired.alpha)
    left_out = sorted({e.result["encoder"]["id"] for e in task_entries} & set(controls))
    reproduced = [e for e in task_entries if e.result["provenance"] == "reproduced" and e.result.get("manifest")
                  and not e.problems  # an unverified result is never tested against the others
                  and e.result["encoder"]["id"] not in controls]
    if not reproduced:
        ties.note = NO_TEST_REPORTED if any(e.result["provenance"] == "reported" for e in task_entries) else None
        if left_out:
            ties.note = "; ".join(filter(None, [ties.note, _controls_note(left_out)]))
        return ties
    if not paired.enabled:
        ties.note = "no paired comparison: the task card's analyses.paired.enabled is false"
        return ties
    by_manifest: dict[str, list[Entry]] = {}
    for entry in reproduced:
        by_manifest.setdefault(entry.result["manifest"]["sha256"], []).append(entry)
    sha, group = max(by_manifest.items(), key=lambda kv: (len(kv[1]), kv[0]))
    ties.manifest_sha256 = sha
    notes = [NO_TEST_REPORTED] if any(e.result["provenance"] == "reported" for e in task_entries) else []
    if left_out:
        notes.append(_controls_note(left_out))
    if len(by_manifest) > 1:
        notes.append(f"{len(reproduced) - len(group)} result(s) on another manifest not compared")
    predictions = {}
    for entry in group:
        path = _predictions_path(results_dir, entry)
        if path is None or not path.is_file():
            notes.append(f"{entry.result['encoder']['id']}: no predictions filed")
            continue
        try:
            predictions[entry.result["encoder"]["id"]] = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            notes.append(f"{entry.result['encoder']['id']}: unreadable predictions ({exc})")
    if len(predictions) < 2:
        ties.note = "; ".join(notes + ["fewer than two reproduced results with predictions on one manifest: no test"])
        return ties

    for metric in metrics:
        try:
            ties.by_metric[metric] = json_safe(tie_groups(predictions, alpha=ties.alpha, metric=metric,
                                                          metrics_card=task_card.spec.metrics, test=paired.test),
                                               f"ties.{metric}")
        except (MetricsInputError, ValueError, KeyError) as exc:
            notes.append(f"{metric}: no test ({exc})")
    ties.note = "; ".join(notes) or None
    return ties


def _controls_note(encoder_ids: list[str]) -> str:
    return f"controls not compared (reference only, see the shortcut floor): {', '.join(encoder_ids)}"


# ---------------------------------------------------------------------------------------------- tables


def _data_synthetic(task_card, registry, result: dict | None = None) -> bool:
    dataset = registry.datasets.get(task_card.spec.dataset)
    return bool((result or {}).get("synthetic")) or bool(dataset and dataset.spec.synthetic)


def task_is_synthetic(task_card, registry, layout: LeaderboardLayout, result: dict | None = None) -> bool:
    """Kept out of clinical views: its data (or the result) is synthetic, or it joins a synthetic benchmark."""
    return layout.synthetic(task_card.spec.benchmarks, _data_synthetic(task_card, registry, result))


def section_of(task_card, registry, layout: LeaderboardLayout, result: dict | None = None) -> str | None:
    """The front-page section a task (or one result of it) is shown in: decided by the benchmarks it joins."""
    return layout.section_of(task_card.spec.benchmarks, _data_synthetic(task_card, registry, result))


def control_ids(registry) -> frozenset[str]:
    return frozenset(e for e, card in registry.encoders.items() if is_control(card.data))


def _row_labels(task_card, registry) -> tuple[int, str, str]:
    """(order, disease, dataset) shown for a task, from its card (falling back to label and dataset card)."""
    spec = task_card.spec
    dataset = registry.datasets.get(spec.dataset)
    dataset_name = dataset.spec.title if dataset else spec.dataset
    return spec.leaderboard.order, spec.leaderboard.disease or spec.label.name, spec.leaderboard.dataset_label or \
        dataset_name


def cell_key(metric: str, encoder_id: str, provenance: str) -> str:
    """How a row's cells are keyed in the summary (the templates build the same key)."""
    return f"{metric}|{encoder_id}|{provenance}"


def group_columns(layout: LeaderboardLayout, group: str) -> tuple[tuple, tuple]:
    """(metric columns, extra columns) of a column group: classification's are the layout's `metrics` and `extras`,
    every other type's its `column_groups` entry (registry/benchmarks.yaml)."""
    if group == "classification":
        return layout.metrics, layout.extras
    return layout.column_groups.get(group, ()), ()


def build_tables(entries: list[Entry], registry, ties: dict[str, TieGroups] | None = None,
                 layout: LeaderboardLayout | None = None) -> list[dict]:
    """One table per section of the layout and column group (task type) present in it: rows (tasks, in card order) x
    columns (encoder x provenance, ranked), the group's metrics as column groups. A classification table keeps the
    section's id as its key; another type's table is keyed <section>-<type>."""
    layout = layout or load_layout(getattr(registry, "root", None))
    tables = []
    for section in layout.sections:
        in_section = [t for t in registry.tasks.values() if section_of(t, registry, layout) == section.id]
        groups = {column_group(t) for t in in_section} | {
            column_group(registry.tasks[e.result["task"]["id"]]) for e in entries
            if section_of(registry.tasks[e.result["task"]["id"]], registry, layout, e.result) == section.id}
        for group in sorted(groups, key=lambda g: (g != "classification", TYPE_ORDER.index(g) if g in TYPE_ORDER
                                                   else len(TYPE_ORDER), g)):
            table = _group_table(section, group, entries, registry, ties, layout)
            if table is not None:
                tables.append(table)
    return tables


def _group_table(section, group: str, entries: list[Entry], registry, ties, layout) -> dict | None:
    """The table of one section's tasks of one column group (None: no row)."""
    controls = control_ids(registry)
    metrics, extras = group_columns(layout, group)
    kind = plugins.load("task_type", group)
    rows: dict[str, dict] = {}

    def row_of(task, rows=rows):
        _, disease, dataset = _row_labels(task, registry)
        return rows.setdefault(task.id, {"task_id": task.id, "disease": disease, "dataset": dataset, "cells": {}})

    if section.all_rows:  # e.g. Table 1 keeps every row of its benchmark, filled or not
        for task in registry.tasks.values():
            if section_of(task, registry, layout) == section.id and column_group(task) == group:
                row_of(task)
    section_entries = []
    floor_column = section.floor_column and group == "classification"
    for entry in entries:
        task = registry.tasks[entry.result["task"]["id"]]
        if section_of(task, registry, layout, entry.result) != section.id or column_group(task) != group:
            continue
        if floor_column and registry.encoders[entry.column[0]].spec.adapter == "metadata":
            continue  # shown as the section's floor column (leaderboard.summary.floors)
        section_entries.append(entry)
        row = row_of(task)
        tie = (ties or {}).get(task.id)
        overlap = _trained_on(registry, entry.result)
        control = entry.column[0] in controls and not section.synthetic
        for metric, _ in metrics:
            if metric not in entry.result["metrics"]:
                continue
            cell = {**_cell(entry, metric), "trained_on": overlap, "control": control}
            if tie is not None and entry.column[1] == "reproduced":
                cell["tie"] = tie.mark(metric, entry.column[0])
            row["cells"][cell_key(metric, *entry.column)] = cell
        wanted = {x for x, _ in extras}
        for extra, cell in _extra_cells(entry).items():
            if extra in wanted:
                row["cells"][cell_key(extra, *entry.column)] = {**cell, "control": control}
    if not rows:
        return None
    # Columns: encoders with a reported (published) number first, as the paper prints them; then by the group's first
    # metric; controls last (in a clinical section: reference columns, never marked best).
    by_encoder: dict[str, list[Entry]] = {}
    for entry in section_entries:
        by_encoder.setdefault(entry.column[0], []).append(entry)
    first = metrics[0][0] if metrics else kind.headline
    encoder_order = sorted(by_encoder, key=lambda e: (
        e in controls and not section.synthetic, not any(x.column[1] == "reported" for x in by_encoder[e]),
        -_mean([(x.result["metrics"].get(first) or {}).get("mean") for x in by_encoder[e]]), e))
    columns = [(e, p) for e in encoder_order for p in ("reported", "reproduced")
               if any(x.column == (e, p) for x in by_encoder[e])]
    order = {t.id: _row_labels(t, registry) for t in registry.tasks.values()}
    ordered_rows = sorted(rows.values(), key=lambda r: (order[r["task_id"]], r["task_id"]))
    ranks_higher = kind.higher_is == "better"  # re-identification: high is a risk, nothing is marked best
    for row in ordered_rows:
        for metric, _ in metrics:
            cells = [c for k, c in row["cells"].items() if k.split("|")[0] == metric]
            means = [c["mean"] for c in cells if c["mean"] is not None and not c["unverified"] and not c["control"]]
            for c in cells:
                c["best"] = ranks_higher and bool(means) and c["mean"] == max(means) and not c["unverified"] \
                    and not c["control"]
    used = {k.split("|")[0] for r in rows.values() for k in r["cells"]}
    section_ties = [(ties or {}).get(r["task_id"]) for r in ordered_rows]
    tested = [t for r, t in zip(ordered_rows, section_ties)  # ties of encoders this table shows as columns
              if t is not None and t.by_metric and any(c.get("tie") for c in r["cells"].values())]
    classification = group == "classification"
    return {
        "key": section.id if classification else f"{section.id}-{group}",
        "heading": section.heading if classification else f"{section.heading} — {kind.title}",
        "section": section.id, "task_type": group, "type_title": kind.title,
        "measures": None if classification else kind.measures, "type_floor": None if classification else kind.floor,
        "higher_is": kind.higher_is, "rows": ordered_rows,
        "metrics": [list(m) for m in metrics], "extras": [list(x) for x in extras if x[0] in used],
        "floor_column": floor_column, "synthetic": section.synthetic,
        "columns": [{"encoder": e, "provenance": p, "name": registry.encoders[e].spec.title,
                     "control": e in controls and not section.synthetic} for e, p in columns],
        "alphas": sorted({t.alpha for t in tested}),
        "tests": [{"id": i, "test": name, "holds_fixed": fixed} for i, name, fixed in sorted(
            {(g["test_id"], g["test"], g["holds_fixed"]) for t in tested for g in t.by_metric.values()})],
        "untested_reported": any(t is not None and NO_TEST_REPORTED in (t.note or "") for t in section_ties),
    }


def _trained_on(registry, result: dict) -> bool | None:
    """Whether the encoder was trained on the evaluated data set (True/False), None when its card does not say."""

    encoder = registry.encoders.get(result["encoder"]["id"])
    return None if encoder is None else trained_on(encoder.data, result["task"]["dataset"])


def _extra_cells(entry: Entry) -> dict:
    """The stability and subgroup-gap cells of a result, where it has those analyses."""
    cells = {}
    base = {"best": False, "tie": None, "provenance": entry.result["provenance"], "stale": entry.stale,
            "ci_method": None, "file": entry.file, "unverified": bool(entry.problems), "tier": entry.tier}
    stability = stability_mean(entry.result)
    if stability is not None:
        cells["stability"] = {**base, "text": f"{stability:.4f}", "mean": stability, "reason": None}
    gap = largest_subgroup_gap(entry.result)
    if gap is not None:
        cells["subgroup_gap"] = {**base, "text": f"{gap[0]:.3f}", "mean": gap[0], "reason": gap[1]}
    return cells


# ---------------------------------------------------------------------------------------------- task pages


def roc_points(entry: Entry, results_dir: Path):
    """(fpr, tpr) of a result: from its `roc` block, else from the predictions file filed beside it."""
    if "roc" in entry.result:
        return entry.result["roc"]["fpr"], entry.result["roc"]["tpr"]
    predictions = _predictions_path(results_dir, entry)
    if predictions is None or not predictions.is_file():
        return None
    try:
        from sklearn.metrics import roc_curve  # deferred: only results without a roc block need it

        frame = pd.read_parquet(predictions, columns=["label", "prob"])
        fpr, tpr, _ = roc_curve(frame["label"].astype(int), frame["prob"].astype(float))
    except (OSError, ValueError, KeyError, ImportError) as exc:  # a broken predictions file costs the plot, not the site
        print(f"warning: {predictions.name}: no ROC curve ({exc})", file=sys.stderr)
        return None
    return [float(v) for v in fpr], [float(v) for v in tpr]


def _sampled_images(results_dir: Path, registry, task_id: str, sha256) -> frozenset | None:
    """The (image, label) pairs of a task's filed or committed manifest (None: not found or unreadable)."""
    folder = find_stored([results_store(results_dir), registry.home.manifests_dir], task_id, str(sha256)) \
        if isinstance(sha256, str) and sha256.isalnum() else None
    if folder is None:
        return None
    try:
        frame = read_manifest(folder).frame
    except ManifestError:
        return None
    return frozenset(zip(frame["image_id"].astype(str), frame["label"].astype(int)))


def in_domain_reference(entry: Entry, entries: list[Entry], registry, results_dir: Path) -> dict | None:
    """For a transfer task's result: the same encoder cross-validated on the target's own images (a filed result of a
    non-transfer task with the same label whose manifest holds exactly the transfer task's test images and labels;
    the manifests' hashes differ, as they pin their own task and split), and the AUROC lost by transfer; None when no
    such result is filed. A cross-task reference, so the summarize stage's, not a run's."""
    block = _analysis(entry.result, "transfer")
    if block.get("kind") != "transfer task" or not isinstance(block.get("auroc"), dict) \
            or block["auroc"].get("value") is None:
        return None
    label = entry.result["task"]["label"]
    tested = None
    for other in entries:
        r = other.result
        task = registry.tasks.get(r["task"]["id"])
        if task is None or column_group(task) != "classification" or task.spec.type == "transfer" or other.problems \
                or r["task"]["label"] != label or r["encoder"]["id"] != entry.result["encoder"]["id"] \
                or r["metrics"]["auroc"]["mean"] is None:
            continue
        tested = tested or _sampled_images(results_dir, registry, entry.result["task"]["id"],
                                           block.get("test_manifest_sha256"))
        if tested is None:
            return None
        if _sampled_images(results_dir, registry, r["task"]["id"], (r.get("manifest") or {}).get("sha256")) != tested:
            continue
        auroc = r["metrics"]["auroc"]["mean"]
        return {"task": r["task"]["id"], "file": other.file, "auroc": auroc,
                "ci_method": r["metrics"]["auroc"]["ci_method"], "auroc_drop": auroc - block["auroc"]["value"]}
    return None


def analysis_views(task_id: str, entries: list[Entry], all_entries: list[Entry], registry,
                   results_dir: Path) -> dict:
    """What the task page shows of the results' analyses, flattened for the template (figures are the renderer's)."""
    views: dict = {"stability": [], "kmeans": [], "umap": [], "subgroups": [], "label_efficiency": {},
                   "label_efficiency_rows": [], "transfer": []}
    for e in entries:
        r = e.result
        name = registry.encoders[r["encoder"]["id"]].spec.title
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
        umap = clustering.get("umap") if isinstance(clustering.get("umap"), dict) else {}
        coordinates = umap.get("coordinates")
        if isinstance(coordinates, dict) and all(isinstance(coordinates.get(k), list) for k in ("x", "y", "label")):
            views["umap"].append({"encoder": name, "stem": f"{task_id}-{r['encoder']['id']}-{r['provenance']}-umap",
                                  "x": coordinates["x"], "y": coordinates["y"], "label": coordinates["label"]})
        for attribute, data in sorted((_analysis(r, "subgroups").get("attributes") or {}).items()):
            for group, g in sorted(((data or {}).get("groups") or {}).items()):
                views["subgroups"].append({"encoder": name, "attribute": attribute, "group": group, **g})
        efficiency = _analysis(r, "label_efficiency")
        if isinstance(efficiency.get("points"), list):
            views["label_efficiency"][name] = {"points": efficiency["points"]}
            for point in efficiency["points"]:
                views["label_efficiency_rows"].append({"encoder": name, **{k: point.get(k) for k in (
                    "positives_per_class", "n_runs", "mean_auroc", "sd_auroc", "reason")}})
        transfer = _analysis(r, "transfer")
        if transfer.get("kind") == "transfer task":
            reference = in_domain_reference(e, all_entries, registry, results_dir)
            views["transfer"].append({"encoder": name, "target": transfer.get("test_task"), **transfer,
                                      **({"in_domain": reference} if reference else {})})
        else:
            for target, t in sorted(transfer.items()):
                if isinstance(t, dict):
                    views["transfer"].append({"encoder": name, "target": target, "train_task": task_id, **t})
    return views


def _records(entries: list[Entry], tables: list[dict], ties: dict[str, TieGroups], registry) -> list[dict]:
    """Every number on the site, flat: one record per result file (leaderboard.csv is these rows)."""
    section = {(r["task_id"], c["file"]): t["key"] for t in tables for r in t["rows"] for c in r["cells"].values()}
    records = []
    for entry in entries:
        r = entry.result
        task = registry.tasks[r["task"]["id"]]
        record = {"section": section.get((r["task"]["id"], entry.file)), "file": entry.file,
                  "task": r["task"]["id"], "dataset": r["task"]["dataset"], "label": r["task"]["label"],
                  "label_name": task.spec.label.name, "encoder": r["encoder"]["id"],
                  "encoder_name": registry.encoders[r["encoder"]["id"]].spec.title, "provenance": r["provenance"],
                  "stale": entry.stale, "verified": not entry.problems, "synthetic": bool(r.get("synthetic")),
                  "manifest_sha256": (r.get("manifest") or {}).get("sha256"),
                  "images_per_s": (r.get("throughput") or {}).get("images_per_s")}
        kind = task_type_of(task)
        record["task_type"] = kind.name
        headline = kind.metric_ids(task.spec)[0]
        record["headline_metric"] = headline
        record["headline_mean"] = (r["metrics"].get(headline) or {}).get("mean")
        for metric in RESULT_METRICS:
            for part in ("mean", "ci_low", "ci_high", "half_width", "ci_method"):
                record[f"{metric}_{part}"] = (r["metrics"].get(metric) or {}).get(part)
        tie = ties.get(r["task"]["id"])
        for metric in RESULT_METRICS:  # best | tied (not significantly different from the best) | worse | None
            record[f"{metric}_tie"] = tie.mark(metric, r["encoder"]["id"]) if tie and r["provenance"] == "reproduced" \
                else None
        record["tie_alpha"] = tie.alpha if tie and tie.by_metric else None
        record["stability_mean_cosine"] = stability_mean(r)
        gap = largest_subgroup_gap(r)
        record["subgroup_gap_auroc"] = gap[0] if gap else None
        records.append(record)
    return records


def _card_json(card) -> dict:
    return {"id": card.id, "sha256": card.sha256, "behaviour_sha256": card.behaviour_sha256, "data": card.data}


def headline_of(result: dict, registry) -> str:
    """The metric a result is ordered by: its task type's headline (AUROC for classification and transfer)."""
    task = registry.tasks.get(result["task"]["id"])
    return "auroc" if task is None else task_type_of(task).metric_ids(task.spec)[0]


def _best_first(entries: list[Entry], registry) -> list[Entry]:
    """A task page's results, best first by the headline metric of their type (results without a number last)."""
    def key(e: Entry):
        mean = (e.result["metrics"].get(headline_of(e.result, registry)) or {}).get("mean")
        return (mean is None, -(mean or 0.0), e.result["encoder"]["id"], e.result["provenance"])

    return sorted(entries, key=key)


def _dataset_json(card) -> dict | None:
    """What a task page says about its data set, with the card's links (citation, access)."""
    if card is None:
        return None
    data = card.data
    return {"id": card.id, "title": card.spec.title, "synthetic": card.spec.synthetic, "access": card.spec.access,
            **{k: data.get(k) for k in ("citation", "license", "description")}}


def summarize(results_dir: Path, registry=None, records_dir: Path | None = None) -> dict:
    """Filed results -> the summary the site is rendered from (and leaderboard.json): JSON-safe, no NaN.
    `records_dir`: where regeneration records are kept (None: every result regenerated)."""
    if registry is None:

        registry = load_registry()
    layout = load_layout(getattr(registry, "root", None))
    entries, skipped = load_entries(results_dir, registry, records_dir)
    by_task = {task_id: [e for e in entries if e.result["task"]["id"] == task_id] for task_id in registry.tasks}
    controls = control_ids(registry)
    ties = {task.id: compute_ties(task, by_task[task.id], results_dir, [m for m, _ in layout.metrics],
                                  frozenset() if task_is_synthetic(task, registry, layout) else controls)
            if column_group(task) == "classification" else TieGroups(task.id, task.spec.analyses.paired.alpha,
                                                                   note=NO_TEST_TYPED)
            for task in registry.tasks.values()}
    tables = build_tables(entries, registry, ties, layout)

    floors = compute_floors([(e.file, e.result) for e in entries if not e.problems], registry,
                            lambda result: _filed_predictions(results_dir, result))
    from leaderboard.summary.encoders import encoder_profile

    page = encoders_summary([e for e in entries if not e.problems], registry, results_dir)
    tasks = {}
    for task in registry.tasks.values():
        task_entries = _best_first(by_task[task.id], registry)
        _, disease, dataset = _row_labels(task, registry)
        curves = [{"label": f"{registry.encoders[e.result['encoder']['id']].spec.title} ({e.result['provenance']})",
                   "fpr": list(points[0]), "tpr": list(points[1])}
                  for e in task_entries if (points := roc_points(e, results_dir))]
        kind = task_type_of(task)
        group = column_group(task)
        metric_columns = group_columns(layout, group)[0] or tuple((m, m) for m in kind.metric_ids(task.spec))
        tasks[task.id] = {
            "card": _card_json(task), "title": task.spec.title, "disease": disease, "dataset": dataset,
            "task_type": {"name": kind.name, "title": kind.title, "measures": kind.measures, "floor": kind.floor,
                          "higher_is": kind.higher_is, "group": group,
                          "metrics": [list(m) for m in metric_columns]},
            "dataset_card": _dataset_json(registry.datasets.get(task.spec.dataset)),
            "section": section_of(task, registry, layout), "benchmarks": list(task.spec.benchmarks),
            "entries": [e.as_json() for e in task_entries], "ties": ties[task.id].as_json(), "roc_curves": curves,
            "citations": sorted({e.result.get("citation") for e in task_entries} - {None}),
            "views": analysis_views(task.id, task_entries, entries, registry, results_dir),
            "floors": floors["tasks"].get(task.id), "negatives": task_negatives(task, registry),
            "trained_on": {e.result["encoder"]["id"]: _trained_on(registry, e.result) for e in task_entries},
            "controls": sorted({e.result["encoder"]["id"] for e in task_entries} & controls),
        }
    encoders = {}
    for enc in registry.encoders.values():
        mine = _best_first([e for e in entries if e.result["encoder"]["id"] == enc.id], registry)
        trained = enc.spec.training_datasets
        encoders[enc.id] = {
            "card": _card_json(enc), "title": enc.spec.title, "control": enc.id in controls,
            "profile": encoder_profile(enc.id, enc.data),
            "entries": [{**e.as_json(), "headline": headline_of(e.result, registry),
                         "task_type": task_type_of(registry.tasks[e.result["task"]["id"]]).title} for e in mine], "places": page["places"].get(enc.id),
            "trained_on_datasets": None if trained is None else [
                {"id": d, "title": registry.datasets[d].spec.title if d in registry.datasets else d} for d in trained],
            "seen_tasks": None if trained is None else sorted(t.id for t in registry.tasks.values()
                                                              if t.spec.dataset in trained),
        }
    placed = {r["task_id"] for t in tables for r in t["rows"]}
    for table in tables:  # a table that mixes negative definitions says so (registry/negatives.py)
        table["negatives"] = table_negatives([r["task_id"] for r in table["rows"]], registry)
    return {"summary_version": SUMMARY_VERSION, "results_dir": str(results_dir), "n_results": len(entries),
            "skipped": skipped, "results": _records(entries, tables, ties, registry), "tables": tables,
            "unplaced": sorted({e.result["task"]["id"] for e in entries} - placed),
            "tasks": tasks, "encoders": encoders, "floors": floors, "negative_classes": NEGATIVE_CLASSES,
            "unverified": [[e.file, list(e.problems)] for e in entries if e.problems],
            "tiers": TIERS, "tier_counts": {t: sum(e.tier == t for e in entries) for t in TIERS},
            "encoders_page": page}


def write_summary(summary: dict, path: Path) -> Path:
    """leaderboard.json: the summary as strict JSON (NaN refused)."""

    text = json.dumps(summary, allow_nan=False, indent=1, ensure_ascii=False) + "\n"
    return atomic_write_bytes(Path(path), text.encode("utf-8"))
