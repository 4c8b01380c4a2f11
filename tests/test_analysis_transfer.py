"""runner.analysis.transfer: cross-dataset transfer end to end."""

import json

import numpy as np
import pytest

from runner.analysis.transfer import cross_dataset_transfer
from runner.metrics.scores import MetricsInputError

METRICS = {"bootstrap": {"n": 200, "seed": 0}}


def separable(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8)) + shift
    x[:, 0] += 4 * y
    return x, y


def test_transfer_end_to_end_with_lightgbm():
    train_x, train_y = separable(300, 0)
    test_x, test_y = separable(200, 1, shift=0.2)  # a mild domain shift
    out = cross_dataset_transfer(train_x, train_y, test_x, test_y, test_patients=np.arange(200) // 2,
                                 params={"n_estimators": 30}, metrics_card=METRICS)
    assert out["auroc"]["value"] > 0.9
    assert out["auroc"]["ci_low"] <= out["auroc"]["value"] <= out["auroc"]["ci_high"]
    assert out["ci_method"].startswith("cluster-bootstrap")
    json.dumps(out, allow_nan=False)


def test_custom_fit_predict_and_checks():
    train_x, train_y = separable(100, 0)
    test_x, test_y = separable(100, 1)
    out = cross_dataset_transfer(train_x, train_y, test_x, test_y,
                                 fit_predict=lambda tx, ty, sx, p: 1 / (1 + np.exp(-(sx[:, 0] - 2))),
                                 metrics_card=METRICS)
    assert out["auroc"]["value"] > 0.9 and out["ci_method"] == "bootstrap (images)"
    with pytest.raises(MetricsInputError, match="differ in size"):
        cross_dataset_transfer(train_x, train_y, test_x[:, :4], test_y)
    with pytest.raises(MetricsInputError, match="one class"):
        cross_dataset_transfer(train_x, np.zeros(100, int), test_x, test_y)
