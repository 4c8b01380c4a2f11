"""runner.analysis.stability: cosine similarity of augmented views to originals."""

import json

import numpy as np
import pytest

from runner.analysis.stability import augmentation_kind, representational_stability
from runner.metrics import MetricsInputError


def test_identical_embeddings_give_cosine_one_and_kinds_by_prefix():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 16))
    views = {"rot-7": x.copy(), "rot+8": 2 * x, "bright+12": x.copy(), "bright-11": x.copy(), "contrast+10": x.copy()}
    out = representational_stability(x, views)
    assert set(out["by_kind"]) == {"rot", "bright", "contrast"}
    assert out["by_kind"]["rot"]["n"] == 100
    assert out["overall"]["mean"] == pytest.approx(1.0)
    assert out["overall"]["p05"] == pytest.approx(1.0)
    json.dumps(out, allow_nan=False)


def test_perturbation_lowers_similarity_and_opposite_gives_minus_one():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8))
    out = representational_stability(x, {"rot-5": x + rng.normal(scale=0.5, size=x.shape), "contrast+10": -x})
    assert 0 < out["by_view"]["rot-5"]["mean"] < 1
    assert out["by_view"]["contrast+10"]["mean"] == pytest.approx(-1.0)


def test_zero_rows_are_excluded_and_counted():
    x = np.ones((5, 3))
    view = x.copy()
    view[0] = 0
    out = representational_stability(x, {"bright+10": view})
    assert out["overall"]["n"] == 4 and out["overall"]["excluded_zero_norm"] == 1
    json.dumps(out, allow_nan=False)


def test_bad_input():
    x = np.ones((5, 3))
    with pytest.raises(MetricsInputError, match="shape"):
        representational_stability(x, {"rot-5": np.ones((4, 3))})
    with pytest.raises(MetricsInputError, match="kind"):
        augmentation_kind("+5")
