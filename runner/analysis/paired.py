"""Comparisons of encoders evaluated on the same manifest.

Entries:
* `paired_bootstrap(pred_a, pred_b, metrics_card)`: the patient-level paired bootstrap of the difference (a - b) of
  the fold-mean F1 and AUROC; both encoders are scored on the same patient draws (runner.metrics.bootstrap_fold_mean).
* `tie_groups(results_by_encoder, alpha=0.05)`: which encoders are not significantly different from the best one:
  DeLong on the pooled out-of-fold probabilities for AUROC, the paired bootstrap CI of the difference for F1.
  No multiplicity correction is applied; the output says so.
Cost on the 2-core CPU dev machine: 2,000 images, 2,000 replicates, two encoders: 0.2 s per pair; DeLong: 6 ms.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from runner.analysis.delong import delong_test
from runner.metrics import (
    METRICS,
    MetricsInputError,
    MetricsSettings,
    bootstrap_fold_mean,
    check_predictions,
    check_probabilities,
    finite_or_none,
    percentile_interval,
    point_metrics,
    single_class_reason,
)


def align_predictions(pred_a: pd.DataFrame, pred_b: pd.DataFrame) -> pd.DataFrame:
    """One table with prob_a and prob_b per image; refuses predictions that are not on the same manifest."""
    a, b = check_predictions(pred_a), check_predictions(pred_b)
    keys = ["image_id", "patient_id", "label", "fold"]
    merged = a[keys + ["prob"]].merge(b[keys + ["prob"]], on="image_id", how="outer", suffixes=("_a", "_b"),
                                      indicator=True)
    unmatched = merged["_merge"] != "both"
    if unmatched.any():
        raise MetricsInputError(
            f"the two prediction sets are not on the same manifest: {int(unmatched.sum())} image(s) in only one, "
            f"e.g. {merged.loc[unmatched, 'image_id'].iloc[0]!r}"
        )
    for key in keys[1:]:
        differs = merged[f"{key}_a"].astype(str) != merged[f"{key}_b"].astype(str)
        if differs.any():
            raise MetricsInputError(
                f"the two prediction sets disagree on {key} for {int(differs.sum())} image(s), "
                f"e.g. {merged.loc[differs, 'image_id'].iloc[0]!r}"
            )
    out = merged.rename(columns={f"{k}_a": k for k in keys[1:]})[["image_id", *keys[1:], "prob_a", "prob_b"]]
    return out.sort_values("image_id", kind="stable").reset_index(drop=True)


def paired_bootstrap(pred_a: pd.DataFrame, pred_b: pd.DataFrame, metrics_card: Mapping | None = None) -> dict:
    """Fold-mean AUROC and F1 of a and b, their difference (a - b), its percentile CI and a two-sided bootstrap p."""
    settings = MetricsSettings.from_card(metrics_card)
    table = align_predictions(pred_a, pred_b)
    labels = table["label"].to_numpy()
    folds = table["fold"].to_numpy()
    probs = [check_probabilities(table, "prob_a"), check_probabilities(table, "prob_b")]
    point = {m: [[], []] for m in METRICS}
    for fold in np.unique(folds):
        rows = folds == fold
        if single_class_reason(labels[rows]):
            continue
        for i, p in enumerate(probs):
            for m, v in point_metrics(labels[rows], p[rows], settings.threshold).items():
                point[m][i].append(v)
    if not point["auroc"][0]:
        raise MetricsInputError("no fold has both classes: nothing to compare")
    reps = bootstrap_fold_mean(
        labels, table["patient_id"].astype(str).to_numpy(), folds, probs,
        settings.threshold, settings.bootstrap_n, settings.bootstrap_seed,
    )
    out = {"confidence": settings.confidence, "bootstrap": {"n": settings.bootstrap_n, "seed": settings.bootstrap_seed},
           "resampling": "patients, within test fold, same draws for both encoders"}
    for m in METRICS:
        a, b = float(np.mean(point[m][0])), float(np.mean(point[m][1]))
        diffs = reps[m][0] - reps[m][1]
        low, high, n_valid, reason = percentile_interval(diffs, settings.confidence)
        valid = diffs[np.isfinite(diffs)]
        # two-sided bootstrap p: twice the smaller tail mass on either side of zero
        p = min(1.0, 2 * min(np.mean(valid <= 0), np.mean(valid >= 0))) if len(valid) else None
        out[m] = {"a": a, "b": b, "diff": a - b, "ci_low": low, "ci_high": high, "p": finite_or_none(p),
                  "n_valid_replicates": n_valid, **({"reason": reason} if reason else {})}
    return out


def tie_groups(
    results_by_encoder: Mapping[str, pd.DataFrame],
    alpha: float = 0.05,
    metric: str = "auroc",
    metrics_card: Mapping | None = None,
) -> dict:
    """Encoders not significantly different from the best at level alpha (two-sided, no multiplicity correction).

    results_by_encoder: encoder id -> out-of-fold predictions on one manifest. AUROC: DeLong test on the pooled
    predictions; F1: the paired patient bootstrap, tied when the (1 - alpha) CI of the difference contains 0.
    """
    if metric not in METRICS:
        raise MetricsInputError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    if not 0 < alpha < 1:
        raise MetricsInputError(f"alpha must be in (0, 1), got {alpha}")
    if len(results_by_encoder) < 2:
        raise MetricsInputError("tie groups need at least two encoders")
    import dataclasses

    from registry.specs import metrics_spec

    card = dataclasses.replace(metrics_spec(metrics_card), confidence=1 - alpha)
    ids = sorted(results_by_encoder)
    reference = results_by_encoder[ids[0]]
    tables = {e: align_predictions(reference, results_by_encoder[e]) for e in ids}
    labels = tables[ids[0]]["label"].to_numpy()
    scores = {e: check_probabilities(tables[e], "prob_b") for e in ids}
    if metric == "auroc":
        from sklearn.metrics import roc_auc_score

        if single_class_reason(labels):
            raise MetricsInputError(f"tie groups: {single_class_reason(labels)}")
        values = {e: float(roc_auc_score(labels, scores[e])) for e in ids}
    else:
        values = {e: paired_bootstrap(reference, results_by_encoder[e], card)["f1"]["b"] for e in ids}
    best = max(ids, key=lambda e: (values[e], e))
    comparisons = {}
    for e in ids:
        if e == best:
            continue
        if metric == "auroc":
            r = delong_test(labels, scores[best], scores[e], confidence=1 - alpha)
            comparisons[e] = {"diff": r.diff, "ci_low": r.ci_low, "ci_high": r.ci_high, "p": r.p,
                              "tied": r.p >= alpha}
        else:
            r = paired_bootstrap(results_by_encoder[best], results_by_encoder[e], card)["f1"]
            tied = r["ci_low"] is None or r["ci_low"] <= 0 <= r["ci_high"]
            comparisons[e] = {"diff": r["diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "p": r["p"],
                              "tied": bool(tied)}
    return {
        "metric": metric,
        "test": "delong (pooled out-of-fold)" if metric == "auroc" else "paired patient bootstrap",
        "alpha": alpha,
        "multiplicity_correction": "none",
        "best": best,
        "values": values,
        "tied_with_best": sorted([best] + [e for e, c in comparisons.items() if c["tied"]]),
        "comparisons": comparisons,
    }
