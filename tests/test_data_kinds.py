"""The `csv` kind on the synthetic demo DICOMs, the `huggingface` kind on a locally saved data set, `runner sample`."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from registry.cards import load_registry
from runner.data import DataError, read_index
from runner.sample.manifest import read_manifest
from runner.sample.sampler import apply_label_policy, sample_task

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reg():
    return load_registry()


def _demo_task(reg, demo_root: Path, label: str = "effusion"):
    """The demo task card with N set to every readable candidate of each class, so every corrupt one is met."""
    task = copy.deepcopy(reg.tasks[f"{label}-demo"].data)
    card = reg.datasets["demo-cxr"].data
    frame = read_index(card, demo_root, [label]).frame
    frame = frame.assign(cls=apply_label_policy(frame[label], task["label_policy"]))
    frame = frame[frame["cls"].notna() & frame["view"].isin(task["views"])]
    corrupt = {c["image_id"] for c in json.loads((demo_root / "demo_data.json").read_text())["corrupt"]}
    for cls, key in ((1, "positives"), (0, "negatives")):
        ids = set(frame.loc[frame["cls"] == cls, "image_id"])
        task["sampling"][key] = len(ids - corrupt)
    return task, card, corrupt & set(frame["image_id"])


def test_csv_kind_on_demo_data_excludes_every_corrupt_dicom(reg, demo_data_dir):
    task, card, corrupt = _demo_task(reg, demo_data_dir)
    assert corrupt, "the demo data set should hold corrupt frontal files"
    result = sample_task(task, card, demo_data_dir)
    assert {e.image_id for e in result.exclusions} == corrupt
    assert (result.frame["label"] == 1).sum() == task["sampling"]["positives"]
    assert set(result.frame["view"]) <= {"PA", "AP"} and result.synthetic
    assert (result.frame.groupby("patient_id")["fold"].nunique() == 1).all()
    assert all((demo_data_dir / p).is_file() for p in result.frame["path"])


def test_views_come_from_the_dicom_tag_when_the_metadata_has_none(reg, demo_data_dir):
    card = copy.deepcopy(reg.datasets["demo-cxr"].data)
    del card["columns"]["view"]
    task = copy.deepcopy(reg.tasks["edema-demo"].data)
    task["sampling"].update(positives=25, negatives=40)
    index = read_index(card, demo_data_dir, ["edema"])
    assert not index.views_known
    result = sample_task(task, card, demo_data_dir, verify="header", index=index)
    truth = read_index(reg.datasets["demo-cxr"].data, demo_data_dir, ["edema"]).frame.set_index("image_id")["view"]
    assert set(result.frame["view"]) <= {"PA", "AP"}
    assert (truth.loc[result.frame["image_id"]].to_numpy() == result.frame["view"].to_numpy()).all()
    lateral = [e for e in result.exclusions if e.reason.startswith("view-")]
    assert lateral and all(truth.loc[e.image_id] not in ("PA", "AP") for e in lateral)


def _png(value: int) -> Image.Image:
    return Image.fromarray(np.full((12, 12), value, dtype=np.uint8))


def test_huggingface_kind_reads_a_locally_saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    n = 24
    table = {"image": [_png(10 * i) for i in range(n)], "uid": [f"hf/{i}" for i in range(n)],
             "patient": [f"p{i // 2}" for i in range(n)], "projection": ["PA" if i % 5 else "LL" for i in range(n)],
             "effusion": [bool(i % 2) for i in range(n)]}
    features = datasets.Features({"image": datasets.Image(), "uid": datasets.Value("string"),
                                  "patient": datasets.Value("string"), "projection": datasets.Value("string"),
                                  "effusion": datasets.Value("bool")})
    datasets.Dataset.from_dict(table, features=features).save_to_disk(str(tmp_path / "ds"))
    card = {"id": "tiny-hf", "kind": "huggingface", "title": "tiny", "synthetic": True, "access": "built by the test",
            "hub": {"repo_id": "nobody/tiny", "revision": "0123456789abcdef"},
            "columns": {"image_id": "uid", "patient_id": "patient", "image": "image", "view": "projection"},
            "labels": {"effusion": {"column": "effusion"}}}
    index = read_index(card, tmp_path / "ds")
    frame = index.frame
    assert frame["effusion"].tolist() == [float(i % 2) for i in range(n)]
    assert frame["path"].str.startswith("hf-images/").all() and frame["path"].is_unique
    task = {"id": "effusion-hf", "label": {"id": "effusion", "name": "Effusion"}, "views": ["PA"],
            "label_policy": {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"},
            "sampling": {"positives": 8, "negatives": 8, "seed": 0},
            "split": {"method": "group-holdout", "test_fraction": 0.25, "seed": 0}}
    result = sample_task(task, card, tmp_path / "ds", workers=1)
    assert len(result.frame) == 16 and not result.exclusions
    from runner.data.imaging import load_image

    first = result.frame.iloc[0]
    pixels = load_image(tmp_path / "ds" / first["path"])
    assert pixels.shape == (12, 12)
    with pytest.raises(DataError, match="column 'picture' not found"):
        read_index({**card, "columns": {**card["columns"], "image": "picture"}}, tmp_path / "ds")


def test_huggingface_kind_without_local_data_or_hub_is_a_clear_error(tmp_path):
    card = {"id": "x", "kind": "huggingface", "title": "x", "synthetic": False, "access": "ask the owner",
            "columns": {"image_id": "a", "patient_id": "b", "image": "c"}, "labels": {"y": {"column": "y"}}}
    with pytest.raises(DataError, match="no save_to_disk data set.*ask the owner"):
        read_index(card, tmp_path)


@pytest.fixture
def small_registry(tmp_path, monkeypatch):
    """A copy of the registry whose effusion-demo task fits the small session demo data set."""
    from registry import cards

    for folder in ("tasks", "encoders", "registry/datasets"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    card = tmp_path / "tasks" / "effusion-demo.yaml"
    data = yaml.safe_load(card.read_text())
    data["sampling"] = {"positives": 30, "negatives": 30}
    card.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("CXR_REGISTRY_ROOT", str(tmp_path))
    cards.clear_cache()
    yield tmp_path
    cards.clear_cache()


def test_runner_sample_writes_manifest_and_exclusion_report(small_registry, demo_data_dir, tmp_path):
    from runner.cli.main import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["sample", "--task", "effusion-demo", "--data-root", str(demo_data_dir),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out / "effusion-demo")
    assert manifest.meta["counts"]["positives"] == 30 and manifest.meta["sha256"] in result.output
    assert manifest.meta["synthetic"] is True
    report = pd.read_csv(out / "effusion-demo" / "exclusions.csv")
    assert list(report.columns) == ["image_id", "path", "reason", "label", "detail"]
    assert len(report) == manifest.meta["counts"]["excluded"]


@pytest.mark.parametrize("args, message", [
    (["--task", "effusion-dmeo"], "did you mean 'effusion-demo'"),
    (["--task", "effusion-demo", "--data-root", "/nonexistent/folder"], "is not a folder"),
    (["--task", "effusion-demo", "--verify", "maybe"], "verify 'maybe' unknown"),
])
def test_runner_sample_bad_input_exits_2_without_traceback(small_registry, demo_data_dir, args, message):
    from runner.cli.main import app

    if "--data-root" not in args:
        args = [*args, "--data-root", str(demo_data_dir)]
    result = CliRunner().invoke(app, ["sample", *args])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_runner_sample_not_enough_candidates_exits_2(demo_data_dir, tmp_path):
    from runner.cli.main import app

    result = CliRunner().invoke(app, ["sample", "--task", "effusion-demo", "--data-root", str(demo_data_dir),
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not enough candidates" in result.output
