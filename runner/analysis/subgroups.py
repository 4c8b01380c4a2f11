"""AUROC by subgroup: sex, age band and view, where the prediction table has those columns.

Entry: `subgroup_auroc(predictions, params, metrics_card)`. predictions: the out-of-fold table (image_id, patient_id,
label, fold, prob) joined with the manifest's optional `sex`, `age`, `view`. Within each group the pooled
out-of-fold AUROC is computed with a patient cluster-bootstrap percentile CI. A group with fewer than
`min_per_class` positives or negatives is not computed: {status: "too-small", n_pos, n_neg, min}. Rows with a
missing attribute are counted, not grouped. Per attribute, the largest gap is between the best and worst computed
groups. Cost on the 2-core CPU dev machine (loaded): 2,000 images, 8 groups, 2,000 replicates: 1.7 s.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from registry.specs import SubgroupsSpec, analyses_spec
from runner.analysis import need
from runner.metrics.intervals import bootstrap_fold_mean, percentile_interval
from runner.metrics.scores import MetricsInputError, check_predictions, check_probabilities, point_metrics
from runner.metrics.summary import MetricsSettings

if TYPE_CHECKING:
    from runner.analysis import AnalysisContext


def age_band_labels(bands: Sequence[float]) -> list[str]:
    return [f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(bands)]


def _group_column(frame: pd.DataFrame, attribute: str, bands: Sequence[float]) -> pd.Series:
    """The group of each row for one attribute (NaN when unknown)."""
    if attribute == "age":
        age = pd.to_numeric(frame["age"], errors="coerce")
        # [lo, hi): an 80-year-old is in 80-200
        return pd.cut(age, bins=list(bands), right=False, labels=age_band_labels(bands)).astype(object)
    values = frame[attribute].astype(object)
    return values.where(values.notna() & (values.astype(str).str.strip() != ""))


def subgroup_auroc(predictions: pd.DataFrame, params=None, metrics_card=None) -> dict:
    """Pooled out-of-fold AUROC with a patient-bootstrap CI per subgroup, and the largest gap per attribute.

    params: the task's SubgroupsSpec (or an `analyses.subgroups` block; absent fields take the schema's defaults).
    """

    spec = params if isinstance(params, SubgroupsSpec) else analyses_spec({"subgroups": dict(params or {})}).subgroups
    settings = MetricsSettings.from_card(metrics_card)
    bands = [float(b) for b in spec.age_bands]
    if len(bands) < 2 or any(b >= c for b, c in itertools.pairwise(bands)):
        raise MetricsInputError(f"age_bands must be at least two increasing numbers, got {bands}")
    min_per_class = int(spec.min_per_class)
    frame = check_predictions(predictions)
    probs = check_probabilities(frame)
    out: dict = {"min_per_class": min_per_class, "confidence": settings.confidence,
                 "ci_method": "cluster-bootstrap (patients, pooled out-of-fold)", "attributes": {}}
    skipped = []
    for attribute in spec.attributes:
        if attribute not in frame.columns:
            skipped.append(attribute)
            continue
        groups = _group_column(frame, attribute, bands)
        results = {}
        for group in sorted(groups.dropna().unique(), key=str):
            rows = (groups == group).to_numpy()
            results[str(group)] = _group_result(frame[rows], probs[rows], min_per_class, settings)
        computed = {g: r["auroc"] for g, r in results.items() if r.get("status") == "computed"}
        gap = None
        if len(computed) >= 2:
            hi, lo = max(computed, key=computed.get), min(computed, key=computed.get)
            gap = {"between": [hi, lo], "auroc_diff": computed[hi] - computed[lo]}
        out["attributes"][attribute] = {"groups": results, "missing": int(groups.isna().sum()), "largest_gap": gap}
    if skipped:
        out["not_available"] = skipped
    return out


def _group_result(rows: pd.DataFrame, probs: np.ndarray, min_per_class: int, settings: MetricsSettings) -> dict:
    labels = rows["label"].to_numpy()
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    counts = {"n_pos": n_pos, "n_neg": n_neg, "n_patients": int(rows["patient_id"].nunique())}
    if min(n_pos, n_neg) < min_per_class:
        return {"status": "too-small", **counts, "min": min_per_class}
    reps = bootstrap_fold_mean(labels, rows["patient_id"].astype(str).to_numpy(), np.zeros(len(rows), dtype=int),
                               [probs], settings.threshold, settings.bootstrap_n, settings.bootstrap_seed)
    low, high, _, reason = percentile_interval(reps["auroc"][0], settings.confidence, settings.min_valid_replicates)
    result = {"status": "computed", **counts, "auroc": point_metrics(labels, probs, settings.threshold)["auroc"],
              "ci_low": low, "ci_high": high}
    if reason:
        result["reason"] = reason
    return result


def run(ctx: AnalysisContext, params) -> dict:
    """The subgroups block of a run's result: AUROC per subgroup of the task's eval folds."""
    predictions = need(ctx.predictions, "out-of-fold predictions")
    if ctx.manifest is not None:  # sex/age/view live in the manifest
        extra = [c for c in ("sex", "age", "view") if c in ctx.manifest.columns and c not in predictions.columns]
        if extra:
            predictions = predictions.merge(ctx.manifest[["image_id", *extra]], on="image_id", how="left")
    if ctx.eval_folds is not None:
        predictions = predictions[predictions["fold"].isin(list(ctx.eval_folds))]
    return subgroup_auroc(predictions, params, ctx.metrics_card)
