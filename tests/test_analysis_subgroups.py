"""runner.analysis.subgroups: AUROC by sex, age band and view; too-small groups refused."""

import json

import numpy as np
import pandas as pd

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
