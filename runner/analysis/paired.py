"""Comparisons of encoders evaluated on the same manifest.

Entries:
* `paired_bootstrap(pred_a, pred_b, metrics_card)`: the patient-level paired bootstrap of the difference (a - b) of
  the fold-mean F1 and AUROC; both encoders are scored on the same patient draws (runner.metrics.intervals.bootstrap_fold_mean).
* `tie_groups(results_by_encoder, alpha=0.05, test=...)`: which encoders are not significantly different from the
  best one. For both metrics the estimand is the one the leaderboard shows and bolds: the mean over the evaluated
  folds of the per-fold metric, so "best" here is always the bolded cell. Each other encoder is compared with the
  best by `test` (the task card's analyses.paired.test; TIE_TESTS says what each resamples, TEST_SCOPE what it holds
  fixed), and the p-values of the comparisons in a row are Holm-adjusted; an encoder is tied when its adjusted
  p >= alpha.
  `test="fold-t"` (the schema's default): the t-test over the per-fold differences (`fold_t_test`): each fold's
  classifiers were refitted on that fold's training rows, so the folds' spread counts refit variance, which the
  bootstrap (fitted classifiers held fixed) does not; with the classifier refitted per encoder the bootstrap
  rejected a true null too often (benchmarks/simulate_tie_test.py, docs/analyses.md "Calibration").
  `test="corrected-fold-t"` adds Nadeau & Bengio's correction. Both need only the filed out-of-fold predictions.
  `test="patient-bootstrap"`: the paired patient bootstrap of the difference (patients resampled within their test
  fold, the same draws for every encoder: a patient's correlated images stay together, which image-level DeLong
  ignores); its p is never 0: with B replicates it is at least 1/(B+1) (`bootstrap_p`). The demo tasks keep it:
  the fold t-test's level at 150/150 was not established.
Why not DeLong: with several images per patient the images are not independent, and in the simulation of
tests/test_analysis_paired.py (4 images per patient, patient-level effects) image-level DeLong rejected a true null
far more often than alpha (measured rate in that test's docstring); the patient bootstrap keeps it near alpha.
Cost on the 2-core CPU dev machine: 2,000 images, 2,000 replicates, two encoders: 0.2 s per pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from registry.specs import metrics_spec
from runner.metrics.intervals import bootstrap_fold_mean, fold_mean_metrics, percentile_interval, subset_auroc
from runner.metrics.scores import (
    METRICS,
    MetricsInputError,
    check_predictions,
    check_probabilities,
    finite_or_none,
    point_metrics,
    single_class_reason,
)
from runner.metrics.summary import MetricsSettings


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
        low, high, n_valid, reason = percentile_interval(diffs, settings.confidence, settings.min_valid_replicates)
        p = bootstrap_p(diffs)
        out[m] = {"a": a, "b": b, "diff": a - b, "ci_low": low, "ci_high": high, "p": finite_or_none(p),
                  "n_valid_replicates": n_valid, **({"reason": reason} if reason else {})}
    return out


def bootstrap_p(diffs: np.ndarray) -> float | None:
    """Two-sided bootstrap p of "difference = 0": twice the smaller tail mass on either side of zero, with the +1
    correction of a Monte Carlo p ((count + 1) / (B + 1)), so it is never 0; None without a finite replicate."""
    valid = np.asarray(diffs, dtype=float)
    valid = valid[np.isfinite(valid)]
    if not len(valid):
        return None
    if not np.any(valid != 0):  # identical predictions: no difference in any replicate
        return 1.0
    tail = min(int(np.sum(valid <= 0)), int(np.sum(valid >= 0)))
    return float(min(1.0, 2 * (tail + 1) / (len(valid) + 1)))


@dataclass(frozen=True)
class FoldTTest:
    """The corrected resampled t-test of per-fold metric differences (`fold_t_test`)."""

    diff: float  # mean over folds (and seeds) of the per-fold difference a - b
    se: float  # its standard error, refit variance included
    t: float | None  # None when se is 0 (every fold the same difference)
    df: int
    p: float
    variance_factor: float  # what multiplies the sample variance of the per-fold differences: 1/k + n_test/n_train
    folds: int
    seeds: int


def fold_t_test(diffs, n_train, n_test, corrected: bool = True) -> FoldTTest:
    """Two-sided t-test of "mean per-fold difference = 0" over the k folds of one cross-validation.

    diffs: the k per-fold differences (metric of a - metric of b, each fold's models fitted on that fold's training
    rows), or an (R, k) array of them over R classifier seeds on the same folds, averaged over seeds first (the
    folds stay fixed, so seeds shrink the refit noise of each fold's difference but the folds stay the k units).
    n_train, n_test: per-fold training and test sizes (or one number each).
    Each fold's difference comes from models refitted on that fold's training rows, so their spread carries the
    refit variance that the fixed-prediction bootstrap ignores; the training sets overlap, so the differences are
    correlated, which Nadeau & Bengio's correction (Machine Learning 52, 2003) allows for by replacing the 1/k of
    the naive variance of the mean with 1/k + n_test/n_train. corrected=False gives the naive t-test over folds.
    """
    d = np.asarray(diffs, dtype=float)
    if d.ndim == 2:
        seeds, d = d.shape[0], d.mean(axis=0)
    elif d.ndim == 1:
        seeds = 1
    else:
        raise MetricsInputError(f"fold differences must be a vector or a (seeds, folds) array, got shape {d.shape}")
    k = len(d)
    if k < 2:
        raise MetricsInputError(f"the fold t-test needs at least two folds, got {k}")
    if not np.all(np.isfinite(d)):
        raise MetricsInputError("fold differences must be finite (a fold with one class has no AUROC or F1)")
    n_train = np.broadcast_to(np.asarray(n_train, dtype=float), (k,))
    n_test = np.broadcast_to(np.asarray(n_test, dtype=float), (k,))
    if np.any(n_train <= 0) or np.any(n_test <= 0):
        raise MetricsInputError("training and test sizes must be positive")
    factor = 1.0 / k + (float(np.mean(n_test / n_train)) if corrected else 0.0)
    mean = float(d.mean())
    se = math.sqrt(factor * float(d.var(ddof=1)))
    if se == 0.0:  # the same difference in every fold: no spread to test against
        t, p = None, (1.0 if mean == 0.0 else 0.0)
    else:
        from scipy import stats

        t = mean / se
        p = float(min(1.0, 2.0 * stats.t.sf(abs(t), k - 1)))
    return FoldTTest(mean, se, t, k - 1, p, factor, k, seeds)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (family-wise error at alpha over the comparisons given)."""
    order = sorted(p_values, key=lambda k: (p_values[k], k))
    adjusted, running = {}, 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[key]))
        adjusted[key] = running
    return adjusted


# What each tie test resamples, as the leaderboard states it; the task card's analyses.paired.test picks one.
TIE_TESTS = {
    "patient-bootstrap": "paired patient bootstrap (patients resampled within test folds, same draws for every encoder)",
    "fold-t": ("t-test over the per-fold differences (each fold's classifiers refitted on that fold's training "
               "rows, so refit variance is counted; df = folds - 1)"),
    "corrected-fold-t": ("t-test over the per-fold differences with Nadeau & Bengio's variance correction "
                         "(1/k + n_test/n_train; df = folds - 1)"),
}


# What each tie test holds fixed and which variance it counts, as the leaderboard states it beside the test's name.
TEST_SCOPE = {
    "patient-bootstrap": ("holds fixed the manifest (the sampled images and their folds) and each encoder's fitted "
                          "classifiers; counts test-sampling variance only (patients resampled within their test "
                          "fold), not refit variance, other splits or other samples"),
    "fold-t": ("holds fixed the manifest (the sampled images and their folds); counts test-sampling and refit variance "
               "through the spread of the per-fold differences (each fold's classifiers were refitted on its "
               "training rows); not the variation from other splits or another sample"),
    "corrected-fold-t": ("holds fixed the manifest (the sampled images and their folds); counts test-sampling and "
                         "refit variance through the spread of the per-fold differences, inflated for the folds' "
                         "overlapping training sets; not the variation from other splits or another sample"),
}


def tie_groups(
    results_by_encoder: Mapping[str, pd.DataFrame],
    alpha: float = 0.05,
    metric: str = "auroc",
    metrics_card: Mapping | None = None,
    test: str = "patient-bootstrap",
) -> dict:
    """Encoders not significantly different from the best at level alpha (two-sided, Holm across the row).

    results_by_encoder: encoder id -> out-of-fold predictions on one manifest. The best is the highest fold-mean
    metric (what the table bolds); every other encoder is compared with it by `test` (a TIE_TESTS key).
    """
    if metric not in METRICS:
        raise MetricsInputError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    if not 0 < alpha < 1:
        raise MetricsInputError(f"alpha must be in (0, 1), got {alpha}")
    if len(results_by_encoder) < 2:
        raise MetricsInputError("tie groups need at least two encoders")
    ids = sorted(results_by_encoder)
    reference = results_by_encoder[ids[0]]
    tables = {e: align_predictions(reference, results_by_encoder[e]) for e in ids[1:]}
    table = tables[ids[1]]  # every table is sorted by image_id, so rows line up across encoders
    scores = {ids[0]: check_probabilities(table, "prob_a"), **{e: check_probabilities(tables[e], "prob_b")
                                                               for e in ids[1:]}}
    return compare_with_best(table["label"].to_numpy(), table["patient_id"].astype(str).to_numpy(),
                             table["fold"].to_numpy(), scores, alpha, metric, metrics_card, test)


def per_fold_metric(labels: np.ndarray, folds: np.ndarray, scores: list[np.ndarray], threshold: float,
                    metric: str) -> tuple[np.ndarray, np.ndarray]:
    """((S, k) metric of each score vector in each fold with both classes, (k,) test rows of those folds).

    The same arithmetic as `fold_mean_metrics` per fold (Mann-Whitney AUROC, ties one half; F1 at `threshold`),
    all folds at once."""
    used = [f for f in np.unique(folds) if not single_class_reason(labels[folds == f])]
    member = np.stack([folds == f for f in used]) if used else np.zeros((0, len(labels)), dtype=bool)
    if metric == "auroc":
        values = [subset_auroc(member, labels, s) for s in scores]
    else:
        positive, counts = labels == 1, member.astype(float)  # float: a bool matrix product is a logical "or"
        values = []
        for s in scores:
            predicted = s >= threshold
            tp, fp = counts @ (positive & predicted), counts @ (~positive & predicted)
            fn = counts @ (positive & ~predicted)
            values.append(2 * tp / (2 * tp + fp + fn))  # each used fold has positives: never 0 / 0
    return np.asarray(values, dtype=float).reshape(len(scores), len(used)), member.sum(axis=1)


def compare_with_best(labels: np.ndarray, patients: np.ndarray, folds: np.ndarray, scores_by_encoder: Mapping,
                      alpha: float = 0.05, metric: str = "auroc", metrics_card: Mapping | None = None,
                      test: str = "patient-bootstrap") -> dict:
    """`tie_groups` on aligned arrays: one row per image, the same rows for every encoder's scores.

    The fold t-tests need two or more folds with both classes; with fewer (a holdout) the patient bootstrap is used
    and the result says so (`requested_test`, `test_reason`)."""
    import dataclasses

    if test not in TIE_TESTS:
        raise MetricsInputError(f"tie test must be one of {list(TIE_TESTS)}, got {test!r}")
    settings = MetricsSettings.from_card(dataclasses.replace(metrics_spec(metrics_card), confidence=1 - alpha))
    ids = sorted(scores_by_encoder)
    scores = [np.asarray(scores_by_encoder[e], dtype=float) for e in ids]
    if all(single_class_reason(labels[folds == f]) for f in np.unique(folds)):
        raise MetricsInputError("tie groups: no fold has both classes")
    point = fold_mean_metrics(labels, patients, folds, scores, settings.threshold)[metric]
    values = {e: float(point[i]) for i, e in enumerate(ids)}
    best = max(ids, key=lambda e: (values[e], e))
    b = ids.index(best)
    requested, fallback = test, None
    if test != "patient-bootstrap":
        per_fold, n_test = per_fold_metric(labels, folds, scores, settings.threshold, metric)
        if len(n_test) < 2:
            test, fallback = "patient-bootstrap", f"{len(n_test)} fold(s) with both classes: a fold t-test needs 2"
    comparisons, raw = {}, {}
    if test == "patient-bootstrap":
        reps = bootstrap_fold_mean(labels, patients, folds, scores,
                                   settings.threshold, settings.bootstrap_n, settings.bootstrap_seed)[metric]
        for i, e in enumerate(ids):
            if e == best:
                continue
            diffs = reps[b] - reps[i]
            low, high, _, reason = percentile_interval(diffs, 1 - alpha, settings.min_valid_replicates)
            raw[e] = bootstrap_p(diffs)
            comparisons[e] = {"diff": values[best] - values[e], "ci_low": low, "ci_high": high, "p": raw[e],
                              **({"reason": reason} if reason else {})}
    else:
        from scipy import stats

        n_train = len(labels) - n_test  # k-fold CV: every other evaluated row trained the fold's model
        for i, e in enumerate(ids):
            if e == best:
                continue
            result = fold_t_test(per_fold[b] - per_fold[i], n_train, n_test, corrected=test == "corrected-fold-t")
            half = float(stats.t.ppf(1 - alpha / 2, result.df)) * result.se
            raw[e] = result.p
            comparisons[e] = {"diff": values[best] - values[e], "ci_low": result.diff - half,
                              "ci_high": result.diff + half, "p": result.p, "t": finite_or_none(result.t),
                              "df": result.df}
    adjusted = holm({e: (1.0 if p is None else p) for e, p in raw.items()})
    for e, c in comparisons.items():
        c["p_holm"] = adjusted[e]
        c["tied"] = bool(raw[e] is None or adjusted[e] >= alpha)
    out = {
        "metric": metric,
        "estimand": "mean over evaluated folds of the per-fold metric (the leaderboard's number)",
        "test": TIE_TESTS[test],
        "test_id": test,
        "holds_fixed": TEST_SCOPE[test],
        "alpha": alpha,
        "multiplicity_correction": "holm",
    }
    if test == "patient-bootstrap":
        out["bootstrap"] = {"n": settings.bootstrap_n, "seed": settings.bootstrap_seed}
    else:
        out["folds"] = len(n_test)
    if fallback:
        out.update({"requested_test": requested, "test_reason": fallback})
    return {
        **out,
        "best": best,
        "values": values,
        "tied_with_best": sorted([best] + [e for e, c in comparisons.items() if c["tied"]]),
        "comparisons": comparisons,
    }
