"""LightGBM on frozen embeddings: out-of-fold predictions, determinism, augmented rows, early stopping, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from runner.classify import fit_processes
from runner.classify.out_of_fold import ClassifyError, classify
from tests.support import classifier_card, data

CARD = classifier_card()  # the registry tasks' classifier block, on one thread


def test_out_of_fold_predictions_cover_every_image_once_and_separate_classes():
    from sklearn.metrics import roc_auc_score

    x, table = data()
    out = classify(x, table, CARD, [0, 1, 2, 3, 4])
    p = out.predictions
    assert list(p.columns) == ["image_id", "patient_id", "label", "fold", "prob"]
    assert sorted(p["image_id"]) == sorted(table["image_id"])
    merged = p.merge(table, on="image_id", suffixes=("", "_t"))
    assert (merged["fold"] == merged["fold_t"]).all() and (merged["label"] == merged["label_t"]).all()
    assert p["prob"].between(0, 1).all() and np.isfinite(p["prob"]).all()
    assert roc_auc_score(p["label"], p["prob"]) > 0.9
    assert [f.n_train + f.n_test for f in out.folds] == [len(table)] * 5


def test_results_are_deterministic():
    x, table = data()
    a = classify(x, table, CARD, [0, 1, 2, 3, 4]).predictions
    b = classify(x, table, CARD, [0, 1, 2, 3, 4]).predictions
    pd.testing.assert_frame_equal(a, b)


def test_predictions_do_not_depend_on_the_thread_count(monkeypatch):
    """deterministic=True: num_threads 1, 2 and 3 give the same bytes (docs/reliability.md relies on this)."""
    monkeypatch.setattr(fit_processes, "MIN_THREADED_CELLS", 0)  # these small fits too run on the card's threads
    x, table = data(n=300, dim=24)
    one = classify(x, table, CARD, [0, 1, 2, 3, 4]).predictions
    for threads in (2, 3):
        pd.testing.assert_frame_equal(classify(x, table, {**CARD, "num_threads": threads}, [0, 1, 2, 3, 4]).predictions,
                                      one)


def test_a_fit_too_small_to_share_runs_on_one_thread(monkeypatch):
    """MIN_THREADED_CELLS: below it a fit gets one LightGBM thread whatever the card allows; above it, the card's."""
    threads, fit_one = [], fit_processes.fit_one
    monkeypatch.setattr(fit_processes, "fit_one", lambda job: threads.append(job.params["num_threads"]) or fit_one(job))
    x, table = data(n=300, dim=24)  # ~5,800 binned cells per fold
    small = classify(x, table, {**CARD, "num_threads": 2}, [0, 1]).predictions
    assert threads == [1, 1]
    monkeypatch.setattr(fit_processes, "MIN_THREADED_CELLS", 0)
    threads.clear()
    pd.testing.assert_frame_equal(classify(x, table, {**CARD, "num_threads": 2}, [0, 1]).predictions, small)
    assert threads == [2, 2]


def test_no_signal_gives_chance_auroc():
    from sklearn.metrics import roc_auc_score

    x, table = data(n=400, signal=0.0, seed=3)
    p = classify(x, table, CARD, [0, 1, 2, 3, 4]).predictions
    assert abs(roc_auc_score(p["label"], p["prob"]) - 0.5) < 0.12


def test_holdout_predicts_only_the_evaluated_fold():
    x, table = data()
    table["fold"] = (table["fold"] == 0).map({True: 0, False: 1})  # 0 = test, 1 = train
    out = classify(x, table, CARD, [0])
    assert set(out.predictions["fold"]) == {0} and len(out.predictions) == int((table["fold"] == 0).sum())


def test_augmented_views_are_training_rows_only_when_the_card_asks():
    x, table = data()
    views = {f"v{k}": x + 0.01 * k for k in range(1, 6)}
    plain = classify(x, table, CARD, [0], augmented=views)
    assert plain.folds[0].n_train_rows <= plain.folds[0].n_train
    card = {**CARD, "augmented_training_rows": True, "early_stopping": None}
    aug = classify(x, table, card, [0], augmented=views)
    assert aug.folds[0].n_train_rows == 6 * aug.folds[0].n_train
    assert len(aug.predictions) == int((table["fold"] == 0).sum())  # test rows are originals only
    stopped = classify(x, table, {**CARD, "augmented_training_rows": True}, [0], augmented=views)
    # the inner validation images leave the fit set together with all their views
    assert stopped.folds[0].n_train_rows % 6 == 0 and stopped.folds[0].n_train_rows < 6 * stopped.folds[0].n_train


def test_early_stopping_off_grows_exactly_n_estimators():
    x, table = data()
    out = classify(x, table, {**CARD, "early_stopping": None, "params": {"n_estimators": 37}}, [0, 1])
    assert [f.n_trees for f in out.folds] == [37, 37]
    stopped = classify(x, table, {**CARD, "params": {"n_estimators": 2000}}, [0, 1])
    assert all(f.n_trees < 2000 for f in stopped.folds)


@pytest.mark.parametrize("problem", ["nan", "shape", "label", "type"])
def test_bad_input_is_a_clear_error(problem):
    x, table = data()
    card = dict(CARD)
    if problem == "nan":
        x[3, 2] = np.nan
    elif problem == "shape":
        x = x[:-1]
    elif problem == "label":
        table.loc[0, "label"] = 2
    else:
        card["type"] = "xgboost"
    with pytest.raises(ClassifyError):
        classify(x, table, card, [0])


def test_min_inner_rows_is_a_card_field_that_decides_whether_a_fold_stops_early():
    """classifier.early_stopping.min_inner_rows (schema default 20): an inner-validation set smaller than it grows
    params.n_estimators trees; below it, early stopping chooses fewer."""
    x, table = data(signal=0.8)
    stopping = CARD["early_stopping"]
    early = classify(x, table, CARD, [0, 1])
    never = classify(x, table, {**CARD, "early_stopping": {**stopping, "min_inner_rows": 100000}}, [0, 1])
    assert [f.n_trees for f in never.folds] == [CARD["params"]["n_estimators"]] * 2
    assert all(f.n_trees < CARD["params"]["n_estimators"] for f in early.folds)
