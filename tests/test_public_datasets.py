"""The public data sets' tasks on their REAL metadata (torchxrayvision's shipped copies), checked independently.

For each data set: every committed manifest (manifests/<task>/, which test_freeze.py proves is what sampling the
shipped metadata gives) has exactly the card's N/N, only the card's views, labels that the raw source table confirms
(read here with plain pandas, not through the registry's reader), and no patient in two folds. The card's `size`
block (docs/datasets.md) is checked against the same tables.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from registry.cards import load_registry
from runner.sample.manifest import read_manifest
from runner.sample.store import committed_folder

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torchxrayvision") is None,
                                reason="the real metadata ships in the torchxrayvision wheel")
REPO = Path(__file__).resolve().parents[1]


def shipped(name: str) -> Path:
    return Path(importlib.util.find_spec("torchxrayvision").submodule_search_locations[0]) / "data" / name


@pytest.fixture(scope="module")
def reg():
    return load_registry()


def tasks_of(reg, dataset: str) -> list:
    return [t for t in reg.tasks.values() if t.data["dataset"] == dataset and t.data.get("type") != "transfer"]


def check_manifest(task, raw: pd.DataFrame):
    """raw: indexed by image id, columns view, patient, value (the raw label value, text)."""
    manifest = read_manifest(committed_folder(REPO / "manifests", task.id))
    frame, sampling = manifest.frame, task.data["sampling"]
    assert manifest.meta["task_sha256"] == task.behaviour_sha256, "stale: rerun python -m runner.sample.committed"
    assert (frame["label"] == 1).sum() == sampling["positives"] and (frame["label"] == 0).sum() == sampling["negatives"]
    assert frame["image_id"].is_unique
    assert frame.groupby("patient_id")["fold"].nunique().max() == 1  # no patient in two folds
    assert sorted(frame["fold"].unique()) == list(range(task.data["split"]["folds"]))
    rows = raw.loc[frame["image_id"]]
    assert set(rows["view"]) <= set(task.data["views"])  # the raw table's view, not the index's
    assert (rows["patient"].to_numpy() == frame["patient_id"].to_numpy()).all()
    match = sampling.get("match")
    if match:  # matched control: each view (the raw table's) x sex x age band stratum equally often in both classes
        assert match["strata"] == ["view", "sex", "age_band"]
        bands = pd.cut(frame["age"].astype(float), match["age_bands"], right=False).astype(str).to_numpy()
        strata = rows.assign(label=frame["label"].to_numpy(), sex=frame["sex"].fillna("?").to_numpy(), band=bands)
        counts = strata.groupby(["view", "sex", "band", "label"]).size().unstack(fill_value=0)
        assert (counts[0] == counts[1]).all(), counts
    return frame, rows


def check_features(frame: pd.DataFrame, rows: pd.DataFrame, columns: dict[str, str], task, reg) -> None:
    """The manifest's metadata features (meta_<name>, the `metadata` baseline's input) are the raw table's values."""
    declared = {f["name"] for f in reg.datasets[task.data["dataset"]].data["metadata_features"]}
    assert {c.removeprefix("meta_") for c in frame.columns if c.startswith("meta_")} == declared == set(columns)
    for name, column in columns.items():
        got, raw = frame["meta_" + name].to_numpy(), rows[column].to_numpy()
        if pd.api.types.is_float_dtype(frame["meta_" + name]):
            expected = pd.to_numeric(rows[column], errors="coerce").to_numpy()
            assert ((got == expected) | (pd.isna(got) & pd.isna(expected))).all(), name
        else:
            assert [None if pd.isna(x) else x for x in got] == [None if pd.isna(x) else x.strip() for x in raw], name


def is_sibling(task) -> bool:
    """A task under the other meaning of a negative (benchmark `negatives`, registry/negatives.py)."""
    return "negatives" in task.data.get("benchmarks", [])


def has_view_matched_twins(tasks) -> bool:
    """Every task of a data set with several frontal views has a matched control of the same label."""
    tasks = [t for t in tasks if not is_sibling(t)]
    matched = {t.data["label"]["id"] for t in tasks if t.data["sampling"].get("match")}
    return matched == {t.data["label"]["id"] for t in tasks} and len(tasks) == 2 * len(matched)


def test_chexpert(reg):
    raw = pd.read_csv(shipped("chexpert_train.csv.gz"), dtype=str)
    raw.index = raw["Path"].str.split("/", n=2).str[2].str.removesuffix(".jpg")   # patientN/studyN/viewN_x
    raw["view"] = raw["AP/PA"].where(raw["Frontal/Lateral"] == "Frontal", "LATERAL")
    raw["patient"] = raw["Path"].str.split("/").str[2]
    column = {"atelectasis": "Atelectasis", "edema": "Edema", "effusion": "Pleural Effusion", "opacity": "Lung Opacity"}
    tasks = [t for t in tasks_of(reg, "chexpert") if t.spec.type == "classification"]
    assert {t.data["label"]["id"] for t in tasks} == set(column)  # all four of the paper's labels
    assert has_view_matched_twins(tasks)
    for task in tasks:
        frame, rows = check_manifest(task, raw)
        check_features(frame, rows, {"view": "view", "sex": "Sex", "age": "Age"}, task, reg)
        values = rows[column[task.data["label"]["id"]]]
        assert (values[frame["label"].to_numpy() == 1] == "1.0").all()
        negatives = values[frame["label"].to_numpy() == 0]
        if is_sibling(task):  # blank = negative: not mentioned (blank) or stated absent, nothing else
            assert negatives.isna().sum() > 500 and (negatives.dropna() == "0.0").all(), task.id
        else:
            assert (negatives == "0.0").all(), task.id
    # the policy had real -1.0 and blank values to exclude: they exist among the frontal candidates
    frontal = raw[raw["view"].isin(["PA", "AP"])]
    assert (frontal["Atelectasis"] == "-1.0").sum() > 20000 and frontal["Atelectasis"].isna().sum() > 100000
    size = reg.datasets["chexpert"].data["size"]
    assert size["images"] == len(raw) and size["patients"] == raw["patient"].nunique()
    assert size["views"] == raw["view"].fillna("").value_counts().to_dict()


PADCHEST_TERMS = {  # PadChest's hierarchy: the finding and its narrower terms (never 'pericardial effusion')
    "atelectasis": {"atelectasis", "laminar atelectasis", "lobar atelectasis", "segmental atelectasis",
                    "atelectasis basal", "total atelectasis", "round atelectasis"},
    "edema": {"pulmonary edema"},
    "effusion": {"pleural effusion", "loculated pleural effusion", "loculated fissural effusion"},
}


def test_padchest(reg):
    raw = pd.read_csv(shipped("PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"), dtype=str,
                      usecols=["ImageID", "PatientID", "Projection", "Labels", "PatientSex_DICOM", "PatientBirth",
                               "Manufacturer_DICOM", "MethodLabel"]).set_index("ImageID")
    raw["view"] = raw["Projection"].str.upper().replace({"L": "LATERAL"})
    raw["patient"] = raw["PatientID"]
    items = raw["Labels"].map(lambda s: {x.strip() for x in ast.literal_eval(s)} if isinstance(s, str) else None)
    tasks = tasks_of(reg, "padchest")
    assert {t.data["label"]["id"] for t in tasks} == set(PADCHEST_TERMS)  # PadChest has no 'lung opacity' term
    assert has_view_matched_twins(tasks)
    for task in tasks:
        frame, rows = check_manifest(task, raw)
        check_features(frame, rows, {"view": "Projection", "sex": "PatientSex_DICOM", "birth_year": "PatientBirth",
                                     "manufacturer": "Manufacturer_DICOM", "label_method": "MethodLabel"}, task, reg)
        terms = PADCHEST_TERMS[task.data["label"]["id"]]
        has = [bool(found & terms) for found in items.loc[frame["image_id"]]]
        has = pd.Series(has).to_numpy()
        assert has[frame["label"] == 1].all() and not has[frame["label"] == 0].any()
        if is_sibling(task):  # 'normal' negatives (negative_requires: no_finding)
            normal = [found == {"normal"} or "normal" in found for found in items.loc[frame["image_id"]]]
            assert pd.Series(normal).to_numpy()[frame["label"] == 0].all(), task.id
    size = reg.datasets["padchest"].data["size"]
    assert size["images"] == len(raw) and size["patients"] == raw["patient"].nunique()
    assert size["views"] == raw["view"].value_counts().to_dict()


def test_rsna(reg):
    headers = pd.read_csv(shipped("kaggle_stage_2_train_images_dicom_headers.csv.gz"), dtype=str).set_index("PatientID")
    target = pd.read_csv(shipped("kaggle_stage_2_train_labels.csv.zip"), dtype=str).groupby("patientId")["Target"].max()
    raw = headers.assign(view=headers["ViewPosition"], patient=headers.index, value=target)
    (task,) = tasks_of(reg, "rsna-pneumonia")
    frame, rows = check_manifest(task, raw)
    check_features(frame, rows, {"view": "ViewPosition", "sex": "PatientSex", "age": "PatientAge",
                                 "pixel_spacing": "PixelSpacing"}, task, reg)
    assert (rows["value"].to_numpy() == frame["label"].astype(str).to_numpy()).all()
    size = reg.datasets["rsna-pneumonia"].data["size"]
    assert size["images"] == len(raw) and size["views"] == raw["view"].value_counts().to_dict()


def test_vindr_majority_of_three_readers(reg):
    reads = pd.read_csv(shipped("vinbigdata-train.csv.gz"), dtype=str)
    assert (reads.groupby("image_id")["rad_id"].nunique() == 3).all()  # three readers per image
    raw = pd.DataFrame(index=reads["image_id"].unique())
    raw["view"], raw["patient"] = "PA", raw.index
    finding = {"atelectasis": "Atelectasis", "effusion": "Pleural effusion", "opacity": "Lung Opacity"}
    tasks = tasks_of(reg, "vindr-cxr")
    assert {t.data["label"]["id"] for t in tasks} == set(finding)  # no edema among VinDr's 14 findings
    for task in tasks:
        marked = reads[reads["class_name"] == finding[task.data["label"]["id"]]].groupby("image_id")["rad_id"].nunique()
        votes = marked.reindex(raw.index, fill_value=0)
        frame, _rows = check_manifest(task, raw)
        picked = votes.loc[frame["image_id"]].to_numpy()
        assert (picked[frame["label"] == 1] >= 2).all() and (picked[frame["label"] == 0] == 0).all()
        # pool-limited N: the card's N fits under the 2-of-3 pool, and lone reads were excluded, not counted
        assert task.data["sampling"]["positives"] <= int((votes >= 2).sum())
    assert reg.datasets["vindr-cxr"].data["size"]["images"] == len(raw)


def test_siim_has_a_card_but_no_task(reg):
    raw = pd.read_csv(shipped("siim-pneumothorax-train-rle.csv.gz"), dtype=str)
    assert reg.datasets["siim-acr"].data["size"]["images"] == raw["ImageId"].nunique()
    assert not tasks_of(reg, "siim-acr")  # none of the paper's four findings is labelled


def test_mimic_jpg_tasks_are_sampled_at_run_time(reg):
    tasks = tasks_of(reg, "mimic-cxr-jpg")
    assert {t.data["label"]["id"] for t in tasks} == {"atelectasis", "edema", "effusion", "opacity"}
    for task in tasks:
        assert committed_folder(REPO / "manifests", task.id) is None
        assert any("sampled at run time" in note.lower() for note in task.data.get("notes", []))


def test_nih_size(reg):
    raw = pd.read_csv(shipped("Data_Entry_2017_v2020.csv.gz"), dtype=str)
    size = reg.datasets["nih-cxr14"].data["size"]
    assert size["images"] == len(raw) and size["patients"] == raw["Patient ID"].nunique()
    assert size["views"] == raw["View Position"].value_counts().to_dict()
