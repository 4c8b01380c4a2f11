"""Point metrics of out-of-fold predictions (AUROC, F1 at the card's threshold, the pooled ROC curve) and the
checks every prediction table passes first.
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


def point_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """AUROC and F1 of one set of predictions (both classes must be present)."""
    from sklearn.metrics import f1_score, roc_auc_score

    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "f1": float(f1_score(labels, (scores >= threshold).astype(int))),
    }


def pooled_roc(predictions: pd.DataFrame) -> dict | None:
    """The pooled out-of-fold ROC curve of a result ({fpr, tpr}, at most 5000 points), None with one class."""
    from sklearn.metrics import roc_curve

    if predictions["label"].nunique() < 2:
        return None
    fpr, tpr, _ = roc_curve(predictions["label"], predictions["prob"])
    if len(fpr) > 5000:  # the schema's limit; keep the curve's shape
        keep = np.unique(np.linspace(0, len(fpr) - 1, 5000).astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}
