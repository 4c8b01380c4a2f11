"""Cross-dataset transfer: train on one task's embeddings, test on another task's with the same label.

Entry: `cross_dataset_transfer(train_X, train_y, test_X, test_y, ...)` -> AUROC and F1 on the test set with
percentile CIs from a patient cluster bootstrap (image-level when no test patient ids are given): test-sampling
uncertainty, the one fitted classifier held fixed.
The classifier is a `fit_predict(train_X, train_y, test_X, params) -> test probabilities` callable, so this module
does not depend on runner.classify.out_of_fold; the default, `lightgbm_fit_predict`, is LightGBM with the given params.
Cost on the 2-core CPU dev machine (loaded, load average ~7): LightGBM (100 trees) on 1,600 x 64, test 400: up to
10 s; the bootstrap adds 0.1 s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from runner.analysis import need
from runner.classify.fit_processes import lightgbm_classifier
from runner.metrics.intervals import bootstrap_fold_mean, percentile_interval
from runner.metrics.scores import METRICS, MetricsInputError, point_metrics, single_class_reason
from runner.metrics.summary import MetricsSettings

if TYPE_CHECKING:
    from runner.analysis import AnalysisContext

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray, Mapping], np.ndarray]


def call_fit_predict(fit_predict: FitPredict | None, train_X, train_y, test_X, params, train_groups=None) -> np.ndarray:
    """fit_predict(...) -> P(label = 1) for test_X. A callable with `accepts_groups = True` also gets the training
    rows' patient ids (`train_groups=`), so that an inner early-stopping split can keep a patient's images together."""
    fit_predict = fit_predict or lightgbm_fit_predict
    if train_groups is not None and getattr(fit_predict, "accepts_groups", False):
        return fit_predict(train_X, train_y, test_X, params, train_groups=train_groups)
    return fit_predict(train_X, train_y, test_X, params)


def fit_predict_many(fit_predict: FitPredict | None, calls, params) -> list[np.ndarray]:
    """call_fit_predict for independent (train_X, train_y, test_X, train_groups) calls: all at once through the
    callable's `many` (the task card's classifier: side by side, runner.classify.fit_processes), else one after another."""
    many = getattr(fit_predict, "many", None)
    if callable(many):
        return [np.asarray(p, dtype=float) for p in many(list(calls))]
    return [np.asarray(call_fit_predict(fit_predict, x, y, test_x, params, groups), dtype=float)
            for x, y, test_x, groups in calls]


def lightgbm_fit_predict(train_X: np.ndarray, train_y: np.ndarray, test_X: np.ndarray, params: Mapping) -> np.ndarray:
    """Fit lightgbm.LGBMClassifier(**params) and return P(label = 1) for test_X."""
    model = lightgbm_classifier()(**{"verbose": -1, **dict(params or {})})
    model.fit(train_X, train_y)
    return model.predict_proba(test_X)[:, 1]


def check_xy(x, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] != len(y):
        raise MetricsInputError(f"{name}: embeddings must be (N, D) with one label per row; got {x.shape} and {len(y)}")
    if not np.isin(y, [0, 1]).all():
        raise MetricsInputError(f"{name}: labels must be 0 or 1")
    if not np.isfinite(x).all():
        raise MetricsInputError(f"{name}: embeddings contain NaN or Infinity")
    reason = single_class_reason(y)
    if reason:
        raise MetricsInputError(f"{name}: {reason}")
    return x, y.astype(int)


def cross_dataset_transfer(
    train_X,
    train_y,
    test_X,
    test_y,
    test_patients=None,
    fit_predict: FitPredict | None = None,
    params: Mapping | None = None,
    metrics_card: Mapping | None = None,
    train_patients=None,
) -> dict:
    """Fit on (train_X, train_y), score test_X; AUROC and F1 with bootstrap CIs on the test set."""
    settings = MetricsSettings.from_card(metrics_card)
    train_X, train_y = check_xy(train_X, train_y, "train")
    test_X, test_y = check_xy(test_X, test_y, "test")
    if train_X.shape[1] != test_X.shape[1]:
        raise MetricsInputError(f"train and test embeddings differ in size: {train_X.shape[1]} vs {test_X.shape[1]}")
    probs = np.asarray(call_fit_predict(fit_predict, train_X, train_y, test_X, dict(params or {}), train_patients),
                       dtype=float)
    if probs.shape != (len(test_y),) or not np.isfinite(probs).all():
        raise MetricsInputError(f"fit_predict must return {len(test_y)} finite probabilities, got shape {probs.shape}")
    by_patient = test_patients is not None
    patients = np.asarray(test_patients).astype(str) if by_patient else np.arange(len(test_y)).astype(str)
    if len(patients) != len(test_y):
        raise MetricsInputError(f"{len(patients)} test patient ids for {len(test_y)} test rows")
    reps = bootstrap_fold_mean(test_y, patients, np.zeros(len(test_y), dtype=int), [probs],
                               settings.threshold, settings.bootstrap_n, settings.bootstrap_seed)
    point = point_metrics(test_y, probs, settings.threshold)
    out = {"n_train": len(train_y), "n_test": len(test_y), "threshold": settings.threshold,
           "confidence": settings.confidence,
           "ci_method": "cluster-bootstrap (patients)" if by_patient else "bootstrap (images)",
           # what the interval covers: resampled test patients, the one fitted classifier held fixed
           "ci_covers": "test-sampling uncertainty (classifier fixed, not refitted)"}
    for m in METRICS:
        low, high, _, reason = percentile_interval(reps[m][0], settings.confidence, settings.min_valid_replicates)
        out[m] = {"value": point[m], "ci_low": low, "ci_high": high, **({"reason": reason} if reason else {})}
    return out


def run(ctx: AnalysisContext, params) -> dict:
    """The transfer block of a run's result: the card's classifier trained here, scored on each target."""
    x = need(ctx.embeddings, "embeddings")
    manifest = need(ctx.manifest, "the manifest")
    y = manifest["label"].to_numpy()
    patients = manifest["patient_id"].astype(str).to_numpy() if "patient_id" in manifest.columns else None
    targets = need(ctx.transfer_targets, "embeddings of the target task(s)")
    return {target: cross_dataset_transfer(x, y, t.embeddings, t.labels, t.patients, ctx.fit_predict,
                                           ctx.classifier_params, ctx.metrics_card, train_patients=patients)
            for target, t in sorted(targets.items())}
