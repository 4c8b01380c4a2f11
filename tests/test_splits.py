"""The fast inner split equals scikit-learn's StratifiedGroupKFold; the per-process cache never crosses manifests."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedGroupKFold

import runner.classify.out_of_fold as classify_module
from runner.classify.inner_split import InnerSplitCache, first_stratified_group_split, stratified_group_folds
from runner.classify.out_of_fold import ClassifierSettings, _inner_split, classify, machine_threads


def _design(seed: int, n: int, max_images: int, positive_rate: float):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n), rng.integers(1, max_images + 1, size=n))[:n]
    rng.shuffle(groups)
    y = (rng.uniform(size=n) < positive_rate).astype(int)
    return y, np.array([f"p{g}" for g in groups])


@pytest.mark.parametrize("seed", range(12))
def test_first_split_equals_scikit_learn(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(40, 2500))
    y, groups = _design(seed, n, int(rng.integers(1, 5)), float(rng.uniform(0.1, 0.6)))
    n_splits = int(rng.integers(2, 9))
    if min(np.bincount(y, minlength=2)) < n_splits:
        pytest.skip("too few of a class for this n_splits")
    reference = next(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(n), y, groups))
    ours = first_stratified_group_split(y, groups, n_splits, seed)
    np.testing.assert_array_equal(ours[0], reference[0])
    np.testing.assert_array_equal(ours[1], reference[1])


def _sklearn_folds(y, groups, n_splits, seed):
    folds = np.full(len(y), -1)
    splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
            folds[test] = fold
    return folds


@pytest.mark.parametrize("seed", range(16))
def test_every_fold_equals_scikit_learn(seed):
    """The manifests' folds (runner.sample): every row's test fold, binary and multi-class strata (a multi-label task's
    rarest finding, an attribute's class), 2 to 10 folds, patients with one to several images."""
    rng = np.random.default_rng(500 + seed)
    n = int(rng.integers(30, 1500))
    n_classes = 2 if seed % 2 == 0 else int(rng.integers(3, 9))
    groups = _design(seed, n, int(rng.integers(1, 6)), 0.5)[1]
    y = rng.choice(n_classes, size=n, p=rng.dirichlet(np.ones(n_classes)))
    n_splits = int(rng.integers(2, 11))
    if np.all(n_splits > np.bincount(y)) or n_splits > len(set(groups)):
        pytest.skip("an impossible split for these draws")
    np.testing.assert_array_equal(stratified_group_folds(y, groups, n_splits, seed),
                                  _sklearn_folds(y, groups, n_splits, seed))


def test_ties_and_identical_groups_match_scikit_learn():
    # every group the same size and class mix: every assignment is decided by the tie rule
    y = np.tile([0, 1], 60)
    groups = np.repeat(np.arange(60), 2).astype(str)
    for seed in range(5):
        reference = next(StratifiedGroupKFold(7, shuffle=True, random_state=seed).split(np.zeros(120), y, groups))
        np.testing.assert_array_equal(first_stratified_group_split(y, groups, 7, seed)[1], reference[1])


def test_impossible_splits_raise_like_scikit_learn():
    y, groups = np.array([0, 1] * 3), np.array(["a", "a", "b", "b", "b", "b"])
    for ours_or_theirs in (lambda: first_stratified_group_split(y, groups, 3, 0),
                           lambda: next(StratifiedGroupKFold(3, shuffle=True, random_state=0).split(y, y, groups))):
        with pytest.raises(ValueError, match="number of groups"):
            ours_or_theirs()
    with pytest.raises(ValueError, match="members in each class"):
        first_stratified_group_split(np.array([0, 1, 0, 1]), np.array(["a", "b", "c", "d"]), 3, 0)


def test_cache_key_changes_with_every_input():
    ids, groups = np.array(["a", "b", "c"]), np.array(["p1", "p1", "p2"])
    labels, folds = np.array([0, 1, 0]), np.array([0, 1, 1])
    base = InnerSplitCache.key(ids, groups, labels, folds, 0, 7, 0, 20)
    assert base == InnerSplitCache.key(ids.copy(), groups.copy(), labels.copy(), folds.copy(), 0, 7, 0, 20)
    variants = [
        InnerSplitCache.key(np.array(["a", "b", "d"]), groups, labels, folds, 0, 7, 0, 20),
        InnerSplitCache.key(ids, np.array(["p1", "p2", "p2"]), labels, folds, 0, 7, 0, 20),
        InnerSplitCache.key(ids, groups, np.array([1, 1, 0]), folds, 0, 7, 0, 20),
        InnerSplitCache.key(ids, groups, labels, np.array([0, 0, 1]), 0, 7, 0, 20),
        InnerSplitCache.key(ids, groups, labels, folds, 1, 7, 0, 20),
        InnerSplitCache.key(ids, groups, labels, folds, 0, 5, 0, 20),
        InnerSplitCache.key(ids, groups, labels, folds, 0, 7, 1, 20),
        InnerSplitCache.key(ids, groups, labels, folds, 0, 7, 0, 10),
        InnerSplitCache.key(np.array(["ab", "", "c"]), groups, labels, folds, 0, 7, 0, 20),  # joining is unambiguous
    ]
    assert len({base, *variants}) == len(variants) + 1


def _table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y, groups = _design(seed, n, 3, 0.5)
    folds = np.zeros(n, dtype=int)
    for f, (_, test) in enumerate(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(np.zeros(n), y, groups)):
        folds[test] = f
    table = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "patient_id": groups, "label": y, "fold": folds})
    x = rng.normal(size=(n, 16)).astype(np.float32) + y[:, None] * 0.5
    return x, table


CARD = {"type": "lightgbm", "seed": 0, "params": {"n_estimators": 50, "num_leaves": 7, "min_data_in_leaf": 5},
        "early_stopping": {"rounds": 10, "inner_fraction": 0.15}}


def test_classify_reuses_the_inner_split_for_another_encoder_of_the_same_manifest(monkeypatch):
    monkeypatch.setattr(classify_module, "INNER_SPLITS", InnerSplitCache())
    cache = classify_module.INNER_SPLITS
    x, table = _table()
    classify(x, table, CARD, [0, 1, 2, 3, 4])
    assert (cache.hits, cache.misses) == (0, 5)
    classify(x[:, ::-1].copy(), table, CARD, [0, 1, 2, 3, 4])  # another encoder, same manifest: every fold reused
    assert (cache.hits, cache.misses) == (5, 5)
    other = table.copy()
    other.loc[0, "patient_id"] = "someone-else"  # a different manifest (one row changed): nothing reused
    classify(x, other, CARD, [0, 1, 2, 3, 4])
    assert (cache.hits, cache.misses) == (5, 10)


def test_cached_split_is_the_split_scikit_learn_makes(monkeypatch):
    monkeypatch.setattr(classify_module, "INNER_SPLITS", InnerSplitCache())
    _, table = _table(seed=3)
    settings = ClassifierSettings.from_card(CARD)
    labels, groups = table["label"].to_numpy(), table["patient_id"].to_numpy()
    train = np.flatnonzero(table["fold"].to_numpy() != 2)
    for _ in range(2):  # made, then from the cache
        fit_rows, valid_rows = _inner_split(train, labels, groups, settings,
                                            (table["image_id"].to_numpy(), table["fold"].to_numpy()), 2)
        ref_fit, ref_valid = next(StratifiedGroupKFold(7, shuffle=True, random_state=0).split(
            np.zeros(len(train)), labels[train], groups[train]))
        np.testing.assert_array_equal(fit_rows, train[ref_fit])
        np.testing.assert_array_equal(valid_rows, train[ref_valid])


def test_machine_threads_and_the_card_override(monkeypatch):
    monkeypatch.setattr(classify_module.os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    assert machine_threads() == 2
    monkeypatch.setattr(classify_module.os, "cpu_count", lambda: 64)  # the host's count is not what we may use
    assert machine_threads() == 2
    assert ClassifierSettings.from_card({**CARD, "num_threads": 3}).num_threads == 3
    assert ClassifierSettings.from_card(CARD).num_threads == 2
