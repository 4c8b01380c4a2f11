"""The Encoders page's numbers: rows are encoders, columns are tasks, with mean AUROC, mean rank and Borda count.

A pure function of its inputs (no files, no registry): `rank_encoders(records, encoders)` takes one record per
(task, encoder) result and the encoder cards' data, and returns a JSON-able dict. The summarize stage writes it into
the site's data; the renderer only fills the template with it.

Record (one per filed result): {task, benchmarks: [...], dataset, encoder, provenance: reported|reproduced,
auroc: {mean, ci_low, ci_high}, file, predictions (file name or None), task_title?}.

Rules, stated once here:
- A cell is one (task, encoder); when both a reproduced and a reported result exist, the reproduced one is shown (it
  traces to predictions on a frozen manifest), and the cell says which it is.
- Per task, encoders with a cell are ranked by AUROC mean, 1 = best, ties share the average rank (scipy's
  rankdata "average"). An encoder's mean rank and its spread (SD over its tasks, 0 for one task) use only the tasks it
  has; its Borda count is the number of (task, other encoder) pairs it beats, a tie counting one half.
- Mean AUROC averages the encoder's own cells; `n_tasks` says over how many, so rows with different coverage are
  not silently compared (the page sorts by mean rank by default, and shows coverage).
- A view is the same table restricted to one benchmark and/or one data set; each is computed here, not in the
  browser. View keys are "<benchmark>|<dataset>" with "*" for all.
- Training-data overlap: when the encoder card has `training_datasets` (dataset ids), the row lists those of its
  tasks' data sets it was trained on; None means the card does not say.
"""

from __future__ import annotations

import math
from statistics import pstdev

ALL = "*"


def _size_of(preprocess: dict) -> str | None:
    if not preprocess:
        return None
    size = preprocess.get("size")
    if size is None:
        return "native"
    return "x".join(map(str, size)) if isinstance(size, list) else f"{size}x{size}"


def encoder_meta(encoder_id: str, card: dict) -> dict:
    """What a row shows about the encoder itself, from its card."""
    weights = card.get("weights") or {}
    # open: downloadable from a hub, or nothing to download (built-ins, random-weight controls); else a local copy only
    open_weights = bool(weights.get("hf_repo") or weights.get("random_init") or not weights.get("files"))
    training = card.get("training_datasets")
    return {"encoder": encoder_id, "title": card.get("title", encoder_id), "parameters": card.get("parameters"),
            "embedding_dim": (card.get("embedding") or {}).get("dim"), "input_size": _size_of(card.get("preprocess")),
            "license": card.get("license"), "open_weights": open_weights, "control": bool(card.get("control")),
            "training_datasets": list(training) if isinstance(training, list) else None}


def _cells(records: list[dict]) -> dict[tuple[str, str], dict]:
    """(task, encoder) -> the record shown: reproduced before reported."""
    chosen: dict[tuple[str, str], dict] = {}
    for record in records:
        if (record.get("auroc") or {}).get("mean") is None:
            continue
        key = (record["task"], record["encoder"])
        if key not in chosen or (chosen[key]["provenance"] == "reported" and record["provenance"] == "reproduced"):
            chosen[key] = record
    return chosen


def _average_ranks(values: dict[str, float]) -> dict[str, float]:
    """1 = highest value; tied values share the average of their ranks."""
    from scipy.stats import rankdata

    ids = sorted(values)
    ranks = rankdata([-values[i] for i in ids], method="average")
    return {i: float(r) for i, r in zip(ids, ranks)}


def rank_view(records: list[dict], encoders: dict[str, dict]) -> dict:
    """The table for one set of records: task columns, encoder rows (sorted by mean rank), per-task ranks."""
    cells = _cells(records)
    tasks: dict[str, dict] = {}
    for record in records:
        if (record["task"], record["encoder"]) in cells and record["task"] not in tasks:
            tasks[record["task"]] = {"id": record["task"], "title": record.get("task_title") or record["task"],
                                     "dataset": record["dataset"], "benchmarks": list(record.get("benchmarks") or [])}
    by_task: dict[str, dict[str, float]] = {}
    for (task, encoder), record in cells.items():
        by_task.setdefault(task, {})[encoder] = float(record["auroc"]["mean"])
    ranks = {task: _average_ranks(values) for task, values in by_task.items()}
    rows = []
    for encoder in sorted({e for _, e in cells}):
        mine = {t: r for (t, e), r in cells.items() if e == encoder}
        my_ranks = [ranks[t][encoder] for t in mine]
        borda = 0.0
        for task in mine:
            me = by_task[task][encoder]
            borda += sum(1.0 if me > v else 0.5 if me == v else 0.0 for o, v in by_task[task].items() if o != encoder)
        meta = encoder_meta(encoder, encoders.get(encoder) or {})
        overlap = None
        if meta["training_datasets"] is not None:
            overlap = sorted({tasks[t]["dataset"] for t in mine} & set(meta["training_datasets"]))
        rows.append({**meta, "n_tasks": len(mine),
                     "mean_auroc": sum(by_task[t][encoder] for t in mine) / len(mine),
                     "mean_rank": sum(my_ranks) / len(my_ranks), "rank_sd": pstdev(my_ranks) if len(my_ranks) > 1 else 0.0,
                     "borda": borda, "training_overlap": overlap,
                     "cells": {t: {"auroc": r["auroc"]["mean"], "ci_low": r["auroc"].get("ci_low"),
                                   "ci_high": r["auroc"].get("ci_high"), "rank": ranks[t][encoder],
                                   "provenance": r["provenance"], "file": r.get("file"),
                                   "predictions": r.get("predictions")} for t, r in sorted(mine.items())}})
    rows.sort(key=lambda r: (r["mean_rank"], -r["mean_auroc"], r["encoder"]))
    for position, row in enumerate(rows, 1):
        row["position"] = position
    columns = {key: any(row[key] not in (None, "") for row in rows)  # a column no row fills is not shown
               for key in ("parameters", "embedding_dim", "input_size", "license", "open_weights", "training_overlap")}
    return {"tasks": sorted(tasks.values(), key=lambda t: t["id"]), "rows": rows, "columns": columns,
            "n_encoders": len(rows)}


def rank_encoders(records: list[dict], encoders: dict[str, dict], benchmark_order: list[str] = ()) -> dict:
    """Every view (all, each benchmark, each data set, each non-empty benchmark x data set) of the ranking.

    The default view is the first benchmark of `benchmark_order` (the declaration order) that has results: mixing
    benchmarks (synthetic demo tasks with real ones) ranks encoders over different task sets."""
    for record in records:
        mean = (record.get("auroc") or {}).get("mean")
        if mean is not None and not (isinstance(mean, (int, float)) and math.isfinite(mean)):
            raise ValueError(f"{record.get('file')}: AUROC mean {mean!r} is not a finite number")
    present = {b for r in records for b in r.get("benchmarks") or []}
    benchmarks = [b for b in benchmark_order if b in present] + sorted(present - set(benchmark_order))
    datasets = sorted({r["dataset"] for r in records})
    views = {}
    for bench in [ALL, *benchmarks]:
        for dataset in [ALL, *datasets]:
            subset = [r for r in records if (bench == ALL or bench in (r.get("benchmarks") or []))
                      and (dataset == ALL or r["dataset"] == dataset)]
            view = rank_view(subset, encoders)
            if view["rows"]:
                views[f"{bench}|{dataset}"] = view
    default = next((f"{b}|{ALL}" for b in benchmarks if f"{b}|{ALL}" in views), f"{ALL}|{ALL}")
    return {"benchmarks": benchmarks, "datasets": datasets, "views": views, "default_view": default}
