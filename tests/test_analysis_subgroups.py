"""runner.analysis.subgroups: AUROC by sex, age band and view; too-small groups refused."""

import json

import numpy as np
import pandas as pd
import pytest

from runner.analysis.subgroups import subgroup_auroc

METRICS = {"bootstrap": {"n": 200, "seed": 0}}


def predictions(n=600, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    sex = rng.choice(["M", "F"], n)
    # women get a stronger signal, so the gap is on sex
    signal = np.where(sex == "F", 3.0, 0.5)
    return pd.DataFrame({
        "image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)], "label": label,
        "fold": (np.arange(n) // 2) % 5, "prob": 1 / (1 + np.exp(-(rng.normal(size=n) + signal * (label - 0.5)))),
        "sex": sex, "age": rng.uniform(20, 95, n), "view": rng.choice(["PA", "AP"], n, p=[0.97, 0.03]),
    })


def test_groups_below_minimum_are_not_computed():
    out = subgroup_auroc(predictions(), {"min_per_class": 25, "age_bands": [0, 40, 60, 80, 200]}, METRICS)
    ap = out["attributes"]["view"]["groups"]["AP"]
    assert ap["status"] == "too-small" and ap["min"] == 25 and ap["n_pos"] < 25 or ap["n_neg"] < 25
    assert "auroc" not in ap
    assert out["attributes"]["view"]["largest_gap"] is None  # only PA computed
    pa = out["attributes"]["view"]["groups"]["PA"]
    assert pa["status"] == "computed" and pa["ci_low"] <= pa["auroc"] <= pa["ci_high"]
    json.dumps(out, allow_nan=False)


def test_age_bands_and_largest_gap():
    pred = predictions()
    pred.loc[:9, "age"] = np.nan
    out = subgroup_auroc(pred, {"min_per_class": 10, "age_bands": [0, 40, 60, 80, 200]}, METRICS)
    age = out["attributes"]["age"]
    assert set(age["groups"]) <= {"0-40", "40-60", "60-80", "80-200"}
    assert age["missing"] == 10
    assert sum(g["n_pos"] + g["n_neg"] for g in age["groups"].values()) == len(pred) - 10
    gap = out["attributes"]["sex"]["largest_gap"]
    assert gap["between"] == ["F", "M"] and gap["auroc_diff"] > 0.1


def test_missing_attribute_is_listed():
    out = subgroup_auroc(predictions().drop(columns=["view"]), {"min_per_class": 10}, METRICS)
    assert out["not_available"] == ["view"]


def test_subset_auroc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    from runner.metrics.intervals import subset_auroc

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    for scores in (rng.normal(size=300) + labels, np.round(rng.normal(size=300) + labels, 1)):  # no ties, ties
        member = rng.random((40, 300)) < 0.3
        expected = [roc_auc_score(labels[m], scores[m]) for m in member]
        assert np.allclose(subset_auroc(member, labels, scores), expected, atol=1e-12)


def test_gap_interval_is_the_bootstrap_of_resampled_patients():
    """Reference: each replicate rebuilt by hand (every image of a patient repeated as often as the patient was
    drawn, the same draws as the function's) and scored with scikit-learn."""
    from sklearn.metrics import roc_auc_score

    from runner.analysis.subgroups import gap_interval
    from runner.metrics.intervals import patient_count_draws

    pred = predictions(300, seed=3)
    labels, probs = pred["label"].to_numpy(), pred["prob"].to_numpy()
    patient_ids, patient = np.unique(pred["patient_id"].to_numpy(), return_inverse=True)
    hi, lo = (pred["sex"] == "F").to_numpy(), (pred["sex"] == "M").to_numpy()
    low, high, n_valid, reason = gap_interval(labels, pred["patient_id"].to_numpy(), probs, hi, lo, 0.9, 200, 5, 50)
    weights = patient_count_draws(np.random.default_rng(5), len(patient_ids), 200)
    diffs = []
    for w in weights:
        repeat = w[patient].astype(int)
        auc = [roc_auc_score(np.repeat(labels[g], repeat[g]), np.repeat(probs[g], repeat[g])) for g in (hi, lo)]
        diffs.append(auc[0] - auc[1])
    assert reason is None and n_valid == 200
    assert (low, high) == pytest.approx(tuple(np.quantile(diffs, [0.05, 0.95])), abs=1e-12)


def test_permutation_keeps_labels_groups_and_patients_together():
    from runner.analysis.subgroups import _donor_rows

    pred = predictions(400, seed=4)
    pred.loc[[5, 6], "sex"] = None  # missing: never a donor, never permuted
    labels, patients = pred["label"].to_numpy(), pred["patient_id"].to_numpy()
    keep = pred["sex"].notna().to_numpy()
    folds = pred["fold"].to_numpy()
    donors = _donor_rows(labels, patients, keep, n_perm=50, seed=0, folds=folds)
    sex = pred["sex"].to_numpy(dtype=object)
    assert (donors[:, ~keep] == np.flatnonzero(~keep)).all()
    moved = 0
    for row in donors:
        assert (labels[row] == labels).all()  # a donor row has the receiver's label: group x class counts kept
        assert (folds[row] == folds).all()  # and the receiver's test fold
        permuted = sex[row]
        assert pd.crosstab(permuted[keep], labels[keep]).equals(pd.crosstab(sex[keep], labels[keep]))
        donor_patient = pd.Series(patients[row][keep]).groupby(patients[keep]).nunique()
        assert (donor_patient == 1).all()  # a patient's images take one donor patient's attributes
        moved += int((row != np.arange(len(row))).sum())
    assert moved > 0


def clustered_null_predictions(rng, n_patients=150):
    """Scores that do not depend on sex; patients with 1-5 images sharing a patient effect."""
    per_patient = rng.integers(1, 6, n_patients)
    patient = np.repeat(np.arange(n_patients), per_patient)
    patient_label = rng.random(n_patients) < 0.5  # a patient's images mostly share the label
    label = np.where(rng.random(len(patient)) < 0.9, patient_label[patient], ~patient_label[patient]).astype(int)
    score = label + rng.normal(0, 1.0, n_patients)[patient] + rng.normal(0, 0.7, len(patient))
    sex = rng.choice(["F", "M"], n_patients)[patient]
    return label, patient.astype(str), score, sex


def test_null_reference_rejects_at_alpha_when_no_group_differs():
    """The permutation null holds its level with clustered patients (300 simulations, 199 permutations each:
    measured 0.053 on the 2-core dev box); the same test permuting images instead of patients (every image its own
    patient) rejects far more often (measured 0.19), since a patient's images share an effect and a label, so a
    group's AUROC varies more than that of random images: the check can fail. ~5 s on the loaded dev box."""
    from runner.analysis.subgroups import gap_null_reference

    rng = np.random.default_rng(1)
    n_sim, by_patient, by_image = 300, 0, 0
    for i in range(n_sim):
        label, patient, score, sex = clustered_null_predictions(rng)
        out = gap_null_reference(label, patient, score, sex, ["F", "M"], 199, i)
        assert 0 < out["p"] <= 1 and out["null_q95"] >= 0 and out["n"] == 199
        by_patient += out["p"] < 0.05
        images = np.arange(len(label)).astype(str)
        by_image += gap_null_reference(label, images, score, sex, ["F", "M"], 199, i)["p"] < 0.05
    assert 0.025 <= by_patient / n_sim <= 0.085, by_patient / n_sim  # MC band around 0.05 (n = 300)
    assert by_image / n_sim > 0.1, by_image / n_sim
