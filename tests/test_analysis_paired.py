"""runner.analysis.paired: paired patient bootstrap and tie groups."""

import numpy as np
import pandas as pd
import pytest

from runner.analysis.paired import paired_bootstrap, tie_groups
from runner.metrics import MetricsInputError

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
        assert out["alpha"] == 0.05 and out["multiplicity_correction"] == "none"
        assert out["best"] in ("strong", "strong-too")
        assert "weak" not in out["tied_with_best"]
        assert set(out["tied_with_best"]) == {"strong", "strong-too"}
    with pytest.raises(MetricsInputError, match="at least two"):
        tie_groups({"one": results["weak"]})
