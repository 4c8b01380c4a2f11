"""runner.analysis.delong: fast DeLong variance and paired test."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from runner.analysis.delong import delong_auroc, delong_test
from runner.metrics.scores import MetricsInputError


def correlated_scores(rng, n_pos=150, n_neg=150, d_a=1.0, d_b=0.6, rho=0.6):
    labels = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    shared = rng.normal(size=len(labels))
    a = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=len(labels)) + d_a * labels
    b = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=len(labels)) + d_b * labels
    return labels, a, b


def test_auroc_agrees_with_sklearn_including_ties():
    rng = np.random.default_rng(0)
    labels, a, b = correlated_scores(rng)
    a, b = np.round(a, 1), np.round(b, 1)  # many ties
    res = delong_test(labels, a, b)
    assert res.auc_a == pytest.approx(roc_auc_score(labels, a))
    assert res.auc_b == pytest.approx(roc_auc_score(labels, b))
    assert res.diff == pytest.approx(res.auc_a - res.auc_b)
    assert delong_auroc(labels, a).auroc == pytest.approx(roc_auc_score(labels, a))


def test_standard_errors_agree_with_bootstrap():
    rng = np.random.default_rng(1)
    labels, a, b = correlated_scores(rng)
    res, single = delong_test(labels, a, b), delong_auroc(labels, a)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    diffs, aucs = [], []
    for _ in range(300):  # stratified bootstrap, as DeLong conditions on the class sizes
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        auc_a = roc_auc_score(labels[idx], a[idx])
        aucs.append(auc_a)
        diffs.append(auc_a - roc_auc_score(labels[idx], b[idx]))
    assert res.se == pytest.approx(np.std(diffs), rel=0.15)
    assert single.se == pytest.approx(np.std(aucs), rel=0.15)
    assert res.ci_low < res.diff < res.ci_high
    assert res.p < 0.05  # d' 1.0 vs 0.6 on 300 images is a real difference


def test_p_values_uniform_under_the_null():
    rng = np.random.default_rng(2)
    p = [delong_test(*correlated_scores(rng, 60, 60, d_a=0.8, d_b=0.8)).p for _ in range(200)]
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.01 <= np.mean(np.array(p) < 0.05) <= 0.10


def test_identical_scores_give_p_one():
    rng = np.random.default_rng(3)
    labels, a, _ = correlated_scores(rng)
    res = delong_test(labels, a, a)
    assert res.diff == 0 and res.se == 0 and res.p == 1.0 and res.z is None


def test_bad_input():
    with pytest.raises(MetricsInputError, match="both classes"):
        delong_auroc(np.ones(10, int), np.arange(10.0))
    with pytest.raises(MetricsInputError, match="scores for"):
        delong_test(np.r_[0, 1, 0, 1], np.arange(4.0), np.arange(3.0))
