"""runner.analysis.stability: cosine similarity of augmented views to originals."""

import json

import numpy as np
import pytest

from runner.analysis.stability import augmentation_kind, representational_stability
from runner.metrics.scores import MetricsInputError


def test_identical_embeddings_give_cosine_one_and_kinds_by_prefix():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 16))
    views = {"rot-7": x.copy(), "rot+8": x.copy(), "bright+12": x.copy(), "bright-11": x.copy(), "contrast+10": x.copy()}
    out = representational_stability(x, views)
    assert set(out["by_kind"]) == {"rot", "bright", "contrast"}
    assert out["by_kind"]["rot"]["n"] == 100
    assert out["overall"]["mean"] == pytest.approx(1.0)
    assert out["overall"]["p05"] == pytest.approx(1.0)
    json.dumps(out, allow_nan=False)


def test_perturbation_lowers_similarity_and_opposite_gives_minus_one():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8))
    x = x - x.mean(axis=0)  # centred already, so the opposite view is exactly -1 after centring
    out = representational_stability(x, {"rot-5": x + rng.normal(scale=0.5, size=x.shape), "contrast+10": -x})
    assert 0 < out["by_view"]["rot-5"]["mean"] < 1
    assert out["by_view"]["contrast+10"]["mean"] == pytest.approx(-1.0)


def test_zero_rows_are_excluded_and_counted():
    x = np.arange(15.0).reshape(5, 3) ** 2
    view = x.copy()
    view[0] = x.mean(axis=0)  # zero after centring
    out = representational_stability(x, {"bright+10": view})
    assert out["overall"]["n"] == 4 and out["overall"]["excluded_zero_norm"] == 1
    json.dumps(out, allow_nan=False)


def test_bad_input():
    x = np.ones((5, 3))
    with pytest.raises(MetricsInputError, match="shape"):
        representational_stability(x, {"rot-5": np.ones((4, 3))})
    with pytest.raises(MetricsInputError, match="kind"):
        augmentation_kind("+5")


def test_a_constant_offset_does_not_change_the_score():
    """Adding one vector to every embedding (original and views) pushed the raw cosine towards 1; centred, it is equal."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 12))
    views = {"rot-5": x + rng.normal(scale=0.7, size=x.shape), "bright+10": x + rng.normal(scale=0.3, size=x.shape)}
    offset = np.full(12, 25.0)
    plain = representational_stability(x, views)
    shifted = representational_stability(x + offset, {k: v + offset for k, v in views.items()})
    for key in ("overall", "different_images", "normalised"):
        assert shifted[key]["mean"] == pytest.approx(plain[key]["mean"], abs=1e-9)
    assert plain["overall"]["mean"] < 0.95  # the raw cosine with the offset would be ~1 for every image
    raw = np.einsum("ij,ij->i", x + offset, views["rot-5"] + offset) / (
        np.linalg.norm(x + offset, axis=1) * np.linalg.norm(views["rot-5"] + offset, axis=1))
    assert raw.mean() > 0.99


def test_reference_pairs_come_from_different_patients():
    from runner.analysis.stability import different_patient_pairs

    patients = np.repeat(np.arange(20), 5)  # five images per patient
    rows, partners = different_patient_pairs(patients, seed=0)
    assert len(rows) == 100 and (patients[rows] != patients[partners]).all()
    # a patient's own images are near-copies: pairing them would inflate the reference; other patients' are not
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 8))[patients] + rng.normal(scale=0.05, size=(100, 8))
    out = representational_stability(x, {"rot-5": x}, patients=patients)
    assert out["different_images"]["mean"] < 0.5
    assert out["normalised"]["mean"] == pytest.approx(1.0)
    single = different_patient_pairs(np.zeros(4))
    assert len(single[0]) == 0  # one patient only: no reference pair, none invented
