"""MIMIC-CXR reader and sampling on a generated MIMIC-shaped metadata + CheXpert + split set."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from registry.cards import load_registry
from runner.data import DataError, read_index
from runner.sample.manifest import write_manifest
from runner.sample.sampler import SamplingError, sample_task

_spec = importlib.util.spec_from_file_location(
    "bench_sampling", Path(__file__).resolve().parent.parent / "benchmarks" / "bench_sampling.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def reg():
    return load_registry()


@pytest.fixture(scope="module")
def mimic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mimic")
    bench.write_mimic_shaped(root, 8000, seed=1)
    return root


@pytest.fixture(scope="module")
def card(reg):
    return reg.datasets["mimic-cxr"].data


def small(task: dict, n: int = 300, **changes) -> dict:
    task = copy.deepcopy(task)
    task["sampling"].update(positives=n, negatives=n)
    task.update(changes)
    return task


def test_labels_are_per_study_and_paths_follow_the_scheme(card, mimic_root):
    index = read_index(card, mimic_root, ["effusion", "no_finding"])
    frame = index.frame
    assert len(frame) == 8000 and frame["image_id"].is_unique
    labels = pd.read_csv(mimic_root / "mimic-cxr-2.0.0-chexpert.csv.gz", dtype=str)
    expected = labels.set_index(["subject_id", "study_id"])["Pleural Effusion"].astype(float)
    joined = pd.MultiIndex.from_arrays([frame["patient_id"], frame["study_id"]])
    pd.testing.assert_series_equal(frame["effusion"].reset_index(drop=True),
                                   expected.reindex(joined).reset_index(drop=True), check_names=False)
    assert set(frame["effusion"].dropna().unique()) == {1.0, 0.0, -1.0} and frame["effusion"].isna().any()
    first = frame.iloc[0]
    assert first["path"] == (f"files/p{first['patient_id'][:2]}/p{first['patient_id']}/s{first['study_id']}/"
                             f"{first['image_id']}.dcm")
    assert index.sources["metadata"][0].endswith(".csv.gz")
    assert set(frame["source_split"]) == {"train", "validate", "test"}


def test_exact_counts_frontal_only_patient_wise_folds(reg, card, mimic_root):
    result = sample_task(small(reg.tasks["effusion-mimic"].data), card, mimic_root, verify="none")
    frame = result.frame
    assert (frame["label"] == 1).sum() == 300 and (frame["label"] == 0).sum() == 300
    assert set(frame["view"]) == {"PA", "AP"}
    assert (frame.groupby("patient_id")["fold"].nunique() == 1).all()
    assert result.eval_folds == [0, 1, 2, 3, 4]


def test_same_seed_is_byte_identical_and_another_seed_differs(reg, card, mimic_root, tmp_path):
    task = small(reg.tasks["edema-mimic"].data)
    one = write_manifest(tmp_path / "a", sample_task(task, card, mimic_root, verify="none"), "t")
    two = write_manifest(tmp_path / "b", sample_task(task, card, mimic_root, verify="none"), "t")
    other = write_manifest(tmp_path / "c", sample_task(task, card, mimic_root, verify="none", seed=1), "t")
    assert (tmp_path / "a" / "manifest.parquet").read_bytes() == (tmp_path / "b" / "manifest.parquet").read_bytes()
    assert one.meta["sha256"] == two.meta["sha256"] != other.meta["sha256"]
    assert set(one.frame["image_id"]) != set(other.frame["image_id"])


def test_uncertain_and_no_finding_policies(reg, card, mimic_root):
    base = reg.tasks["atelectasis-mimic"].data
    ignore = sample_task(small(base, 50), card, mimic_root, verify="none")
    ones = copy.deepcopy(base)
    ones["label_policy"]["uncertain"] = "positive"
    ones = sample_task(small(ones, 50), card, mimic_root, verify="none")
    assert ones.steps[1].positives > ignore.steps[1].positives  # -1 now counts as positive

    no_finding = copy.deepcopy(base)
    no_finding["label_policy"]["negative_requires"] = "no_finding"
    result = sample_task(small(no_finding, 50), card, mimic_root, verify="none")
    index = read_index(card, mimic_root, ["no_finding"]).frame.set_index("image_id")
    negatives = result.frame.loc[result.frame["label"] == 0, "image_id"]
    assert (index.loc[negatives, "no_finding"] == 1.0).all()
    assert result.steps[1].negatives < ignore.steps[1].negatives


def test_not_enough_candidates_says_how_many_remain_after_each_filter(reg, card, mimic_root):
    with pytest.raises(SamplingError) as caught:
        sample_task(small(reg.tasks["effusion-mimic"].data, 5000), card, mimic_root, verify="none")
    message = str(caught.value)
    for step in ("indexed (effusion = 1 / 0)", "label policy", "view in PA/AP"):
        assert step in message
    assert "5,000 positives" in message


def test_missing_label_file_and_column_are_named(card, mimic_root, tmp_path):
    (tmp_path / "mimic-cxr-2.0.0-metadata.csv").write_bytes(
        pd.read_csv(mimic_root / "mimic-cxr-2.0.0-metadata.csv.gz").head(20).to_csv(index=False).encode())
    with pytest.raises(DataError, match=r"labels table not found.*mimic-cxr-2\.0\.0-chexpert\.csv.*physionet"):
        read_index(card, tmp_path, ["effusion"])
    (tmp_path / "mimic-cxr-2.0.0-chexpert.csv").write_text("subject_id,study_id,Edema\n1,2,1.0\n")
    with pytest.raises(DataError, match="'Pleural Effusion'"):
        read_index(card, tmp_path, ["effusion"])


def test_repeated_study_rows_in_the_label_file_are_refused(card, tmp_path):
    (tmp_path / "mimic-cxr-2.0.0-metadata.csv").write_text(
        "dicom_id,subject_id,study_id,ViewPosition\na,10000001,50000001,PA\n")
    (tmp_path / "mimic-cxr-2.0.0-chexpert.csv").write_text(
        "subject_id,study_id,Pleural Effusion\n10000001,50000001,1.0\n10000001,50000001,0.0\n")
    with pytest.raises(DataError, match="one row per study"):
        read_index(card, tmp_path, ["effusion"])
