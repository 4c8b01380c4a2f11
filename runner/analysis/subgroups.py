"""AUROC by subgroup: sex, age band and view, where the prediction table has those columns.

Entry: `subgroup_auroc(predictions, params, metrics_card)`. predictions: the out-of-fold table (image_id, patient_id,
label, fold, prob) joined with the manifest's optional `sex`, `age`, `view`. Within each group the pooled
out-of-fold AUROC is computed with a patient cluster-bootstrap percentile CI. A group with fewer than
`min_per_class` positives or negatives is not computed: {status: "too-small", n_pos, n_neg, min}. Rows with a
missing attribute are counted, not grouped. Per attribute, the largest gap is between the best and worst computed
groups, with
* a CI (`gap_interval`): patients resampled once per replicate for both groups (the metrics card's bootstrap n
  and seed), percentile interval of the difference between the two named groups. With more than two groups the
  pair was chosen as the extremes after looking, so this CI is too optimistic for "the largest gap": the null
  reference is the test.
* a null reference (`gap_null_reference`): the same largest gap recomputed after permuting the attribute between
  patients with the same labels in the same test fold (a patient's images keep one donor, label for label, so
  every group keeps its positives and negatives per fold and a patient's images stay together);
  p = (1 + #{permuted gap >= observed}) / (1 + n), n = the card's bootstrap n. What it holds fixed: the labels,
  the scores, the patients and the group sizes by class and fold; it tests "the attribute says nothing about the
  score beyond the label".
Under no true difference the largest gap is not 0 (benchmarks/simulate_ci_coverage.py, docs/analyses.md): a gap
is a finding only when its null-reference p is small.
Cost on the 2-core CPU dev machine (loaded): 2,000 images, 8 groups, 2,000 replicates: 1.7 s before the gap CI and
null reference; measured again at load 7-10: 0.7-0.9 CPU s without them, 2.1-2.9 CPU s with them (2,000 replicates
and 2,000 permutations per attribute).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from registry.specs import SubgroupsSpec, analyses_spec
from runner.analysis import need
from runner.metrics.intervals import (
    bootstrap_fold_mean,
    patient_count_draws,
    percentile_interval,
    subset_auroc,
    weighted_auroc,
)
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
            labels = frame["label"].to_numpy()
            patients = frame["patient_id"].astype(str).to_numpy()
            group_of_row = groups.astype(str).where(groups.notna()).to_numpy(dtype=object)
            low, high, _, reason = gap_interval(labels, patients, probs, group_of_row == hi, group_of_row == lo,
                                                settings.confidence, settings.bootstrap_n, settings.bootstrap_seed,
                                                settings.min_valid_replicates)
            gap.update({"ci_low": low, "ci_high": high, **({"ci_reason": reason} if reason else {})})
            gap["null"] = gap_null_reference(labels, patients, probs, group_of_row, sorted(computed),
                                             settings.bootstrap_n, settings.bootstrap_seed, frame["fold"].to_numpy())
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


def gap_interval(labels: np.ndarray, patients: np.ndarray, scores: np.ndarray, in_hi: np.ndarray, in_lo: np.ndarray,
                 confidence: float, n_reps: int, seed: int, min_valid: int
                 ) -> tuple[float | None, float | None, int, str | None]:
    """Percentile CI of AUROC(rows in_hi) - AUROC(rows in_lo): patients resampled with replacement (pooled, as the
    groups' AUROCs are), the same draw for both groups. Returns (low, high, n_valid, reason)."""
    _, patient = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    weights = patient_count_draws(np.random.default_rng(seed), int(patient.max()) + 1, n_reps)
    auroc = [weighted_auroc(weights, patient[rows], labels[rows], scores[rows]) for rows in (in_hi, in_lo)]
    return percentile_interval(auroc[0] - auroc[1], confidence, min_valid)


def _donor_rows(labels: np.ndarray, patients: np.ndarray, keep: np.ndarray, n_perm: int, seed: int,
                folds: np.ndarray | None = None) -> np.ndarray:
    """(n_perm, n) row whose attribute each row takes in each permutation: patients are shuffled among patients
    of the same test fold with the same multiset of labels (over their rows in `keep`), a donor's rows matched to
    the receiver's label for label; rows outside `keep` take their own. Within fold: each fold's model scores its
    own patients, so a group's mix of folds stays as observed."""
    n = len(labels)
    donors = np.tile(np.arange(n, dtype=np.int32), (n_perm, 1))
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((rows, labels[rows], patients[rows]))]  # by patient, then label, then row
    by_patient: dict = {}
    for r in order:
        by_patient.setdefault(patients[r], []).append(r)
    strata: dict = {}
    for patient_rows in by_patient.values():
        fold = None if folds is None else folds[patient_rows[0]]  # a patient lives in one test fold
        strata.setdefault((fold, *labels[patient_rows]), []).append(patient_rows)
    rng = np.random.default_rng(seed)
    for members in strata.values():
        if len(members) < 2:
            continue
        matrix = np.asarray(members, dtype=np.int32)  # (patients, rows per patient), label-sorted within a patient
        shuffle = np.argsort(rng.random((n_perm, len(members))), axis=1)
        donors[:, matrix] = matrix[shuffle]
    return donors


def gap_null_reference(labels: np.ndarray, patients: np.ndarray, scores: np.ndarray, groups: np.ndarray,
                       computed: list[str], n_perm: int, seed: int, folds: np.ndarray | None = None) -> dict:
    """The largest AUROC gap among the `computed` groups, under permutations of the attribute between patients
    with the same labels; p of the observed gap against them (see the module docstring).

    groups: the group of each row (None/NaN: attribute missing, left out)."""
    patients = np.asarray(patients).astype(str)
    groups = pd.Series(groups, dtype=object)
    keep = groups.notna().to_numpy()
    codes = np.full(len(labels), -1)
    for i, g in enumerate(computed):
        codes[(groups == g).to_numpy()] = i
    donors = _donor_rows(labels, patients, keep, n_perm, seed, folds)
    permuted = codes[donors]  # (n_perm, n) group code of every row in every permutation
    observed = [subset_auroc(codes[None, :] == i, labels, scores)[0] for i in range(len(computed))]
    null = np.stack([subset_auroc(permuted == i, labels, scores) for i in range(len(computed))])
    gap, null_gaps = float(np.max(observed) - np.min(observed)), null.max(axis=0) - null.min(axis=0)
    null_gaps = null_gaps[np.isfinite(null_gaps)]
    return {
        "method": "attribute permuted between patients with the same labels in the same test fold",
        "n": int(n_perm), "seed": int(seed),
        "p": float((1 + np.sum(null_gaps >= gap - 1e-12)) / (1 + len(null_gaps))),
        "null_mean": float(np.mean(null_gaps)), "null_q95": float(np.quantile(null_gaps, 0.95)),
    }


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
