"""runner.metrics (scores, intervals, summary): per-fold AUROC/F1, t-interval and patient cluster-bootstrap CIs."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jsonschema import Draft202012Validator
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score, roc_curve

from runner.metrics import intervals
from runner.metrics.intervals import bootstrap_fold_mean, percentile_interval, t_interval, weighted_auroc
from runner.metrics.scores import MetricsInputError, f1, point_metrics, pooled_roc, roc_points
from runner.metrics.summary import summarize

# Before the other files (tests/conftest.py): ~10 CPU-s of bootstraps and property checks, on one worker.
RUN_EARLY = True

CARD_T = {"threshold": 0.5, "ci": "t-interval", "confidence": 0.95, "bootstrap": {"n": 400, "seed": 0}}
CARD_B = {**CARD_T, "ci": "cluster-bootstrap"}


def make_predictions(n=400, n_patients=250, folds=5, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    patient = rng.integers(0, n_patients, n)
    label = rng.integers(0, 2, n)
    prob = 1 / (1 + np.exp(-(rng.normal(size=n) + shift * (label - 0.5))))
    return pd.DataFrame({
        "image_id": [f"img{i:05d}" for i in range(n)],
        "patient_id": [f"p{p:04d}" for p in patient],
        "label": label,
        "fold": patient % folds,  # patient-grouped folds
        "prob": np.round(prob, 3),  # rounding makes score ties, which AUROC must count as one half
    })


def test_per_fold_metrics_agree_with_sklearn():
    pred = make_predictions()
    out = summarize(pred, CARD_T, eval_folds=[0, 1, 2, 3, 4])
    for entry in out["folds"]:
        rows = pred[pred["fold"] == entry["fold"]]
        assert entry["auroc"] == pytest.approx(roc_auc_score(rows["label"], rows["prob"]))
        assert entry["f1"] == pytest.approx(f1_score(rows["label"], rows["prob"] >= 0.5))
        assert entry["n_test"] == len(rows)
        assert entry["n_train"] == len(pred) - len(rows)
    assert out["auroc"]["per_fold"] == [e["auroc"] for e in out["folds"]]


def test_t_interval_matches_hand_computation():
    pred = make_predictions()
    out = summarize(pred, CARD_T)
    for metric in ("auroc", "f1"):
        x = np.array(out[metric]["per_fold"])
        half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
        assert out[metric]["ci_method"] == "t-interval"
        assert out[metric]["mean"] == pytest.approx(x.mean())
        assert out[metric]["half_width"] == pytest.approx(half)
        assert out[metric]["ci_low"] == pytest.approx(x.mean() - half)
        assert out[metric]["ci_high"] == pytest.approx(x.mean() + half)
    # the other method is always there too
    assert out["ci_alternatives"]["auroc"]["cluster-bootstrap"]["ci_method"] == "cluster-bootstrap"


def test_card_chooses_the_reported_method():
    pred = make_predictions()
    boot = summarize(pred, CARD_B)
    assert boot["auroc"]["ci_method"] == "cluster-bootstrap"
    assert boot["auroc"] == boot["ci_alternatives"]["auroc"]["cluster-bootstrap"]
    assert boot["auroc"]["ci_low"] <= boot["auroc"]["mean"] <= boot["auroc"]["ci_high"]


def test_cluster_bootstrap_is_deterministic_for_a_seed():
    pred = make_predictions()
    a, b = summarize(pred, CARD_B), summarize(pred, CARD_B)
    c = summarize(pred, {**CARD_B, "bootstrap": {"n": 400, "seed": 1}})
    assert a == b
    assert a["auroc"]["ci_low"] != c["auroc"]["ci_low"]


def test_cluster_bootstrap_resamples_patients_not_images():
    """Copying every image of every patient 5 times must not change a patient bootstrap at all;
    an image bootstrap would see 5x the data and shrink the interval."""
    pred = make_predictions(n=300, n_patients=300)
    copies = pd.concat([pred.assign(image_id=pred["image_id"] + f"-{k}") for k in range(5)], ignore_index=True)
    one, five = summarize(pred, CARD_B), summarize(copies, CARD_B)
    for metric in ("auroc", "f1"):
        assert five[metric]["mean"] == pytest.approx(one[metric]["mean"])
        assert five[metric]["ci_low"] == pytest.approx(one[metric]["ci_low"], abs=1e-12)
        assert five[metric]["ci_high"] == pytest.approx(one[metric]["ci_high"], abs=1e-12)


def test_single_class_fold_is_null_with_reason_and_json_has_no_nan():
    pred = make_predictions()
    pred.loc[pred["fold"] == 2, "label"] = 1
    out = summarize(pred, CARD_T)
    fold2 = next(e for e in out["folds"] if e["fold"] == 2)
    assert fold2["auroc"] is None and fold2["f1"] is None and "one class" in fold2["reason"]
    assert out["auroc"]["per_fold"][2] is None
    assert out["auroc"]["mean"] == pytest.approx(np.mean([v for v in out["auroc"]["per_fold"] if v is not None]))
    json.dumps(out, allow_nan=False)


def test_all_folds_single_class_gives_null_metric_with_reason():
    pred = make_predictions().assign(label=0)
    out = summarize(pred, CARD_T)
    assert out["auroc"]["mean"] is None and out["auroc"]["reason"]
    json.dumps(out, allow_nan=False)


def test_holdout_falls_back_to_bootstrap_and_says_so():
    pred = make_predictions(folds=2)
    pred = pred[pred["fold"] == 0]  # a patient holdout: fold 0 is the test set
    out = summarize(pred, CARD_T, eval_folds=[0], n_train={0: 999})
    assert out["folds"][0]["n_train"] == 999
    assert out["auroc"]["ci_method"] == "cluster-bootstrap"
    assert out["auroc"]["ci_low"] is not None
    assert "t-interval" in out["ci_alternatives"]["auroc"]["note"]


def test_bad_input_gets_a_clear_error():
    pred = make_predictions()
    with pytest.raises(MetricsInputError, match="lack column"):
        summarize(pred.drop(columns="prob"), CARD_T)
    with pytest.raises(MetricsInputError, match="finite"):
        summarize(pred.assign(prob=np.nan), CARD_T)
    with pytest.raises(MetricsInputError, match="label must be 0 or 1"):
        summarize(pred.assign(label=2), CARD_T)
    with pytest.raises(MetricsInputError, match="no predictions for evaluated fold"):
        summarize(pred, CARD_T, eval_folds=[7])
    with pytest.raises(MetricsInputError, match="metrics.ci"):
        summarize(pred, {"ci": "wald"})


def test_output_matches_result_schema():
    from registry.schemas import _registry

    metric = Draft202012Validator({"$ref": "result.schema.json#/$defs/metric"}, registry=_registry())
    fold = Draft202012Validator({"$ref": "result.schema.json#/properties/folds"}, registry=_registry())
    pred = make_predictions()
    pred.loc[pred["fold"] == 1, "label"] = 0
    for card in (CARD_T, CARD_B):
        out = summarize(pred, card)
        metric.validate(out["auroc"])
        metric.validate(out["f1"])
        fold.validate(out["folds"])


def test_bootstrap_ci_covers_true_auroc():
    """Binormal scores (d' = 1): true AUROC = Phi(d'/sqrt 2). 95% percentile intervals cover it >= 93% of the time."""
    rng = np.random.default_rng(2024)
    true_auc = stats.norm.cdf(1.0 / np.sqrt(2))
    labels = np.r_[np.ones(100, int), np.zeros(100, int)]
    sims, hits = 500, 0
    for i in range(sims):
        scores = np.r_[rng.normal(1.0, 1, 100), rng.normal(0, 1, 100)]
        reps = bootstrap_fold_mean(labels, np.arange(200), np.zeros(200, int), [scores], 0.5, 300, i)
        low, high, _, _ = percentile_interval(reps["auroc"][0], 0.95, 50)
        hits += low <= true_auc <= high
    assert hits / sims >= 0.93


def test_min_valid_replicates_is_a_card_field_that_decides_whether_a_bootstrap_ci_is_reported():
    """metrics.bootstrap.min_valid_replicates (schema default 50): asking for more computable replicates than the
    bootstrap draws leaves the CI out, saying why; the default reports it."""
    predictions = make_predictions()
    reported = summarize(predictions, CARD_B)["auroc"]
    strict = summarize(predictions, {**CARD_B, "bootstrap": {**CARD_B["bootstrap"], "min_valid_replicates": 401}})
    assert reported["ci_low"] is not None and reported["ci_high"] is not None
    assert strict["auroc"]["ci_low"] is None and "min_valid_replicates" in strict["auroc"]["reason"]
    assert strict["auroc"]["mean"] == reported["mean"]


# --- the numpy metrics against scikit-learn's (runner.metrics.scores says why they are numpy) -------------------------

@st.composite
def labelled_scores(draw, both_classes: bool = True):
    """(labels, scores): often few distinct scores (ties, whole runs of them), sometimes continuous ones."""
    n = draw(st.integers(2, 250))
    labels = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    if both_classes:  # one negative and one positive at drawn places
        negative = draw(st.integers(0, n - 1))
        positive = (negative + draw(st.integers(1, n - 1))) % n
        labels[negative], labels[positive] = 0, 1
    levels = draw(st.integers(1, 12))
    tied = st.integers(0, levels).map(lambda v: v / levels)
    scores = draw(hnp.arrays(np.float64, n, elements=st.one_of(
        tied, st.floats(0, 1, allow_nan=False, allow_infinity=False))))
    return labels, scores


@settings(max_examples=300, deadline=None)
@given(labelled_scores(), st.floats(0, 1))
def test_auroc_f1_and_roc_points_equal_sklearn(data, threshold):
    labels, scores = data
    assert len(np.unique(labels)) == 2
    fpr, tpr, _ = roc_curve(labels, scores)
    ours_fpr, ours_tpr = roc_points(labels, scores)
    assert len(ours_fpr) == len(fpr)
    np.testing.assert_allclose(ours_fpr, fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours_tpr, tpr, rtol=0, atol=1e-12)
    got = point_metrics(labels, scores, threshold)
    assert abs(got["auroc"] - roc_auc_score(labels, scores)) <= 1e-12
    for t in (threshold, 0.5, float(scores[0])):  # a threshold equal to a score: >= counts it as positive
        assert abs(point_metrics(labels, scores, t)["f1"] - f1_score(labels, scores >= t)) <= 1e-12


@settings(max_examples=100, deadline=None)
@given(labelled_scores(both_classes=False))
def test_one_class_inputs_behave_as_with_sklearn(data):
    labels, scores = data
    labels = np.full_like(labels, labels[0])  # all one class
    frame = pd.DataFrame({"label": labels, "prob": scores})
    assert pooled_roc(frame) is None
    with pytest.raises(MetricsInputError, match="only one class"):
        point_metrics(labels, scores, 0.5)
    for t in (0.0, 0.5, 1.1):  # F1 itself is defined (0 with nothing to score), as scikit-learn's zero_division=0
        assert f1(labels, scores >= t) == pytest.approx(f1_score(labels, scores >= t, zero_division=0.0), abs=1e-12)


def test_pooled_roc_equals_sklearn_and_keeps_5000_points():
    rng = np.random.default_rng(3)
    n = 12_000
    frame = pd.DataFrame({"label": rng.integers(0, 2, n), "prob": rng.random(n)})
    fpr, tpr, _ = roc_curve(frame["label"], frame["prob"])
    assert len(fpr) > 5000
    keep = np.unique(np.linspace(0, len(fpr) - 1, 5000).astype(int))
    out = pooled_roc(frame)
    np.testing.assert_allclose(out["fpr"], fpr[keep], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["tpr"], tpr[keep], rtol=0, atol=1e-12)
    small = frame.iloc[:300].assign(prob=lambda f: np.round(f["prob"], 1))  # ties
    fpr, tpr, _ = roc_curve(small["label"], small["prob"])
    assert pooled_roc(small) == {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


# Each metric of a bootstrap replicate, and its reference: scikit-learn's on the resampled set (NaN where undefined).
REPLICATE_METRICS = {
    "auroc": (lambda w, patient, y, s, t: weighted_auroc(w, patient, y, s),
              lambda y, s, t: roc_auc_score(y, s) if len(np.unique(y)) == 2 else np.nan),
    "f1": (lambda w, patient, y, s, t: intervals._weighted_f1(w, patient, y, s >= t),
           lambda y, s, t: f1_score(y, s >= t) if (y == 1).any() else np.nan),  # no positive drawn: undefined
}


@pytest.mark.parametrize("metric", REPLICATE_METRICS)
@settings(max_examples=150, deadline=None)
@given(labelled_scores(), st.integers(0, 2**32 - 1), st.floats(0, 1))
def test_a_bootstrap_replicate_is_sklearns_metric_on_the_resampled_set(metric, data, seed, threshold):
    """A replicate's AUROC and F1 equal scikit-learn's on the data set with each image repeated by its patient's
    draws."""
    labels, scores = data
    ours, reference = REPLICATE_METRICS[metric]
    rng = np.random.default_rng(seed)
    patient = rng.integers(0, max(1, len(labels) // 2), len(labels))
    weights = rng.integers(0, 4, size=(3, int(patient.max()) + 1)).astype(float)
    got = ours(weights, patient, labels, scores, threshold)
    for w, value in zip(weights, got, strict=True):
        repeat = w[patient].astype(int)
        expected = reference(np.repeat(labels, repeat), np.repeat(scores, repeat), threshold)
        assert (np.isnan(value) and np.isnan(expected)) or abs(value - expected) <= 1e-12, (value, expected)


def test_t_critical_value_is_scipy_stats():
    for k in range(2, 40):
        for confidence in (0.8, 0.9, 0.95, 0.99):
            assert t_interval(np.arange(k, dtype=float), confidence)[2] == pytest.approx(
                stats.t.ppf(1 - (1 - confidence) / 2, k - 1), rel=1e-13)


def test_kept_strata_draws_are_the_draws_of_a_fresh_generator():
    """stratum_draws keeps each set of draws for the next call with the same strata: kept or drawn, the same replicates
    as drawing each stratum in turn from one default_rng(seed), whatever the order of calls."""
    intervals._DRAWS.clear()
    sizes = [(7, 300, 5), (300, 7), (7, 300, 5), (1, 40)]
    first = [intervals.stratum_draws(3, 200, s) for s in sizes]
    again = [intervals.stratum_draws(3, 200, s) for s in reversed(sizes)][::-1]
    assert len(intervals._DRAWS) == 3
    for strata, kept, recalled in zip(sizes, first, again, strict=True):
        rng = np.random.default_rng(3)
        for n, a, b in zip(strata, kept, recalled, strict=True):
            fresh = intervals.patient_count_draws(rng, n, 200)
            assert a.dtype == b.dtype == fresh.dtype and a.shape == fresh.shape == (200, n)
            assert np.array_equal(a, fresh) and np.array_equal(b, fresh)
    pred = make_predictions(n=300, seed=4)
    pred.loc[pred["fold"] == 2, "label"] = 1  # a single-class fold draws nothing
    labels, patients, folds, probs = (pred[c].to_numpy() for c in ("label", "patient_id", "fold", "prob"))
    rng, reference = np.random.default_rng(9), np.zeros(300)
    for fold in (0, 1, 3, 4):  # each fold's draws from one generator, in turn
        rows = folds == fold
        patient = np.unique(patients[rows], return_inverse=True)[1]
        weights = intervals.patient_count_draws(rng, int(patient.max()) + 1, 300)
        reference += weighted_auroc(weights, patient, labels[rows], probs[rows]) / 4
    for _ in range(2):  # drawn, then kept
        got = bootstrap_fold_mean(labels, patients, folds, [probs], 0.5, 300, 9)["auroc"][0]
        assert np.array_equal(got, reference, equal_nan=True)
