"""Label efficiency: AUROC against the number of training positives (and as many negatives) per class.

Entry: `label_efficiency(embeddings, manifest, sizes, seeds, eval_folds, ...)`. For each size, seed and evaluated
fold, the fold's training rows (fold != f) are subsampled class-balanced, by image, without replacement; the test
fold is untouched, and as folds are patient-grouped no test patient can enter training. The classifier is a
`fit_predict` callable (default: LightGBM, runner.analysis.transfer.lightgbm_fit_predict). Per size: mean and sd of
AUROC over every (seed, fold) run. A size larger than a fold's training positives or negatives is recorded as
skipped for that run, never silently shrunk. `plot_label_efficiency` draws one curve per encoder (PNG).
Cost: sizes x seeds x folds classifier fits (6 x 3 x 5 = 90 with the defaults). They are independent and are
fitted all at once: with the card's classifier, side by side in fit processes (runner.classify.fit_processes), with the same
AUROCs as one fit at a time (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from registry.specs import metrics_spec
from runner.analysis import need
from runner.analysis.transfer import FitPredict, fit_predict_many
from runner.metrics.scores import MetricsInputError, point_metrics, single_class_reason
from runner.results.figures import plot_label_efficiency

if TYPE_CHECKING:
    from runner.analysis import AnalysisContext


def _balanced_sample(rng: np.random.Generator, labels: np.ndarray, candidates: np.ndarray, size: int) -> np.ndarray | str:
    """Row indices of `size` positives and `size` negatives drawn from candidates, or why that is impossible."""
    chosen = []
    for value in (1, 0):
        pool = candidates[labels[candidates] == value]
        if len(pool) < size:
            return f"needs {size} training {'positives' if value else 'negatives'}, fold has {len(pool)}"
        chosen.append(rng.choice(pool, size=size, replace=False))
    return np.sort(np.concatenate(chosen))


def label_efficiency(
    embeddings,
    manifest: pd.DataFrame,
    sizes: Sequence[int],
    seeds: Sequence[int] = (0,),
    eval_folds: Sequence[int] | None = None,
    fit_predict: FitPredict | None = None,
    params: Mapping | None = None,
    threshold: float = 0.5,
) -> dict:
    """AUROC per training size (positives per class), repeated over seeds and folds; one point per size."""
    x = np.asarray(embeddings, dtype=float)
    for column in ("label", "fold"):
        if column not in manifest.columns:
            raise MetricsInputError(f"manifest lacks column {column!r}")
    if x.ndim != 2 or x.shape[0] != len(manifest):
        raise MetricsInputError(f"embeddings {x.shape} do not align with {len(manifest)} manifest rows")
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 1:
        raise MetricsInputError(f"sizes must be positive integers, got {sizes}")
    labels = manifest["label"].to_numpy().astype(int)
    folds = manifest["fold"].to_numpy().astype(int)
    eval_folds = sorted(int(f) for f in (eval_folds if eval_folds is not None else np.unique(folds)))
    groups = manifest["patient_id"].astype(str).to_numpy() if "patient_id" in manifest.columns else None
    # every (size, seed, fold) run in a fixed order: its training rows, or why it is skipped
    planned = []
    for size in sizes:
        for seed in seeds:
            for fold in eval_folds:
                test = np.flatnonzero(folds == fold)
                reason = single_class_reason(labels[test])
                train = reason or _balanced_sample(np.random.default_rng([int(seed), size, fold]), labels,
                                                   np.flatnonzero(folds != fold), size)
                planned.append((size, int(seed), fold, test, train))
    fitted = [run for run in planned if not isinstance(run[4], str)]
    # the fits are independent: all at once, side by side when the classifier can (runner.classify.fit_processes)
    probs = iter(fit_predict_many(fit_predict, [(x[train], labels[train], x[test],
                                                 None if groups is None else groups[train])
                                                for _, _, _, test, train in fitted], dict(params or {})))
    points = []
    for size in sizes:
        runs, skipped = [], []
        for run_size, seed, fold, test, train in planned:
            if run_size != size:
                continue
            if isinstance(train, str):
                skipped.append({"seed": seed, "fold": fold, "reason": train})
            else:
                runs.append({"seed": seed, "fold": fold,
                             "auroc": point_metrics(labels[test], next(probs), threshold)["auroc"]})
        values = np.array([r["auroc"] for r in runs])
        point = {"positives_per_class": size, "n_runs": len(runs),
                 "mean_auroc": float(values.mean()) if len(values) else None,
                 "sd_auroc": float(values.std(ddof=1)) if len(values) > 1 else None,
                 "runs": runs}
        if skipped:
            point["skipped"] = skipped
        if not runs:
            point["reason"] = "every run was skipped: " + skipped[0]["reason"]
        elif len(runs) == 1:
            point["reason"] = "one run: no sd"
        points.append(point)
    return {"sampling": "class-balanced by image from each fold's training rows; test fold untouched",
            "seeds": [int(s) for s in seeds], "folds": eval_folds, "points": points}


def run(ctx: AnalysisContext, params) -> dict:
    """The label-efficiency block of a run's result, and its figure beside the result."""
    result = label_efficiency(
        need(ctx.embeddings, "embeddings"), need(ctx.manifest, "the manifest"),
        sizes=params.positives_per_class, seeds=params.seeds,
        eval_folds=ctx.eval_folds, fit_predict=ctx.fit_predict, params=ctx.classifier_params,
        threshold=metrics_spec(ctx.metrics_card).threshold,
    )
    if ctx.output_dir is not None:
        png = Path(ctx.output_dir) / "label_efficiency.png"
        if ctx.draw_figures:
            png = Path(plot_label_efficiency({ctx.encoder_id or "encoder": result}, png))
        result["figure"] = png.name
    return result
