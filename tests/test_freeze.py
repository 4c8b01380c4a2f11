"""Committed manifests (manifests/<task>/, `python -m runner.sample.committed`): they reproduce from the shipped metadata, a
changed card is caught, and `runner eval` uses them only after checking the user's data against them."""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

import runner.sample.committed as freeze
from registry.cards import clear_cache, load_registry
from registry.errors import RegistryError
from runner.sample.store import committed_folder

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torchxrayvision") is None,
                                reason="the real metadata ships in the torchxrayvision wheel")

# Before the other files (tests/conftest.py): the committed-manifest check is one long child process.
RUN_EARLY = True
REPO = Path(__file__).resolve().parents[1]


def test_committed_manifests_reproduce_from_the_shipped_metadata():
    """CI: re-sample every frozen task: content sha256, manifest.json (but created_at), parquet bytes must match."""
    started = time.perf_counter()
    frozen, problems = freeze.freeze(load_registry(), check=True)
    assert problems == []
    assert len(frozen) >= 19
    print(f"{len(frozen)} committed manifests reproduced in {time.perf_counter() - started:.1f} s")


def test_one_task_checked_alone_records_what_the_whole_freeze_records():
    """NIH's tasks read label tables of their own: a task frozen alone must still record the full run's `sources`."""
    assert freeze.freeze(load_registry(), ["effusion-nih"], check=True)[1] == []


def test_what_is_frozen_and_what_is_not():
    tasks, skipped = freeze.freezable(load_registry())
    ids = {t.id for t in tasks}
    assert {"effusion-nih", "opacity-nih", "effusion-chexpert", "edema-padchest", "opacity-rsna"} <= ids
    assert "credentialed" in skipped["effusion-mimic"] and "credentialed" in skipped["effusion-mimic-jpg"]
    assert "synthetic" in skipped["effusion-demo"]
    assert sorted(p.name for p in (REPO / "manifests").iterdir() if p.is_dir()) == sorted(ids)
    assert all(committed_folder(REPO / "manifests", task_id) is not None for task_id in ids)


@pytest.fixture
def registry_copy(tmp_path):
    root = tmp_path / "reg"
    for folder in ("registry/datasets", "tasks", "encoders"):
        shutil.copytree(REPO / folder, root / folder)
    shutil.copytree(REPO / "manifests" / "effusion-vindr", root / "manifests" / "effusion-vindr")
    shutil.copyfile(REPO / "manifests" / "index.json", root / "manifests" / "index.json")
    return root


def test_a_changed_task_card_is_a_stale_manifest(registry_copy):
    reg = load_registry(registry_copy)
    assert freeze.freeze(reg, ["effusion-vindr"], check=True)[1] == []
    card = registry_copy / "tasks" / "effusion-vindr.yaml"
    card.write_text(card.read_text().replace("sampling: {positives: 600, negatives: 600}",
                                             "sampling: {positives: 600, negatives: 600, seed: 1}"))
    clear_cache()  # load_registry caches by root
    problems = freeze.freeze(load_registry(registry_copy), ["effusion-vindr"], check=True)[1]
    assert len(problems) == 1 and "effusion-vindr" in problems[0]
    # ... and runner eval no longer uses it (the card hash differs): it samples at run time instead
    reg = load_registry(registry_copy)
    assert freeze.use_committed(reg.tasks["effusion-vindr"], reg.datasets["vindr-cxr"], registry_copy, registry_copy
                                / "out", reg.home.manifests_dir) is None


def fake_data_root(root: Path, paths) -> Path:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"not really a DICOM")
    return root


def test_eval_uses_the_committed_manifest_after_checking_the_data(registry_copy, tmp_path):
    from runner.sample.manifest import read_manifest
    from runner.sample.run_manifest import RunManifestError, manifest_for_run

    reg = load_registry(registry_copy)
    task, dataset = reg.tasks["effusion-vindr"], reg.datasets["vindr-cxr"]
    committed = read_manifest(committed_folder(registry_copy / "manifests", "effusion-vindr"))
    data = fake_data_root(tmp_path / "data", committed.frame["path"])
    manifest = manifest_for_run(task, dataset, data, tmp_path / "out" / task.id, reg.home.manifests_dir)
    assert manifest.meta["sha256"] == committed.meta["sha256"] and manifest.meta["verify"] == "none"
    assert (tmp_path / "out" / task.id / "manifest.parquet").is_file()

    # missing and empty files, images gone from the user's metadata and changed labels: counted, one message, exit 2
    paths = committed.frame["path"].tolist()
    for path in paths[:3]:
        (data / path).unlink()
    (data / paths[3]).write_bytes(b"")
    package = Path(importlib.util.find_spec("torchxrayvision").submodule_search_locations[0])
    reads = pd.read_csv(package / "data" / "vinbigdata-train.csv.gz", dtype=str)
    positive = committed.frame.loc[committed.frame["label"] == 1, "image_id"].iloc[-1]
    gone = committed.frame["image_id"].iloc[-1]
    reads.loc[(reads["image_id"] == positive) & (reads["class_name"] == "Pleural effusion"), "class_name"] = "ILD"
    reads[reads["image_id"] != gone].to_csv(data / "train.csv", index=False)   # the user's own table, edited
    with pytest.raises(RunManifestError) as raised:
        manifest_for_run(task, dataset, data, tmp_path / "out2" / task.id, reg.home.manifests_dir)
    message = str(raised.value)
    assert raised.value.exit_code == 2 and "\n" not in message
    for part in ("3 of 1200 files missing", "1 of 1200 files empty", "1 of 1200 images absent from its metadata",
                 "1 of 1200 images changed", positive, "--resample"):
        assert part in message, part
    assert not (tmp_path / "out2" / task.id / "manifest.json").exists()


def test_freeze_cli_check_exit_codes(registry_copy, monkeypatch, capsys):
    monkeypatch.setenv("CXR_REGISTRY_ROOT", str(registry_copy))
    assert freeze.main(["--check", "effusion-vindr"]) == 0
    assert freeze.main(["--check", "effusion-mimic"]) == 2   # not frozen: says why
    assert "credentialed" in capsys.readouterr().err
    (committed_folder(registry_copy / "manifests", "effusion-vindr") / "manifest.json").write_text("{}")
    assert freeze.main(["--check", "effusion-vindr"]) == 1


def test_another_layout_is_named_as_such(tmp_path):
    """NIH's Kaggle copy (images_001/images/) versus the official tarballs' images/ of the committed manifest."""
    reg = load_registry()
    task, dataset = reg.tasks["effusion-nih"], reg.datasets["nih-cxr14"]
    from runner.sample.manifest import read_manifest

    committed = read_manifest(committed_folder(REPO / "manifests", task.id))
    assert committed.frame["path"].str.startswith("images/").all()
    data = fake_data_root(tmp_path, ["images_001/" + p for p in committed.frame["path"]])
    with pytest.raises(freeze.FrozenDataError) as raised:
        freeze.use_committed(task, dataset, data, tmp_path / "out", reg.home.manifests_dir)
    assert "2000 of 2000 files missing" in str(raised.value)
    assert "2000 of 2000 images lie at another path" in str(raised.value) and "images_001/images/" in str(raised.value)


def test_resample_bypasses_the_committed_manifest(registry_copy, tmp_path):
    """--resample samples from the data root (here: files that are not DICOMs, so the decode check refuses them)."""
    from runner.sample.manifest import read_manifest
    from runner.sample.run_manifest import manifest_for_run

    reg = load_registry(registry_copy)
    task, dataset = reg.tasks["effusion-vindr"], reg.datasets["vindr-cxr"]
    committed = read_manifest(committed_folder(registry_copy / "manifests", "effusion-vindr"))
    data = fake_data_root(tmp_path / "data", committed.frame["path"])
    with pytest.raises(RegistryError, match="could not be used"):
        manifest_for_run(task, dataset, data, tmp_path / "out" / task.id, reg.home.manifests_dir, resample=True)


def test_refreezing_one_task_rewrites_it_and_its_index_entry(registry_copy):
    card = registry_copy / "tasks" / "effusion-vindr.yaml"
    card.write_text(card.read_text().replace("positives: 600, negatives: 600", "positives: 500, negatives: 500"))
    reg = load_registry(registry_copy)
    assert freeze.freeze(reg, ["effusion-vindr"], check=True)[1]          # stale before
    (item,), problems = freeze.freeze(reg, ["effusion-vindr"])              # python -m runner.sample.committed effusion-vindr
    assert problems == [] and item.n_images == 1000
    assert freeze.freeze(reg, ["effusion-vindr"], check=True)[1] == []     # reproduced after
    index = (registry_copy / "manifests" / "index.json").read_text()
    assert item.sha256 in index
