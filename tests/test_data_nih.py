"""NIH ChestX-ray14 reader and sampling on the REAL NIH metadata shipped by torchxrayvision (no images needed)."""

from __future__ import annotations

import copy
import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest

from registry.cards import load_registry
from runner.data import DataError, read_index
from runner.sample.manifest import content_sha256
from runner.sample.sampler import SamplingError, sample_task

PACKAGE = importlib.util.find_spec("torchxrayvision")
pytestmark = pytest.mark.skipif(PACKAGE is None, reason="torchxrayvision (ships the NIH metadata) not installed")
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000040000000408000000008c9ac1a200000010494441"
                    "54789c636c606060606240210009e4008852164e5f0000000049454e44ae426082")  # a valid 4x4 grey PNG


@pytest.fixture(scope="module")
def reg():
    return load_registry()


@pytest.fixture(scope="module")
def nih_card(reg):
    return reg.datasets["nih-cxr14"].data


@pytest.fixture(scope="module")
def nih_index(nih_card, tmp_path_factory):
    return read_index(nih_card, tmp_path_factory.mktemp("nih-empty"))


def _no_patient_in_two_folds(frame: pd.DataFrame) -> bool:
    return bool((frame.groupby("patient_id")["fold"].nunique() == 1).all())


def test_index_reads_the_real_metadata_from_the_package(nih_index):
    frame = nih_index.frame
    assert len(frame) == 112_120 and frame["image_id"].is_unique
    assert frame["patient_id"].nunique() == 30_805
    assert frame["view"].value_counts().to_dict() == {"PA": 67_310, "AP": 44_810}
    assert frame["opacity"].value_counts().to_dict() == {0.0: 2_210, 1.0: 2_166}  # Google's relabels only
    assert frame["opacity"].isna().sum() == 112_120 - 4_376
    assert int(frame["effusion"].sum()) == 13_317 and int(frame["edema"].sum()) == 2_303
    assert set(frame["sex"].dropna()) == {"M", "F"}
    assert "torchxrayvision" in nih_index.sources["metadata"][0]
    assert nih_index.files_found == 0 and frame["path"].iloc[0] == "images/00000001_000.png"


@pytest.mark.parametrize("task_id", ["effusion-nih", "opacity-nih"])
def test_paper_task_gives_1000_each_with_no_patient_overlap(reg, nih_card, nih_index, task_id, tmp_path):
    result = sample_task(reg.tasks[task_id].data, nih_card, tmp_path, verify="none", index=nih_index)
    frame = result.frame
    assert (frame["label"] == 1).sum() == 1000 and (frame["label"] == 0).sum() == 1000
    assert set(frame["view"]) <= {"PA", "AP"} and frame["image_id"].is_unique
    assert _no_patient_in_two_folds(frame) and sorted(frame["fold"].unique()) == [0, 1, 2, 3, 4]
    for fold in range(5):  # stratified: every test fold holds both classes in near-equal share
        share = frame.loc[frame["fold"] == fold, "label"].mean()
        assert 0.4 < share < 0.6


def test_opacity_labels_come_from_googles_relabels(reg, nih_card, nih_index, tmp_path):
    result = sample_task(reg.tasks["opacity-nih"].data, nih_card, tmp_path, verify="none", index=nih_index)
    relabels = pd.read_csv(Path(next(iter(PACKAGE.submodule_search_locations))) / "data" /
                           "google2019_nih-chest-xray-labels.csv.gz").set_index("Image Index")["Airspace opacity"]
    expected = result.frame["image_id"].map(relabels).map({"YES": 1, "NO": 0})
    assert (expected == result.frame["label"]).all()


def test_files_are_found_in_the_kaggle_layout_and_checked(reg, nih_card, nih_index, tmp_path):
    task = reg.tasks["effusion-nih"].data
    first = sample_task(task, nih_card, tmp_path, verify="none", index=nih_index)
    for i, image_id in enumerate(first.frame["image_id"]):  # tiny valid PNGs, only for the sampled rows
        folder = tmp_path / f"images_{1 + i % 3:03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / image_id).write_bytes(PNG)
    for name in nih_index.sources["metadata"]:  # the user's own copy of the metadata, as they would have it
        shutil.copy(name, tmp_path / Path(name).name)
    second = sample_task(task, nih_card, tmp_path, verify="header", workers=2)
    assert second.sources["metadata"][0].startswith(str(tmp_path))
    assert not second.exclusions
    assert content_sha256(second.frame.assign(path=first.frame["path"]), {}) == content_sha256(first.frame, {})
    assert second.frame["path"].str.match(r"^images_00[123]/images/\d{8}_\d{3}\.png$").all()


def test_edema_on_pa_only_reports_the_shortfall_after_each_filter(reg, nih_card, nih_index, tmp_path):
    task = copy.deepcopy(reg.tasks["edema-nih"].data)
    task["views"] = ["PA"]
    with pytest.raises(SamplingError) as caught:
        sample_task(task, nih_card, tmp_path, verify="none", index=nih_index)
    message = str(caught.value)
    assert "not enough candidates" in message and "view in PA: 276 positives" in message
    assert "label policy: 2,303 positives" in message


def test_missing_metadata_names_the_file_and_how_to_get_it(nih_card, tmp_path):
    card = {k: v for k, v in nih_card.items() if k != "fallback_package"}
    with pytest.raises(DataError) as caught:
        read_index(card, tmp_path)
    assert "Data_Entry_2017_v2020.csv" in str(caught.value) and "nihcc.app.box.com" in str(caught.value)


def test_missing_column_is_named(nih_card, tmp_path):
    (tmp_path / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels,Patient ID\na.png,Effusion,1\n")
    card = {k: v for k, v in nih_card.items() if k != "fallback_package"}
    with pytest.raises(DataError, match="'View Position'"):
        read_index(card, tmp_path, ["effusion"])


def test_a_wrong_data_root_stops_early_with_the_reasons(reg, nih_card, nih_index, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / nih_index.frame["image_id"].iloc[0]).write_bytes(PNG)  # one file: "found" > 0
    with pytest.raises(SamplingError, match=r"missing-file.*Is the data root right"):
        sample_task(reg.tasks["effusion-nih"].data, nih_card, tmp_path, verify="header", workers=1)


def test_no_images_and_decode_requested_is_a_clear_error(reg, nih_card, nih_index, tmp_path):
    with pytest.raises(SamplingError, match="no image files found"):
        sample_task(reg.tasks["effusion-nih"].data, nih_card, tmp_path, index=nih_index)
