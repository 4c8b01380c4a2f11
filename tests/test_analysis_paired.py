"""runner.analysis.paired: paired patient bootstrap and tie groups."""

import numpy as np
import pandas as pd
import pytest

from runner.analysis.paired import paired_bootstrap, tie_groups
from runner.metrics.scores import MetricsInputError

CARD = {"threshold": 0.5, "bootstrap": {"n": 300, "seed": 0}}


def predictions(signal, seed=0, n=400, noise_seed=None):
    rng = np.random.default_rng(seed)
    patient = rng.integers(0, 250, n)
    label = rng.integers(0, 2, n)
    noise = np.random.default_rng(noise_seed if noise_seed is not None else seed + 100).normal(size=n)
    return pd.DataFrame({
        "image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{p}" for p in patient], "label": label,
        "fold": patient % 5, "prob": 1 / (1 + np.exp(-(noise + signal * (label - 0.5)))),
    })


def test_better_encoder_has_positive_difference_excluding_zero():
    out = paired_bootstrap(predictions(3.0), predictions(0.5), CARD)
    assert out["auroc"]["diff"] > 0 and out["auroc"]["ci_low"] > 0
    assert out["auroc"]["p"] < 0.05
    assert out["f1"]["a"] > out["f1"]["b"]


def test_same_predictions_have_zero_difference():
    pred = predictions(1.0)
    out = paired_bootstrap(pred, pred, CARD)
    assert out["auroc"]["diff"] == 0 and out["auroc"]["ci_low"] == 0 and out["auroc"]["ci_high"] == 0
    assert out["f1"]["diff"] == 0


def test_different_manifests_are_refused():
    a, b = predictions(1.0), predictions(1.0)
    with pytest.raises(MetricsInputError, match="same manifest"):
        paired_bootstrap(a, b.iloc[:-1], CARD)
    with pytest.raises(MetricsInputError, match="disagree on label"):
        paired_bootstrap(a, b.assign(label=1 - b["label"]), CARD)


def test_tie_groups():
    results = {"strong": predictions(3.0, noise_seed=1), "strong-too": predictions(3.0, noise_seed=2),
               "weak": predictions(0.3, noise_seed=3)}
    for metric in ("auroc", "f1"):
        out = tie_groups(results, alpha=0.05, metric=metric, metrics_card=CARD)
        assert out["alpha"] == 0.05 and out["multiplicity_correction"] == "holm"
        assert out["best"] in ("strong", "strong-too")
        assert "weak" not in out["tied_with_best"]
        assert set(out["tied_with_best"]) == {"strong", "strong-too"}
    with pytest.raises(MetricsInputError, match="at least two"):
        tie_groups({"one": results["weak"]})


def clustered_null(rng, n_patients=60, images=4, folds=5):
    """Two encoders with the same AUROC in the population, several images per patient: each encoder has its own
    patient-level error shared by the patient's images, and a patient's images mostly share the label."""
    patient = np.repeat(np.arange(n_patients), images)
    patient_label = rng.random(n_patients) < 0.5
    label = np.where(rng.random(len(patient)) < 0.9, patient_label[patient], ~patient_label[patient]).astype(int)
    a = label + rng.normal(0, 1.0, n_patients)[patient] + rng.normal(0, 0.5, len(patient))
    b = label + rng.normal(0, 1.0, n_patients)[patient] + rng.normal(0, 0.5, len(patient))
    fold = (rng.permutation(n_patients) % folds)[patient]
    return label, patient.astype(str), fold, a, b


def test_null_rejection_rate_with_correlated_patients():
    """Under the null the tie test rejects at about alpha; image-level DeLong, which the leaderboard used before,
    rejects far more often in the same setting (measured on the 2-core CPU dev machine: 500 simulations here, new
    test 0.047, DeLong 0.24; over 3,000 other simulations see the closing note of issue 14).
    Runs in ~15-25 s on the loaded 2-core dev machine."""
    from runner.analysis.delong import delong_test
    from runner.analysis.paired import compare_with_best

    rng = np.random.default_rng(0)
    n_sim, new, old = 500, 0, 0
    for i in range(n_sim):
        labels, patients, folds, a, b = clustered_null(rng)
        out = compare_with_best(labels, patients, folds, {"a": a, "b": b}, alpha=0.05, metric="auroc",
                                metrics_card={"bootstrap": {"n": 299, "seed": i}})
        new += len(out["tied_with_best"]) == 1
        old += delong_test(labels, a, b).p < 0.05
    assert 0.03 <= new / n_sim <= 0.07, new / n_sim
    assert old / n_sim > 0.1, old / n_sim  # the unclustered test is anti-conservative here: why it was replaced


def test_bootstrap_p_is_never_zero_and_holm():
    from runner.analysis.paired import bootstrap_p, holm

    assert bootstrap_p(np.full(999, 0.2)) == pytest.approx(2 / 1000)  # every replicate above 0: p = 2/(B+1)
    assert bootstrap_p(np.zeros(50)) == 1.0 and bootstrap_p(np.array([np.nan])) is None
    assert bootstrap_p(np.r_[np.full(500, -1.0), np.full(500, 1.0)]) == 1.0
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})  # sorted 0.01, 0.03, 0.04 -> x3, x2, x1, monotone
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def test_the_best_is_the_number_the_table_bolds():
    """One best per row: the tie test's best is the highest fold-mean AUROC, the leaderboard's number (pooled AUROC,
    what the DeLong version ranked by, can disagree with it)."""
    from runner.analysis.paired import tie_groups
    from runner.metrics.summary import summarize

    results = {"x": predictions(1.0, noise_seed=5), "y": predictions(1.05, noise_seed=6),
               "z": predictions(0.9, noise_seed=7)}
    out = tie_groups(results, alpha=0.05, metric="auroc", metrics_card=CARD)
    shown = {e: summarize(p, CARD)["auroc"]["mean"] for e, p in results.items()}
    assert out["best"] == max(shown, key=shown.get)
    for e, value in shown.items():
        assert out["values"][e] == pytest.approx(value, abs=1e-12)
    for c in out["comparisons"].values():
        assert c["p"] >= 1 / (CARD["bootstrap"]["n"] + 1) and c["p_holm"] >= c["p"]


def test_fold_t_test_against_scipy():
    """Naive: scipy's one-sample t-test. Corrected: the same statistic with the variance of the mean (1/k) replaced
    by 1/k + n_test/n_train (Nadeau & Bengio 2003), p from scipy's t distribution with k - 1 df."""
    from scipy import stats

    from runner.analysis.paired import fold_t_test

    d = np.array([0.012, -0.004, 0.020, 0.007, 0.001])
    naive = fold_t_test(d, 1600, 400, corrected=False)
    reference = stats.ttest_1samp(d, 0.0)
    assert naive.t == pytest.approx(reference.statistic, rel=1e-12) and naive.p == pytest.approx(reference.pvalue)
    assert naive.df == 4 and naive.variance_factor == pytest.approx(0.2)
    n_train, n_test = np.array([1599, 1601, 1600, 1600, 1600]), np.array([401, 399, 400, 400, 400])
    corrected = fold_t_test(d, n_train, n_test)
    factor = 1 / 5 + np.mean(n_test / n_train)
    t = d.mean() / np.sqrt(factor * d.var(ddof=1))
    assert corrected.variance_factor == pytest.approx(factor) and corrected.t == pytest.approx(t, rel=1e-12)
    assert corrected.p == pytest.approx(2 * stats.t.sf(abs(t), 4), rel=1e-12)
    assert corrected.p > naive.p  # the correction only widens
    seeds = fold_t_test(np.stack([d + 0.01, d - 0.01]), 1600, 400)  # (seeds, folds): averaged over seeds first
    assert seeds.seeds == 2 and seeds.t == pytest.approx(fold_t_test(d, 1600, 400).t)


def test_fold_t_test_edge_cases():
    from runner.analysis.paired import fold_t_test

    assert fold_t_test(np.zeros(5), 1600, 400).p == 1.0  # identical predictions
    same = fold_t_test(np.full(5, 0.01), 1600, 400)
    assert same.t is None and same.p == 0.0
    for bad, match in (([0.1], "at least two"), ([0.1, np.nan, 0.0], "finite"), (np.zeros((2, 2, 2)), "shape")):
        with pytest.raises(MetricsInputError, match=match):
            fold_t_test(bad, 1600, 400)
    with pytest.raises(MetricsInputError, match="positive"):
        fold_t_test([0.1, 0.2], 0, 400)


def refitted_null(rng, n_patients=200, dim=6, pick=2):
    """Two equally informative encoders whose classifier is refitted per fold, with refit luck: each fold's logistic
    regression uses a random `pick` of the encoder's `dim` columns, and the columns differ in quality (the same
    qualities for both encoders), so how good a fitted model is varies from fit to fit, as LightGBM's column
    subsampling and early stopping make it vary. Patients with 1-3 images mostly sharing the label."""
    from sklearn.linear_model import LogisticRegression

    per_patient = rng.integers(1, 4, n_patients)
    patient = np.repeat(np.arange(n_patients), per_patient)
    patient_label = rng.random(n_patients) < 0.5
    label = np.where(rng.random(len(patient)) < 0.9, patient_label[patient], ~patient_label[patient]).astype(int)
    fold = (rng.permutation(n_patients) % 5)[patient]
    content = 2.0 * label + 0.5 * rng.normal(size=n_patients)[patient] + rng.normal(size=len(patient))
    column_sd = np.geomspace(0.3, 6.0, dim)
    probs = []
    for _ in range(2):
        seen = content + 0.4 * rng.normal(size=n_patients)[patient] + 0.7 * rng.normal(size=len(patient))
        x = seen[:, None] + column_sd * rng.normal(size=(len(patient), dim))
        prob = np.empty(len(patient))
        for f in range(5):
            test = fold == f
            columns = rng.choice(dim, pick, replace=False)
            model = LogisticRegression().fit(x[~test][:, columns], label[~test])
            prob[test] = model.predict_proba(x[test][:, columns])[:, 1]
        probs.append(prob)
    return label, patient.astype(str), fold, probs


def test_fold_t_holds_its_level_with_refits_and_the_fixed_bootstrap_does_not():
    """Under a true null with the classifier refitted per encoder, the fold t-test (`test="fold-t"`) rejects at
    about alpha for AUROC and F1, and today's fixed-prediction bootstrap rejects far more often (it holds the fitted
    models fixed, so the luck of each fit reads as a difference between encoders). Measured with exactly this
    test's simulations (200, 99 bootstrap replicates; 2-core dev box): fold-t 0.050 (AUROC) / 0.045 (F1);
    patient-bootstrap 0.195 / 0.14; the corrected fold t-test 0.010 / 0.005 (it over-corrects when the folds'
    refit luck is independent, as here). The band is 0.05 +- ~2 Monte-Carlo standard errors (n = 200).
    ~20 CPU s: one BLAS thread for the fits (threads spinning on a busy machine made them 10x slower)."""
    from threadpoolctl import threadpool_limits

    from runner.analysis.paired import compare_with_best

    rng = np.random.default_rng(0)
    n_sim = 200
    rejected = {(test, m): 0 for test in ("fold-t", "patient-bootstrap") for m in ("auroc", "f1")}
    for i in range(n_sim):
        with threadpool_limits(1):
            labels, patients, folds, (a, b) = refitted_null(rng)
        for test, metric in rejected:
            out = compare_with_best(labels, patients, folds, {"a": a, "b": b}, 0.05, metric,
                                    {"bootstrap": {"n": 99, "seed": i}}, test=test)
            rejected[test, metric] += len(out["tied_with_best"]) == 1
    rate = {key: count / n_sim for key, count in rejected.items()}
    for metric in ("auroc", "f1"):
        assert 0.02 <= rate["fold-t", metric] <= 0.08, rate
        assert rate["patient-bootstrap", metric] > 0.1, rate  # today's test fails the same check


def test_fold_t_tie_groups_output_and_holdout_fallback():
    results = {"strong": predictions(3.0, noise_seed=1), "strong-too": predictions(3.0, noise_seed=2),
               "weak": predictions(0.3, noise_seed=3)}
    for test in ("fold-t", "corrected-fold-t"):
        out = tie_groups(results, alpha=0.05, metric="auroc", metrics_card=CARD, test=test)
        assert out["test_id"] == test and out["folds"] == 5 and "bootstrap" not in out
        assert "weak" not in out["tied_with_best"]
        weak = out["comparisons"]["weak"]
        assert weak["df"] == 4 and weak["ci_low"] <= weak["diff"] <= weak["ci_high"] and weak["p"] < 0.05
    holdout = {e: p.assign(fold=0) for e, p in results.items()}
    out = tie_groups(holdout, metric="auroc", metrics_card=CARD, test="fold-t")
    assert out["test_id"] == "patient-bootstrap" and out["requested_test"] == "fold-t" and "2" in out["test_reason"]
    with pytest.raises(MetricsInputError, match="tie test"):
        tie_groups(results, test="delong")


def test_per_fold_metric_matches_scikit_learn():
    from sklearn.metrics import f1_score, roc_auc_score

    from runner.analysis.paired import per_fold_metric

    pred = predictions(1.0, n=500)
    pred.loc[pred["fold"] == 2, "label"] = 0  # a one-class fold is left out, as the leaderboard's mean leaves it
    labels, folds, prob = pred["label"].to_numpy(), pred["fold"].to_numpy(), np.round(pred["prob"].to_numpy(), 2)
    used = [f for f in range(5) if f != 2]
    auroc, n_test = per_fold_metric(labels, folds, [prob, 1 - prob], 0.5, "auroc")
    f1, _ = per_fold_metric(labels, folds, [prob], 0.5, "f1")
    assert auroc.shape == (2, 4) and list(n_test) == [int((folds == f).sum()) for f in used]
    for j, f in enumerate(used):
        rows = folds == f
        assert auroc[0, j] == pytest.approx(roc_auc_score(labels[rows], prob[rows]), abs=1e-12)
        assert auroc[1, j] == pytest.approx(1 - auroc[0, j], abs=1e-12)
        assert f1[0, j] == pytest.approx(f1_score(labels[rows], prob[rows] >= 0.5), abs=1e-12)
