"""scikit-learn's StratifiedGroupKFold made fast: the inner early-stopping split of runner.classify.out_of_fold, and
the patient-wise folds of a sampled manifest (runner.sample.sampler, runner.sample.by_images).

Entries: `stratified_group_folds(y, groups, n_splits, seed) -> fold per row`, identical to the test folds of
`StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(X, y, groups)`, and
`first_stratified_group_split(...) -> (fit_idx, valid_idx)`, its first fold as index arrays into `y`
(tests/test_splits.py checks equality against scikit-learn on many random designs; `python -m
runner.sample.committed --check` reproduces every committed manifest's folds, made with scikit-learn).

Why: scikit-learn assigns each group to a fold by trying every fold with a handful of small numpy calls (np.std,
np.isclose, ...) per (group, fold); for the ~800 patients of a 1,600-image training fold and 7 inner folds that took
0.5-1 s per call on the 2-core machine, more than the LightGBM fit it serves, and runner.classify.out_of_fold needs one per fold
(label efficiency: 90), and it was a third of re-sampling the committed manifests. Here each group's candidate folds are scored with one vectorised np.std over all folds (the
same arithmetic in the same order, so the same floating-point values) and the tie rule runs on Python floats.
`InnerSplitCache` keeps the splits of one process, keyed by a digest of exactly the split's inputs.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np


def _isclose(a: float, b: float, rtol: float = 1e-05, atol: float = 1e-08) -> bool:
    """np.isclose for two finite-or-infinite floats (what scikit-learn's tie rule calls)."""
    if a == b:
        return True
    if math.isinf(a) or math.isinf(b):
        return False
    return abs(a - b) <= atol + rtol * abs(b)


def _mean_fold_std(scaled: np.ndarray) -> np.ndarray:
    """np.mean(np.std(scaled, axis=1), axis=1) by the same ufunc calls numpy's _std and _mean make (numpy/_core/
    _methods.py), so the same floating-point values, without their Python-level checks (the loop calls this once per
    patient group)."""
    n_folds, n_classes = scaled.shape[1], scaled.shape[2]
    mean = np.add.reduce(scaled, axis=1, keepdims=True)
    np.true_divide(mean, n_folds, out=mean)
    deviation = np.subtract(scaled, mean)
    np.square(deviation, out=deviation)
    std = np.add.reduce(deviation, axis=1)
    np.true_divide(std, n_folds, out=std)
    np.sqrt(std, out=std)
    out = np.add.reduce(std, axis=1)
    return np.true_divide(out, n_classes, out=out)


def stratified_group_folds(y, groups, n_splits: int, seed: int) -> np.ndarray:
    """The test fold (0 .. n_splits - 1) of every row under StratifiedGroupKFold(n_splits, shuffle=True,
    random_state=seed): row i is in `split(X, y, groups)`'s k-th test set exactly when the result's [i] is k.

    Follows sklearn.model_selection.StratifiedGroupKFold._iter_test_indices step for step (scikit-learn 1.x), including
    its RandomState shuffle of the groups; raises ValueError where it would (more splits than groups or members).
    """
    y = np.asarray(y)
    _, y_inv, y_cnt = np.unique(y, return_inverse=True, return_counts=True)
    if np.all(n_splits > y_cnt):
        raise ValueError(f"n_splits={n_splits} cannot be greater than the number of members in each class.")
    n_classes = len(y_cnt)
    _, groups_inv, groups_cnt = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    n_groups = len(groups_cnt)
    if n_splits > n_groups:
        raise ValueError(f"Cannot have number of splits n_splits={n_splits} greater than the number of groups: "
                         f"{n_groups}.")
    y_counts_per_group = np.zeros((n_groups, n_classes))
    np.add.at(y_counts_per_group, (groups_inv.ravel(), y_inv.ravel()), 1)

    rng = np.random.RandomState(seed)
    perm = np.arange(n_groups)
    rng.shuffle(perm)
    y_counts_per_group = y_counts_per_group[perm]
    inv_perm = np.empty_like(perm)
    inv_perm[perm] = np.arange(perm.size)
    groups_inv = inv_perm[groups_inv.ravel()]
    sorted_groups_idx = np.argsort(-np.std(y_counts_per_group, axis=1), kind="stable")

    y_counts_per_fold = np.zeros((n_splits, n_classes))
    samples = [0.0] * n_splits  # images per fold (whole numbers: the same as scikit-learn's np.sum of the fold's row)
    group_sizes = y_counts_per_group.sum(axis=1).tolist()
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    diagonal = np.arange(n_splits)
    cnt = y_cnt.reshape(1, 1, -1)
    candidates = np.empty((n_splits, n_splits, n_classes))
    for group_idx in sorted_groups_idx.tolist():
        group_y_counts = y_counts_per_group[group_idx]
        # candidate c: the fold counts with this group added to fold c (scikit-learn adds, measures, subtracts)
        candidates[...] = y_counts_per_fold
        candidates[diagonal, diagonal] += group_y_counts
        evals = _mean_fold_std(candidates / cnt).tolist()
        best_fold, min_eval, min_samples = None, np.inf, np.inf
        for i in range(n_splits):
            if evals[i] < min_eval or (_isclose(evals[i], min_eval) and samples[i] < min_samples):
                best_fold, min_eval, min_samples = i, evals[i], samples[i]
        y_counts_per_fold[best_fold] += group_y_counts
        samples[best_fold] += group_sizes[group_idx]
        fold_of_group[group_idx] = best_fold
    return fold_of_group[groups_inv]


def first_stratified_group_split(y, groups, n_splits: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)'s first fold."""
    in_test = stratified_group_folds(y, groups, n_splits, seed) == 0
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


class InnerSplitCache:
    """Splits already made in this process, keyed by a digest of every input the split depends on.

    The key covers every row of the design (image id, patient id, label, fold), the fold, the number of inner folds
    and the seed, so a split is reused only for the same manifest (another encoder of the task), never another one. Bounded (least recently used out), as label efficiency makes many one-off designs.
    """

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._splits: OrderedDict[str, tuple[np.ndarray, np.ndarray] | None] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(image_ids, groups, labels, folds, fold: int, n_splits: int, seed: int, min_rows: int) -> str:
        """Digest of the whole design (every row's image id, patient, label and fold, in order) and the split's
        settings: another manifest, or the same one with any row changed, gets another key."""
        digest = hashlib.sha256()
        for part in (image_ids, groups):
            digest.update("\x1f".join(map(str, part)).encode("utf-8"))
            digest.update(b"\x1e")
        for part in (labels, folds):
            digest.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
            digest.update(b"\x1e")
        digest.update(f"|{int(fold)}|{int(n_splits)}|{int(seed)}|{int(min_rows)}".encode())
        return digest.hexdigest()

    def get_or_make(self, key: str, make):
        if key in self._splits:
            self.hits += 1
            self._splits.move_to_end(key)
            return self._splits[key]
        self.misses += 1
        value = make()
        self._splits[key] = value
        while len(self._splits) > self.max_entries:
            self._splits.popitem(last=False)
        return value
