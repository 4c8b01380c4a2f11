"""runner.analysis.label_efficiency: one point per size; class-balanced training subsamples."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from runner.analysis.label_efficiency import label_efficiency, plot_label_efficiency


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 6))
    x[:, 0] += 1.5 * y
    return x, pd.DataFrame({"label": y, "fold": np.arange(n) % 3, "patient_id": [f"p{i}" for i in range(n)]})


def test_one_point_per_size_and_balanced_training(tmp_path):
    x, manifest = data()
    seen = []

    def fit_predict(train_x, train_y, test_x, params):
        seen.append((int(train_y.sum()), int((train_y == 0).sum()), len(test_x)))
        return test_x[:, 0]

    out = label_efficiency(x, manifest, sizes=[10, 25, 50], seeds=[0, 1], fit_predict=fit_predict)
    assert [p["positives_per_class"] for p in out["points"]] == [10, 25, 50]
    assert all(p["n_runs"] == 6 for p in out["points"])  # 2 seeds x 3 folds
    assert all(pos == neg for pos, neg, _ in seen)
    assert {n_test for _, _, n_test in seen} == {100}  # the test fold is untouched
    assert all(p["mean_auroc"] > 0.7 and p["sd_auroc"] is not None for p in out["points"])
    json.dumps(out, allow_nan=False)
    png = plot_label_efficiency({"enc": out}, tmp_path / "le.png")
    assert Path(png).read_bytes()[:4] == b"\x89PNG"


def test_size_larger_than_training_set_is_skipped_with_reason():
    x, manifest = data()
    out = label_efficiency(x, manifest, sizes=[5, 1000], seeds=[0], params={"n_estimators": 10})
    big = out["points"][1]
    assert big["n_runs"] == 0 and big["mean_auroc"] is None and "needs 1000" in big["reason"]
    assert out["points"][0]["n_runs"] == 3
    json.dumps(out, allow_nan=False)
