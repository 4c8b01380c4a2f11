"""Within-view AUROC: the task's metric recomputed on the AP films only and on the PA films only.

Why: view position is a strong shortcut on frontal CXR (edema positives are mostly AP, portable, bedside films). A
classifier that only tells AP from PA scores well on the mixed sample but near 0.5 within each view; an encoder that
sees the finding keeps its AUROC within each view. Computed for every result of a task with two or more views
(runner.evaluate writes it as `analyses.within_view`), at no extra training cost: the out-of-fold predictions of the
one classifier, restricted to the images of one view.

Entry: `within_view_auroc(predictions, views, metrics_card, task_views)`. The estimand is the table's: the mean over
the evaluated folds of the per-fold AUROC on that view's test images, with the patient cluster bootstrap interval
(runner.metrics.summary.summarize with ci = cluster-bootstrap, i.e. test-sampling uncertainty given the fitted classifiers).
Cost: one bootstrap per view; 2,000 predictions: ~0.2 s on the 2-core CPU dev machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from runner.metrics.scores import MetricsInputError
from runner.metrics.summary import summarize


def within_view_auroc(predictions: pd.DataFrame, views: pd.Series | Sequence[str], metrics_card: Mapping | None,
                      task_views: Sequence[str], eval_folds: Sequence[int] | None = None) -> dict:
    """{view: {n_positives, n_negatives, auroc: metric (mean, ci_low, ci_high, ci_method, per_fold[, reason])}}.

    predictions: out-of-fold rows (image_id, patient_id, label, fold, prob); views: the view of each row, aligned.
    """
    views = pd.Series(list(views), index=predictions.index, dtype=object).fillna("").astype(str).str.upper()
    if len(views) != len(predictions):
        raise MetricsInputError(f"{len(views)} views for {len(predictions)} predictions")
    card = {**dict(metrics_card or {}), "ci": "cluster-bootstrap"}
    out = {"estimand": "mean over evaluated folds of the AUROC on that view's test images",
           "ci_method": "cluster-bootstrap (patients; test-sampling uncertainty)", "views": {}}
    for view in task_views:
        rows = predictions[views == str(view).upper()]
        n_pos, n_neg = int((rows["label"] == 1).sum()), int((rows["label"] == 0).sum())
        entry: dict = {"n_positives": n_pos, "n_negatives": n_neg}
        if n_pos == 0 or n_neg == 0:
            entry["auroc"] = None
            entry["reason"] = f"{n_pos} positives and {n_neg} negatives in view {view}: AUROC undefined"
        else:
            folds = [f for f in (eval_folds if eval_folds is not None else sorted(rows["fold"].unique()))
                     if (rows["fold"] == f).any()]
            entry["auroc"] = summarize(rows, card, eval_folds=folds)["auroc"]
        out["views"][str(view)] = entry
    return out
