"""The Encoders page's numbers: rows are encoders, columns are tasks, with mean rank, its interval, Borda and AUROC.

A pure function of its inputs (no files, no registry): `rank_encoders(records, encoders, benchmarks, settings)` takes
one record per (task, encoder) result and the encoder cards' data, and returns a JSON-able dict. The summarize stage
writes it into the site's data; the renderer only fills the template with it.

Record (one per filed result): {task, benchmarks: [...], dataset, synthetic, encoder, provenance: reported|reproduced,
auroc: {mean, ci_low, ci_high}, confidence (of that interval), file, predictions (file name or None), task_title?}.

Rules, stated once here:
- A cell is one (task, encoder); when both a reproduced and a reported result exist, the reproduced one is shown (it
  traces to predictions on a frozen manifest), and the cell says which it is.
- Fair ranking (MTEB's rule, generalised): encoders are ranked only over tasks that every ranked encoder has. Of the
  blocks of (tasks x encoders) in which every encoder has every task, the one with the most results is ranked (ties:
  more encoders, then more tasks); an encoder outside it is listed as not ranked, with how many of the ranked tasks
  it has. Controls (`control: true`, metadata-only baselines) are never ranked in a clinical view: they are listed
  for reference. A synthetic task is never in a clinical view; in a synthetic view (the demo) controls compete.
- Per ranked task, the ranked encoders are ranked by AUROC mean, 1 = best, ties share the average rank (scipy's
  rankdata "average", which `rankdata` here reproduces). Mean rank and its spread (SD over the ranked tasks), Borda
  (the (task, other encoder) pairs it beats, a tie counting one half) and mean AUROC are all over the same ranked
  tasks.
- Rank uncertainty: a parametric bootstrap (`settings.replicates`, `settings.seed`) resamples the ranked tasks with
  replacement and draws each cell's AUROC from a normal whose `confidence` interval is the cell's own; each replicate
  ranks the encoders by mean rank (ties share the better position). An encoder's interval is the central
  `settings.level` range of its positions; two encoders whose intervals overlap are not separable. The draws are
  independent per encoder, although encoders were tested on the same images: the intervals err on the wide side.
- A view is the same table restricted to one benchmark and/or one data set; each is computed here, not in the
  browser. View keys are "<benchmark>|<dataset>" with "*" for all; "*" as benchmark means every clinical benchmark.
- Training-data overlap: when the encoder card has `training_datasets` (dataset ids), the row lists those of its
  tasks' data sets it was trained on; None means the card does not say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist, pstdev

import numpy as np

ALL = "*"


@dataclass(frozen=True)
class RankSettings:
    """The rank interval's bootstrap (registry/benchmarks.yaml `leaderboard.ranking`)."""

    replicates: int = 2000
    level: float = 0.95
    seed: int = 0


def is_control(card: dict) -> bool:
    """A control, not a model: the card says `control: true`, or it reads no pixels (a metadata-only baseline)."""
    return bool(card.get("control")) or card.get("adapter") == "metadata"


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
            "license": card.get("license"), "open_weights": open_weights, "control": is_control(card),
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


def rankdata(values, axis: int = -1, method: str = "average") -> np.ndarray:
    """scipy.stats.rankdata's ranks (1 = smallest) along `axis`, for method "average" (ties share the mean of their
    ranks; float) or "min" (ties share the lowest; int64), with its NaN rule: a slice holding a NaN ranks as all NaN.
    The same numbers as scipy's (tests/test_ranking.py checks); here so that building the site does not import
    scipy.stats (~0.6 CPU-s a process) for two sorts."""
    if method not in ("average", "min"):
        raise ValueError(f"method {method!r}: only 'average' and 'min' are implemented")
    a = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    n = a.shape[-1]
    order = np.argsort(a, axis=-1, kind="stable")
    ordered = np.take_along_axis(a, order, axis=-1)
    first = np.ones(a.shape, dtype=bool)  # where a run of equal values starts, in sorted order
    first[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    index = np.broadcast_to(np.arange(n), a.shape)
    start = np.maximum.accumulate(np.where(first, index, 0), axis=-1)  # 0-based position where each run starts
    if method == "min":
        ranked = start + 1
    else:
        last = np.ones(a.shape, dtype=bool)
        last[..., :-1] = first[..., 1:]
        end = np.flip(np.minimum.accumulate(np.flip(np.where(last, index, n), axis=-1), axis=-1), axis=-1)
        ranked = 0.5 * (start + end + 2)  # scipy's .5 * (count[dense] + count[dense - 1] + 1): the same float
    ranks = np.empty(a.shape, dtype=ranked.dtype)
    np.put_along_axis(ranks, order, ranked, axis=-1)
    nan = np.isnan(a).any(axis=-1)
    if nan.any():
        ranks = ranks.astype(float)
        ranks[nan] = np.nan
    return np.moveaxis(ranks, -1, axis)


def _average_ranks(values: dict[str, float]) -> dict[str, float]:
    """1 = highest value; tied values share the average of their ranks."""
    ids = sorted(values)
    ranks = rankdata([-values[i] for i in ids], method="average")
    return {i: float(r) for i, r in zip(ids, ranks)}


def complete_block(coverage: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """(tasks, encoders) to rank: of the blocks in which every encoder has every task, the one with the most cells
    (then more encoders, then more tasks, then by name). A block's task set is the intersection of some encoders'
    task sets, so the candidates are every such intersection."""
    closed: set[frozenset] = set()
    for encoder in sorted(coverage):
        mine = frozenset(coverage[encoder])
        closed |= {mine} | {mine & other for other in closed}
    candidates = []
    for tasks in closed:
        if tasks:
            encoders = sorted(e for e, have in coverage.items() if tasks <= have)
            candidates.append((-len(tasks) * len(encoders), -len(encoders), -len(tasks), sorted(tasks), encoders))
    if not candidates:
        return [], []
    best = min(candidates)
    return best[3], best[4]


def rank_intervals(means: np.ndarray, ses: np.ndarray, settings: RankSettings) -> list[tuple[int, int]]:
    """Each encoder's central `level` interval of positions (1 = best) over bootstrap replicates.

    means, ses: (tasks, encoders). A replicate resamples the tasks with replacement, draws every cell from
    N(mean, se), ranks the encoders within each task (average ranks) and then by mean rank (ties: the better position).
    """
    rng = np.random.default_rng(settings.seed)
    n_tasks, _ = means.shape
    picks = rng.integers(0, n_tasks, size=(settings.replicates, n_tasks))
    draws = means[picks] + ses[picks] * rng.standard_normal(picks.shape + (means.shape[1],))
    mean_ranks = rankdata(-draws, axis=2, method="average").mean(axis=1)
    positions = rankdata(mean_ranks, axis=1, method="min")
    tail = (1.0 - settings.level) / 2
    low = np.quantile(positions, tail, axis=0, method="lower")
    high = np.quantile(positions, 1.0 - tail, axis=0, method="higher")
    return [(int(lo), int(hi)) for lo, hi in zip(low, high)]


def standard_error(record: dict) -> float:
    """The cell's standard error, reading its interval as a normal one at its `confidence` (0 without an interval)."""
    auroc = record["auroc"]
    low, high = auroc.get("ci_low"), auroc.get("ci_high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or high < low:
        return 0.0
    z = NormalDist().inv_cdf(0.5 + float(record.get("confidence") or 0.95) / 2)
    return (high - low) / (2 * z)


def _cell_json(record: dict, rank) -> dict:
    a = record["auroc"]
    return {"auroc": a["mean"], "ci_low": a.get("ci_low"), "ci_high": a.get("ci_high"), "rank": rank,
            "provenance": record["provenance"], "file": record.get("file"), "predictions": record.get("predictions")}


def rank_view(records: list[dict], encoders: dict[str, dict], settings: RankSettings = RankSettings(),
              rank_controls: bool = False) -> dict:
    """The table for one set of records: task columns, ranked encoder rows (by mean rank), the rows not ranked."""
    cells = _cells(records)
    tasks: dict[str, dict] = {}
    for record in records:
        if (record["task"], record["encoder"]) in cells and record["task"] not in tasks:
            tasks[record["task"]] = {"id": record["task"], "title": record.get("task_title") or record["task"],
                                     "dataset": record["dataset"], "benchmarks": list(record.get("benchmarks") or [])}
    metas = {e: encoder_meta(e, encoders.get(e) or {}) for e in sorted({e for _, e in cells})}
    coverage: dict[str, set[str]] = {}
    for task, encoder in cells:
        if rank_controls or not metas[encoder]["control"]:
            coverage.setdefault(encoder, set()).add(task)
    ranked_tasks, ranked = complete_block(coverage)
    values = {t: {e: float(cells[(t, e)]["auroc"]["mean"]) for e in ranked} for t in ranked_tasks}
    ranks = {t: _average_ranks(v) for t, v in values.items()}
    intervals = rank_intervals(np.array([[values[t][e] for e in ranked] for t in ranked_tasks]),
                               np.array([[standard_error(cells[(t, e)]) for e in ranked] for t in ranked_tasks]),
                               settings) if ranked else []
    rows = []
    for encoder, interval in zip(ranked, intervals):
        my_ranks = [ranks[t][encoder] for t in ranked_tasks]
        borda = sum(1.0 if values[t][encoder] > v else 0.5 if values[t][encoder] == v else 0.0
                    for t in ranked_tasks for o, v in values[t].items() if o != encoder)
        rows.append({**metas[encoder], "n_tasks": len(ranked_tasks),
                     "mean_auroc": sum(values[t][encoder] for t in ranked_tasks) / len(ranked_tasks),
                     "mean_rank": sum(my_ranks) / len(my_ranks),
                     "rank_sd": pstdev(my_ranks) if len(my_ranks) > 1 else 0.0,
                     "borda": borda, "interval": list(interval),
                     "cells": {t: _cell_json(r, ranks[t][encoder] if t in ranks else None)
                               for (t, e), r in sorted(cells.items()) if e == encoder}})
    rows.sort(key=lambda r: (r["mean_rank"], -r["mean_auroc"], r["encoder"]))
    for position, row in enumerate(rows, 1):
        row["position"] = position
    for row in rows:
        row["not_separable_from"] = [o["encoder"] for o in rows if o is not row
                                     and o["interval"][0] <= row["interval"][1] and row["interval"][0] <= o["interval"][1]]
    unranked = []
    for encoder, meta in metas.items():
        if encoder in ranked:
            continue
        mine = {t: r for (t, e), r in sorted(cells.items()) if e == encoder}
        has = len(set(mine) & set(ranked_tasks))
        unranked.append({**meta, "n_tasks": len(mine), "ranked_tasks_had": has,
                         "reason": "control" if encoder not in coverage else
                         f"has {has} of the {len(ranked_tasks)} ranked tasks",
                         "mean_auroc": sum(r["auroc"]["mean"] for r in mine.values()) / len(mine),
                         "cells": {t: _cell_json(r, None) for t, r in mine.items()}})
    unranked.sort(key=lambda r: (r["control"], -r["ranked_tasks_had"], -r["mean_auroc"], r["encoder"]))
    for row in rows + unranked:
        row["training_overlap"] = None if row["training_datasets"] is None else \
            sorted({tasks[t]["dataset"] for t in row["cells"]} & set(row["training_datasets"]))
    columns = {key: any(row[key] not in (None, "") for row in rows + unranked)  # a column no row fills is not shown
               for key in ("parameters", "embedding_dim", "input_size", "license", "open_weights", "training_overlap")}
    in_ranking = set(ranked_tasks)
    ordered = sorted(tasks.values(), key=lambda t: (t["id"] not in in_ranking, t["id"]))
    return {"tasks": [{**t, "ranked": t["id"] in in_ranking} for t in ordered], "ranked_tasks": ranked_tasks,
            "rows": rows, "unranked": unranked, "columns": columns, "n_encoders": len(rows),
            "top_separable": len(rows) > 1 and not rows[0]["not_separable_from"]}


def rank_encoders(records: list[dict], encoders: dict[str, dict], benchmark_order: list[str] = (),
                  synthetic_benchmarks=(), settings: RankSettings = RankSettings(),
                  default_benchmark: str | None = None) -> dict:
    """Every view (all clinical tasks, each benchmark, each data set, each non-empty benchmark x data set).

    A record is in a clinical view only when it is not synthetic, in a synthetic benchmark's view only when it is.
    The default view is `default_benchmark` when it has results, else the first benchmark of `benchmark_order` (the
    declaration order) that is not synthetic and has results."""
    for record in records:
        mean = (record.get("auroc") or {}).get("mean")
        if mean is not None and not (isinstance(mean, (int, float)) and math.isfinite(mean)):
            raise ValueError(f"{record.get('file')}: AUROC mean {mean!r} is not a finite number")
    present = {b for r in records for b in r.get("benchmarks") or []}
    benchmarks = [b for b in benchmark_order if b in present] + sorted(present - set(benchmark_order))
    synthetic = set(synthetic_benchmarks)
    datasets = sorted({r["dataset"] for r in records})
    views = {}
    for bench in [ALL, *benchmarks]:
        in_synthetic = bench in synthetic
        for dataset in [ALL, *datasets]:
            subset = [r for r in records if (bench == ALL or bench in (r.get("benchmarks") or []))
                      and bool(r.get("synthetic")) == in_synthetic and (dataset == ALL or r["dataset"] == dataset)]
            view = rank_view(subset, encoders, settings, rank_controls=in_synthetic)
            if view["rows"] or view["unranked"]:
                views[f"{bench}|{dataset}"] = view
    candidates = ([default_benchmark] if default_benchmark else []) + [b for b in benchmarks if b not in synthetic]
    default = next((f"{b}|{ALL}" for b in candidates if f"{b}|{ALL}" in views), next(iter(views), f"{ALL}|{ALL}"))
    return {"benchmarks": benchmarks, "synthetic_benchmarks": [b for b in benchmarks if b in synthetic],
            "datasets": datasets, "views": views, "default_view": default,
            "settings": {"replicates": settings.replicates, "level": settings.level, "seed": settings.seed}}


def task_ranks(records: list[dict], encoders: dict[str, dict]) -> dict[tuple[str, str], dict]:
    """(task, encoder) -> {rank, of}: the encoder's place on that one task among the encoders with a shown cell
    (controls only on synthetic tasks); a control on a clinical task gets no rank."""
    cells = _cells(records)
    by_task: dict[str, dict[str, float]] = {}
    for (task, encoder), record in cells.items():
        if record.get("synthetic") or not is_control(encoders.get(encoder) or {}):
            by_task.setdefault(task, {})[encoder] = float(record["auroc"]["mean"])
    out = {}
    for task, values in by_task.items():
        for encoder, rank in _average_ranks(values).items():
            out[(task, encoder)] = {"rank": rank, "of": len(values)}
    return out
