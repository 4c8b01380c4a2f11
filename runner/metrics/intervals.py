"""Confidence intervals: the across-fold Student-t interval and the patient cluster bootstrap of the fold-mean
metric.

The bootstrap is vectorised: a replicate is a vector of per-patient draw counts, so every replicate's confusion
counts and rank-based AUROC come from a few array operations over all replicates at once (`bootstrap_fold_mean`:
draw counts gathered per image and summed per score group). Cost measured on the
2-core CPU dev machine: 2,000 images / 1,600 patients / 5 folds, 2,000 replicates, AUROC and F1: 0.24 CPU-s
with replicates as rows, 0.08 CPU-s patient-major (`patient_count_draws`' layout; the same replicates bit for bit;
2026-12-07, load ~10); AUROC from a running sum over the negatives' own score groups instead of a dense block of every
group: 9.7 vs 13.9 ms per fold of 400 images with 400 distinct scores, equal with 5-60 (2,000 replicates; the
same values: 3,000 random designs with ties compared bit for bit, 2026-12-07).
Every sum is of whole numbers (or halves), so its order cannot change a value.

The draws depend on nothing but the seed, the replicate count and each stratum's patient count, so every result of one
manifest (each encoder, each view, each pair the paired test compares) draws the same: the last DRAWS_KEPT sets are
kept in this process (`stratum_draws`), as the smallest integers that hold them, and drawn once.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from registry.hashing import recall, remember
from runner.metrics.scores import METRICS, single_class_reason

DRAWS_KEPT = 16  # sets of strata draws kept (~0.8 MB per 1,000 patients x 2,000 replicates, as bytes)
_DRAWS: OrderedDict = OrderedDict()


def patient_count_draws(rng: np.random.Generator, n_patients: int, n_reps: int) -> np.ndarray:
    """(n_reps, n_patients) how often each patient is drawn when n_patients are drawn with replacement.

    Stored patient-major (the array is the transpose of a C-ordered (n_patients, n_reps) one): `weighted_auroc`
    and `_weighted_f1` then gather and sum whole rows of replicates, contiguous in memory."""
    return _count_draws(rng, n_patients, n_reps).astype(float).T


def _count_draws(rng: np.random.Generator, n_patients: int, n_reps: int) -> np.ndarray:
    """(n_patients, n_reps) C-ordered integer draw counts: `patient_count_draws` before its conversion to float."""
    draws = rng.integers(0, n_patients, size=(n_reps, n_patients))
    draws *= n_reps  # patient p of replicate r counts at p * n_reps + r
    draws += np.arange(n_reps)[:, None]
    return np.bincount(draws.ravel(), minlength=n_reps * n_patients).reshape(n_patients, n_reps)


def stratum_draws(seed: int, n_reps: int, patients_per_stratum: Sequence[int]) -> list[np.ndarray]:
    """`patient_count_draws` of each stratum in turn from one `default_rng(seed)`: what `bootstrap_fold_mean` draws,
    kept per (seed, n_reps, patient counts) for the next call with the same strata."""
    key = (int(seed), int(n_reps), tuple(int(n) for n in patients_per_stratum))
    counts = recall(_DRAWS, key)
    if counts is None:
        rng = np.random.default_rng(seed)
        drawn = [_count_draws(rng, n, n_reps) for n in key[2]]
        counts = remember(_DRAWS, key, [c.astype(np.min_scalar_type(int(c.max()))) for c in drawn], DRAWS_KEPT)
    return [c.astype(float).T for c in counts]


def _class_columns(mask: np.ndarray, group: np.ndarray, patient: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """The images of one class ordered by score group: (their patients, where each group starts, which groups)."""
    images = np.flatnonzero(mask)
    images = images[np.argsort(group[images], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(group[images]) > 0]) if len(images) else images
    return patient[images], starts, group[images[starts]]


def _group_weights(w: np.ndarray, patients: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each score group's weight (rows: the class's groups in score order), from its images' patients' rows of w."""
    rows = w[patients]
    return np.add.reduceat(rows, starts, axis=0) if len(starts) < len(patients) else rows  # no ties: one image each


def weighted_auroc(weights: np.ndarray, patient: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC (ties count one half) for each row of per-patient weights; NaN if a class is absent.

    An image's weight is its patient's draw count, so this equals the AUROC of the resampled data set. The weights
    are whole numbers, so every sum below is exact whatever its order: a positive score group's credit is the
    negative weight below it plus half the negative weight tied with it, read off one running sum over the negatives'
    own score groups (doubled, so that it stays a whole number until the final halving).
    """
    _, group = np.unique(scores, return_inverse=True)  # score ties share a group
    group = group.ravel()
    pos_patients, pos_starts, pos_groups = _class_columns(labels == 1, group, patient)
    neg_patients, neg_starts, neg_groups = _class_columns(labels != 1, group, patient)
    below = np.searchsorted(neg_groups, pos_groups, side="left")  # negative groups scored lower than each positive one
    up_to = np.searchsorted(neg_groups, pos_groups, side="right")  # ... lower or tied
    by_patient = np.ascontiguousarray(weights.T)  # (n_patients, n_reps): a patient's draws are one row (no copy
    n_reps = by_patient.shape[1]                  # for patient_count_draws' layout)
    out = np.empty(n_reps)
    chunk = max(1, 1_000_000 // max(len(neg_patients) + 1, len(pos_patients), 1))  # bounds each block at ~8 MB
    for start in range(0, n_reps, chunk):
        w = by_patient[:, start:start + chunk]
        running = np.empty((len(neg_groups) + 1, w.shape[1]))  # running[i]: weight of the i lowest negative groups
        running[0] = 0.0
        np.cumsum(_group_weights(w, neg_patients, neg_starts), axis=0, out=running[1:])
        n_pos = _group_weights(w, pos_patients, pos_starts)
        twice_credit = running[below]
        twice_credit += running[up_to]
        twice_wins = np.einsum("ij,ij->j", n_pos, twice_credit)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + chunk] = (0.5 * twice_wins) / (n_pos.sum(axis=0) * running[-1])
    return out


def _weighted_f1(weights: np.ndarray, patient: np.ndarray, labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    n_patients = weights.shape[1]
    per_patient = np.stack([np.bincount(patient, weights=(labels == 1) & predicted, minlength=n_patients),  # tp
                            np.bincount(patient, weights=(labels == 0) & predicted, minlength=n_patients),  # fp
                            np.bincount(patient, weights=(labels == 1) & ~predicted, minlength=n_patients)],  # fn
                           axis=1)
    # one pass over the weights for all three counts; whole numbers, so the same sums in any order. einsum, not a BLAS
    # matmul: OpenBLAS threads this small product and its spinning threads cost ~10x the CPU of the product itself
    tp_w, fp_w, fn_w = np.einsum("pk,pr->kr", per_patient, weights.T)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tp_w / (2 * tp_w + fp_w + fn_w)
    return np.where(tp_w + fn_w > 0, f1, np.nan)  # no positives drawn: F1 undefined


def bootstrap_fold_mean(
    labels: np.ndarray,
    patients: np.ndarray,
    strata: np.ndarray,
    scores: Sequence[np.ndarray],
    threshold: float,
    n_reps: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Patient cluster bootstrap of the mean over strata (test folds) of AUROC and F1.

    Patients are resampled with replacement within each stratum; every score vector in `scores` is evaluated on
    the same replicates, so differences between them are paired. Returns {"auroc": (S, n_reps), "f1": (S, n_reps)}
    with NaN for replicates in which some stratum lost a class. Strata with one class are skipped entirely,
    as the point estimate skips them.
    """
    totals = {m: np.zeros((len(scores), n_reps)) for m in METRICS}
    kept = []  # (rows, labels, patient index) of each stratum with both classes, in order
    for stratum in np.unique(strata):
        rows = strata == stratum
        y = labels[rows]
        if not single_class_reason(y):
            kept.append((rows, y, np.unique(patients[rows], return_inverse=True)[1]))
    used = len(kept)
    draws = stratum_draws(seed, n_reps, [int(patient.max()) + 1 for _, _, patient in kept])
    for (rows, y, patient), weights in zip(kept, draws, strict=True):
        for i, s in enumerate(scores):
            s = np.asarray(s)[rows]
            totals["auroc"][i] += weighted_auroc(weights, patient, y, s)
            totals["f1"][i] += _weighted_f1(weights, patient, y, s >= threshold)
    if used == 0:
        return {m: np.full((len(scores), n_reps), np.nan) for m in METRICS}
    return {m: totals[m] / used for m in METRICS}


def fold_mean_metrics(labels: np.ndarray, patients: np.ndarray, strata: np.ndarray, scores: Sequence[np.ndarray],
                      threshold: float) -> dict[str, np.ndarray]:
    """The point estimate `bootstrap_fold_mean` resamples: the mean over strata with both classes of AUROC and F1,
    for each score vector ({"auroc": (S,), "f1": (S,)}; NaN when no stratum has both classes). Same arithmetic as
    the replicates (every patient drawn once), ~50x faster than scikit-learn per fold on small folds."""
    totals = {m: np.zeros(len(scores)) for m in METRICS}
    used = 0
    for stratum in np.unique(strata):
        rows = strata == stratum
        y = labels[rows]
        if single_class_reason(y):
            continue
        used += 1
        _, patient = np.unique(patients[rows], return_inverse=True)
        ones = np.ones((1, int(patient.max()) + 1))
        for i, s in enumerate(scores):
            s = np.asarray(s)[rows]
            totals["auroc"][i] += weighted_auroc(ones, patient, y, s)[0]
            totals["f1"][i] += _weighted_f1(ones, patient, y, s >= threshold)[0]
    return {m: totals[m] / used if used else np.full(len(scores), np.nan) for m in METRICS}


def subset_auroc(member: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC (ties count one half) of the rows selected by each row of `member` ((P, n) bool); the
    scores are sorted once and no sparse matrix is built, so each subset costs O(n) dense work (a subgroup
    permutation null, the per-fold metrics of a fold t-test)."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first row of each run of tied scores
    is_pos = labels[order] == 1
    out = np.empty(member.shape[0])
    for start in range(0, member.shape[0], 256):  # bounds each dense block
        chosen = member[start:start + 256][:, order]
        n_pos, n_neg = (chosen & is_pos).astype(float), (chosen & ~is_pos).astype(float)
        if len(starts) < len(order):  # tied scores: count each run of ties together
            n_pos, n_neg = np.add.reduceat(n_pos, starts, axis=1), np.add.reduceat(n_neg, starts, axis=1)
        below = np.cumsum(n_neg, axis=1) - n_neg
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + 256] = (np.sum(n_pos * (below + 0.5 * n_neg), axis=1)
                                      / (n_pos.sum(axis=1) * n_neg.sum(axis=1)))
    return out


def percentile_interval(replicates: np.ndarray, confidence: float, min_valid: int
                        ) -> tuple[float | None, float | None, int, str | None]:
    """(low, high, n_valid, reason) of the percentile interval over the finite replicates; none when fewer than
    `min_valid` (the card's metrics.bootstrap.min_valid_replicates) could be computed."""
    valid = replicates[np.isfinite(replicates)]
    if len(valid) < min_valid:
        return None, None, len(valid), (
            f"only {len(valid)} of {len(replicates)} bootstrap replicates had both classes "
            f"(need {min_valid}: metrics.bootstrap.min_valid_replicates)"
        )
    alpha = 1.0 - confidence
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), len(valid), None


def t_interval(values: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """(mean, half_width, t critical value) of the Student-t interval over k >= 2 values."""
    x = np.asarray(values, dtype=float)
    k = len(x)
    # scipy.stats.t.ppf is this function; scipy.stats itself costs ~1 s to import, scipy.special ~0.15 s
    from scipy.special import stdtrit

    t_crit = float(stdtrit(k - 1, 1 - (1 - confidence) / 2))
    return float(x.mean()), t_crit * float(x.std(ddof=1)) / math.sqrt(k), t_crit
