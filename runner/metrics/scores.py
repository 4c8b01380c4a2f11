"""Point metrics of out-of-fold predictions (AUROC, F1 at the card's threshold, the pooled ROC curve) and the
checks every prediction table passes first.

The metrics are numpy, step for step what scikit-learn's `roc_curve` (`drop_intermediate=True`), `roc_auc_score`
(the trapezoid under that curve: tied scores count one half) and `f1_score` compute; tests/test_metrics.py holds them
equal to scikit-learn's to 1e-12 on random inputs with ties. They used to call scikit-learn, whose import (with
SciPy's statistics behind it) was ~1.3 s of a warm `runner eval --recompute` that needs nothing else from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from registry.errors import RegistryError

PREDICTION_COLUMNS = ("image_id", "patient_id", "label", "fold", "prob")

METRICS = ("auroc", "f1")


class MetricsInputError(RegistryError, ValueError):
    """Predictions or a metrics card that cannot be summarised; the message says what is wrong."""

    exit_code = 2


def finite_or_none(value) -> float | None:
    """A Python float, or None for NaN/Infinity/None (JSON never holds NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def unit_clip(value: float | None) -> float | None:
    value = finite_or_none(value)
    return None if value is None else min(1.0, max(0.0, value))


def single_class_reason(labels: np.ndarray) -> str | None:
    """Why AUROC/F1 are undefined for these labels, or None when both classes are present."""
    n_pos = int(np.sum(labels == 1))
    n_neg = int(np.sum(labels == 0))
    if n_pos == 0 or n_neg == 0:
        return f"only one class present ({n_pos} positives, {n_neg} negatives): AUROC and F1 are undefined"
    return None


def check_predictions(predictions: pd.DataFrame, columns: Sequence[str] = PREDICTION_COLUMNS) -> pd.DataFrame:
    """Validate the out-of-fold prediction table; returns it with label/fold as int and prob as float."""
    if not isinstance(predictions, pd.DataFrame):
        raise MetricsInputError(f"predictions must be a pandas DataFrame, got {type(predictions).__name__}")
    missing = [c for c in columns if c not in predictions.columns]
    if missing:
        raise MetricsInputError(f"predictions lack column(s) {missing}; have {list(predictions.columns)}")
    if predictions.empty:
        raise MetricsInputError("predictions are empty")
    frame = predictions.copy()
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        raise MetricsInputError(
            f"label must be 0 or 1; {int(bad.sum())} row(s) are not, e.g. image_id "
            f"{frame.loc[bad, 'image_id'].iloc[0]!r} has {frame.loc[bad, 'label'].iloc[0]!r}"
        )
    frame["label"] = labels.astype(int)
    frame["fold"] = pd.to_numeric(frame["fold"], errors="raise").astype(int)
    return frame


def check_probabilities(frame: pd.DataFrame, column: str = "prob") -> np.ndarray:
    probs = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(probs)
    if bad.any():
        raise MetricsInputError(
            f"{column} must be a finite number for every evaluated row; {int(bad.sum())} are not, "
            f"e.g. image_id {frame['image_id'].to_numpy()[bad][0]!r}"
        )
    return probs


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve, scikit-learn's `roc_curve(labels, scores)`: one point per distinct score from the
    highest down, collinear points dropped, (0, 0) first. Both classes must be present (the caller checks)."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(scores, kind="mergesort")[::-1]
    ordered = scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    tps = np.cumsum(labels[order] == 1, dtype=np.float64)[last_of_tie]
    fps = 1.0 + last_of_tie - tps
    if len(fps) > 2:  # keep the corners: where the curve changes direction
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps = fps[keep], tps[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return fps / fps[-1], tps / tps[-1]


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoid rule, so tied scores count one half); both classes must be present."""
    fpr, tpr = roc_points(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of the positive class; 0 when there is nothing to score (no positives, none predicted)."""
    labels = np.asarray(labels) == 1
    predicted = np.asarray(predicted).astype(bool)
    tp = float(np.sum(labels & predicted))
    wrong = float(np.sum(labels != predicted))  # false positives + false negatives
    return 2.0 * tp / (2.0 * tp + wrong) if tp + wrong > 0 else 0.0


def point_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """AUROC and F1 of one set of predictions (both classes must be present)."""
    labels = np.asarray(labels)
    reason = single_class_reason(labels)
    if reason:
        raise MetricsInputError(reason)
    scores = np.asarray(scores, dtype=float)
    return {"auroc": auroc(labels, scores), "f1": f1(labels, scores >= threshold)}


def pooled_roc(predictions: pd.DataFrame) -> dict | None:
    """The pooled out-of-fold ROC curve of a result ({fpr, tpr}, at most 5000 points), None with one class."""
    if predictions["label"].nunique() < 2:
        return None
    fpr, tpr = roc_points(predictions["label"].to_numpy(), predictions["prob"].to_numpy(dtype=float))
    if len(fpr) > 5000:  # the schema's limit; keep the curve's shape
        keep = np.unique(np.linspace(0, len(fpr) - 1, 5000).astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}
