"""Frozen manifest: canonical content hash, write/read round trip, tamper detection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from runner.sample.manifest import (
    COLUMNS,
    ManifestError,
    canonical_frame,
    content_sha256,
    pinned_fields,
    read_manifest,
    write_manifest,
)
from runner.sample.sampler import Exclusion, FilterStep, SampleResult


def _frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "image_id": [f"img{i:03d}" for i in range(n)], "patient_id": [f"p{i // 3}" for i in range(n)],
        "study_id": [f"s{i // 2}" for i in range(n)], "path": [f"files/img{i:03d}.dcm" for i in range(n)],
        "view": ["PA"] * n, "label": rng.integers(0, 2, n), "fold": rng.integers(0, 5, n),
        "sex": ["M", "F", None, "F"] * (n // 4), "age": [61.0, np.nan, 33.5, 70.0] * (n // 4)})


def _result(frame: pd.DataFrame) -> SampleResult:
    return SampleResult("t-demo", "demo-cxr", frame, {"method": "stratified-group-kfold", "folds": 5, "seed": 0},
                        [0, 1, 2, 3, 4], 0, "decode", [FilterStep("label policy", 20, 20)],
                        [Exclusion("bad1", "files/bad1.dcm", "truncated", 1, "ends early")], {"metadata": ["m.csv"]},
                        True, label="effusion")


def test_hash_ignores_row_and_column_order_and_dtypes():
    frame = _frame()
    shuffled = frame.sample(frac=1, random_state=3)[list(reversed(frame.columns))]
    recast = frame.assign(label=frame["label"].astype("int32"), fold=frame["fold"].astype(float))
    assert content_sha256(frame, {}) == content_sha256(shuffled, {}) == content_sha256(recast, {})
    assert list(canonical_frame(shuffled).columns) == COLUMNS + ["sex", "age"]


@pytest.mark.parametrize("column, value", [("label", None), ("fold", None), ("path", "files/other.dcm"),
                                           ("age", 62.0), ("patient_id", "p99")])
def test_any_content_change_changes_the_hash(column, value):
    frame = _frame()
    changed = frame.copy()
    changed.loc[0, column] = (1 - frame.loc[0, column]) if value is None else value
    assert content_sha256(changed, {}) != content_sha256(frame, {})


def test_round_trip_and_json_has_no_nan(tmp_path):
    written = write_manifest(tmp_path, _result(_frame()), "cafe")
    read = read_manifest(tmp_path)
    assert read.meta["sha256"] == written.meta["sha256"] == content_sha256(_frame(), pinned_fields(written.meta))
    pd.testing.assert_frame_equal(read.frame, written.frame)
    text = (tmp_path / "manifest.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    meta = json.loads(text)
    assert meta["counts"]["excluded"] == 1 and meta["exclusions"][0]["reason"] == "truncated"
    assert meta["task_sha256"] == "cafe" and meta["eval_folds"] == [0, 1, 2, 3, 4] and meta["synthetic"] is True
    assert (tmp_path / "exclusions.csv").read_text().splitlines()[1].startswith("bad1,files/bad1.dcm,truncated")


@pytest.mark.parametrize(("key", "value"), [("eval_folds", [0]), ("task_id", "edema-demo"), ("label", "edema"), ("task_sha256", "beef"),
                                          ("dataset_id", "nih-cxr14"), ("split", {"method": "group-holdout"})])
def test_the_hash_pins_what_the_sample_is_for(tmp_path, key, value):
    """Cherry-picked folds, another task's or label's manifest: an edited pinned field no longer hashes to sha256."""
    write_manifest(tmp_path, _result(_frame()), "cafe")
    meta = json.loads((tmp_path / "manifest.json").read_text())
    assert meta[key] != value
    meta[key] = value
    (tmp_path / "manifest.json").write_text(json.dumps(meta))
    with pytest.raises(ManifestError, match="pinned fields"):
        read_manifest(tmp_path)


def test_a_manifest_json_that_is_not_an_object_is_refused(tmp_path):
    write_manifest(tmp_path, _result(_frame()), "cafe")
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ManifestError, match="JSON list"):
        read_manifest(tmp_path)


def test_tampered_or_missing_manifest_is_refused(tmp_path):
    write_manifest(tmp_path, _result(_frame()), "cafe")
    frame = pd.read_parquet(tmp_path / "manifest.parquet")
    frame.loc[0, "label"] = 1 - frame.loc[0, "label"]
    frame.to_parquet(tmp_path / "manifest.parquet", index=False)
    with pytest.raises(ManifestError, match="changed after sampling"):
        read_manifest(tmp_path)
    with pytest.raises(ManifestError, match="runner sample"):
        read_manifest(tmp_path / "nothing-here")


def test_missing_contract_column_is_refused():
    with pytest.raises(ManifestError, match="fold"):
        content_sha256(_frame().drop(columns="fold"), {})
