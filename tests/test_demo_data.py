"""runner.data.synthetic: real, reproducible synthetic DICOMs with the promised mix of formats, views, labels and corruption."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from runner.data.imaging import ImageDecodeError, load_image, read_view_position
from runner.data.synthetic import (
    DEFAULT_PATIENTS,
    FINDINGS,
    DemoDataError,
    _choose_corrupt,
    _plan_images,
    make_demo_dataset,
)

COLUMNS = ["path", "image_id", "patient_id", "study_id", "view", "sex", "age",
           "atelectasis", "edema", "effusion", "opacity"]


@pytest.fixture(scope="module")
def rows(demo_data_dir):
    with (demo_data_dir / "metadata.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def record(demo_data_dir):
    return json.loads((demo_data_dir / "demo_data.json").read_text())


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    make_demo_dataset(tmp_path / "a", seed=5, n_patients=6, image_size=64)
    make_demo_dataset(tmp_path / "b", seed=5, n_patients=6, image_size=64)
    make_demo_dataset(tmp_path / "c", seed=6, n_patients=6, image_size=64)
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert len(a) > 10 and a == b
    assert a != c


def test_metadata_columns_and_files(demo_data_dir, rows, record):
    with (demo_data_dir / "metadata.csv").open() as fh:
        assert fh.readline().strip().split(",") == COLUMNS
    assert len(rows) == record["n_images"] and len({r["image_id"] for r in rows}) == len(rows)
    for r in rows:
        assert (demo_data_dir / r["path"]).is_file() and "\\" not in r["path"] and r["path"].startswith("files/")
        assert r["sex"] in ("M", "F") and 18 <= int(r["age"]) <= 110
        assert r["view"] in ("PA", "AP", "LL", "LATERAL")
    assert record["synthetic"] is True and record["seed"] == 0
    assert "SYNTHETIC" in (demo_data_dir / "README.txt").read_text()
    assert len({r["study_id"] for r in rows}) > len({r["patient_id"] for r in rows})  # several studies per patient


def test_labels_include_uncertain_and_blank_and_are_per_study(rows):
    values = {r[f] for r in rows for f in FINDINGS}
    assert values == {"1.0", "0.0", "-1.0", ""}
    by_study = {}
    for r in rows:
        assert by_study.setdefault(r["study_id"], [r[f] for f in FINDINGS]) == [r[f] for f in FINDINGS]


def test_corrupt_files_are_listed_and_fail_with_their_reason(demo_data_dir, rows, record):
    listed = {c["image_id"]: c for c in record["corrupt"]}
    assert {c["kind"] for c in listed.values()} == {"truncated", "zero-bytes", "no-pixel-data", "not-dicom"}
    in_metadata = {r["image_id"]: r for r in rows}
    for image_id, entry in listed.items():
        assert in_metadata[image_id]["path"] == entry["path"]
        assert in_metadata[image_id]["view"] in ("PA", "AP")  # frontal, so a view filter does not hide them
        with pytest.raises(ImageDecodeError) as info:
            load_image(demo_data_dir / entry["path"])
        assert info.value.reason == entry["kind"]


def test_format_mix_and_views_match_dicom(demo_data_dir, rows, record):
    corrupt = {c["image_id"] for c in record["corrupt"]}
    seen = {"photometric": set(), "syntax": set(), "bits": set(), "sop": set(), "rescale": set(), "window": set()}
    for r in rows:
        if r["image_id"] in corrupt:
            continue
        path = demo_data_dir / r["path"]
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        seen["photometric"].add(ds.PhotometricInterpretation)
        seen["syntax"].add(ds.file_meta.TransferSyntaxUID)
        seen["bits"].add(int(ds.BitsStored))
        seen["sop"].add(ds.SOPClassUID.name)
        seen["rescale"].add("RescaleSlope" in ds)
        seen["window"].add("WindowCenter" in ds)
        assert read_view_position(path) == r["view"]
        assert ds.PatientID == r["patient_id"] and ds.PatientSex == r["sex"]
    assert seen["photometric"] == {"MONOCHROME1", "MONOCHROME2"}
    assert pydicom.uid.JPEG2000Lossless in seen["syntax"] and pydicom.uid.ExplicitVRLittleEndian in seen["syntax"]
    assert seen["bits"] == {12, 14, 15, 16}
    assert seen["sop"] == {"Computed Radiography Image Storage", "Digital X-Ray Image Storage - For Presentation"}
    assert seen["rescale"] == seen["window"] == {True, False}
    assert {"LL", "LATERAL"} & {r["view"] for r in rows}


def test_frontal_images_decode_with_dark_lungs(demo_data_dir, rows, record):
    # Both photometric interpretations must come out MONOCHROME2: lung fields darker than the mediastinum.
    corrupt = {c["image_id"] for c in record["corrupt"]}
    frontal = [r for r in rows if r["view"] in ("PA", "AP") and r["image_id"] not in corrupt]
    for r in frontal:
        image = load_image(demo_data_dir / r["path"])
        h, w = image.shape
        lungs = np.concatenate([image[int(0.3 * h):int(0.5 * h), int(0.27 * w):int(0.35 * w)].ravel(),
                                image[int(0.3 * h):int(0.5 * h), int(0.65 * w):int(0.73 * w)].ravel()])
        mediastinum = image[int(0.15 * h):int(0.45 * h), int(0.48 * w):int(0.52 * w)]
        assert mediastinum.mean() > lungs.mean() + 0.1, r["image_id"]


def test_findings_are_visible_but_not_trivially(demo_data_dir, rows, record):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    from runner.data.imaging import to_encoder_input

    corrupt = {c["image_id"] for c in record["corrupt"]}
    usable = [r for r in rows if r["view"] in ("PA", "AP") and r["image_id"] not in corrupt]
    features = np.stack([to_encoder_input(load_image(demo_data_dir / r["path"]), {"size": 24, "interpolation": "area"})
                         .ravel() for r in usable])
    # ~190 images and a linear model on raw pixels: only the strongest signatures are asked to show.
    for finding in ("effusion", "atelectasis"):
        idx = [i for i, r in enumerate(usable) if r[finding] in ("1.0", "0.0")]
        y = np.array([usable[i][finding] == "1.0" for i in idx], dtype=int)
        groups = [usable[i]["patient_id"] for i in idx]
        prob = cross_val_predict(LogisticRegression(C=1.0, max_iter=3000), features[idx], y, groups=groups,
                                 cv=GroupKFold(4), method="predict_proba")[:, 1]
        assert 0.65 < roc_auc_score(y, prob) < 0.995, finding


def test_default_size_supports_150_per_class_after_exclusions():
    images = _plan_images(seed=0, n_patients=DEFAULT_PATIENTS)
    corrupt = _choose_corrupt(images, seed=0)
    usable = [i for i in images if i.view in ("PA", "AP") and i.image_id not in corrupt]
    for finding in FINDINGS:
        positives = {i.patient_id for i in usable if i.labels[finding] == "1.0"}
        negatives = {i.patient_id for i in usable if i.labels[finding] == "0.0"}
        assert len(positives) >= 150 and len(negatives) >= 150, finding  # even one image per patient
        prevalence = sum(i.labels[finding] == "1.0" for i in usable) / len(usable)
        assert 0.3 < prevalence < 0.5


def test_refuses_foreign_non_empty_directory(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DemoDataError):
        make_demo_dataset(tmp_path, n_patients=2, image_size=64)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_cli_writes_and_rejects(tmp_path):
    from runner.cli.main import app

    runner = CliRunner()
    ok = runner.invoke(app, ["demo-data", "--out", str(tmp_path / "demo"), "--seed", "3", "--patients", "4"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "demo" / "metadata.csv").is_file() and "synthetic" in ok.output
    again = runner.invoke(app, ["demo-data", "--out", str(tmp_path / "demo"), "--patients", "3"])
    assert again.exit_code == 0  # an earlier demo set is replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    bad = runner.invoke(app, ["demo-data", "--out", str(tmp_path / "other"), "--patients", "3"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert runner.invoke(app, ["demo-data", "--out", str(tmp_path / "z"), "--patients", "0"]).exit_code == 2
