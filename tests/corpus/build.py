"""The malformed-input corpus, made by code: each builder writes one bad input into a folder and returns its path.

Nothing here is a binary blob in git: every file is written from a small, valid starting point and then broken in
exactly one way, so a reader sees what each case is. `tests/corpus/cases.py` names every case and the behaviour it
must get; `tests/test_corpus.py` runs them.
"""

from __future__ import annotations

import copy
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROWS = COLS = 48  # small: the corpus builds in well under a second


# ---------------------------------------------------------------------------------------------- DICOM


def dicom_dataset(rows: int = ROWS, cols: int = COLS, *, view: str = "PA", bits_stored: int = 12, seed: int = 0):
    """A valid, uncompressed MONOCHROME2 16-bit CR DICOM dataset (the starting point every DICOM case breaks)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR image storage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(seed), view, str(rows)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("corpus", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = f"corpus-{seed}"
    ds.ViewPosition = view
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 2**bits_stored, size=(rows, cols), dtype=np.uint16).tobytes()
    return ds


def save_dicom(ds, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_good(folder: Path, name: str = "good.dcm", view: str = "PA", seed: int = 0) -> Path:
    return save_dicom(dicom_dataset(view=view, seed=seed), folder / name)


def dicom_truncated(folder: Path) -> Path:
    good = dicom_good(folder, "whole.dcm").read_bytes()
    path = folder / "truncated.dcm"
    path.write_bytes(good[: len(good) // 2])  # ends in the middle of PixelData
    return path


def dicom_truncated_header(folder: Path) -> Path:
    good = dicom_good(folder, "whole.dcm").read_bytes()
    path = folder / "truncated-header.dcm"
    path.write_bytes(good[:200])  # preamble + a few meta elements
    return path


def dicom_zero_bytes(folder: Path) -> Path:
    path = folder / "zero.dcm"
    path.write_bytes(b"")
    return path


def dicom_not_dicom(folder: Path) -> Path:
    path = folder / "report.dcm"
    path.write_text("Patient report: no findings. This is a text file with a .dcm name.\n" * 20)
    return path


def dicom_no_pixel_data(folder: Path) -> Path:
    ds = dicom_dataset()
    del ds.PixelData
    return save_dicom(ds, folder / "no-pixels.dcm")


def dicom_pixel_data_short(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]  # a consistent element, just too few bytes for Rows x Cols
    return save_dicom(ds, folder / "short-pixels.dcm")


def dicom_bits_stored_over_allocated(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.BitsStored, ds.HighBit = 20, 19  # 20 stored bits in a 16-bit container is impossible
    return save_dicom(ds, folder / "bits-stored.dcm")


def dicom_unknown_transfer_syntax(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7.8.9"  # no such syntax: no decoder can exist for it
    path = folder / "unknown-syntax.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    # enforce_file_format would refuse the unknown UID; write little-endian explicit under the bogus UID.
    ds.save_as(path, implicit_vr=False, little_endian=True)
    return path


def dicom_rgb(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = np.random.default_rng(1).integers(0, 256, size=(ROWS, COLS, 3), dtype=np.uint8).tobytes()
    return save_dicom(ds, folder / "rgb.dcm")


def dicom_multi_frame(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3
    return save_dicom(ds, folder / "multi-frame.dcm")


def dicom_lateral(folder: Path) -> Path:
    return dicom_good(folder, "lateral.dcm", view="LATERAL")


def dicom_absurd_window(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.WindowCenter, ds.WindowWidth = "1e30", "-5"  # a negative width and an astronomic centre
    ds.RescaleSlope, ds.RescaleIntercept = "1e20", "-1e25"
    return save_dicom(ds, folder / "absurd-window.dcm")


def dicom_huge_window(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.WindowCenter, ds.WindowWidth = "1e30", "1e30"  # legal but absurd: must still give a finite [0, 1] image
    return save_dicom(ds, folder / "huge-window.dcm")


def dicom_overflowing_rescale(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.RescaleSlope, ds.RescaleIntercept = "1e308", "0"  # 4095 x 1e308 overflows to infinity in float64
    return save_dicom(ds, folder / "overflow-rescale.dcm")


def dicom_rows_zero(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.Rows = 0
    return save_dicom(ds, folder / "rows-zero.dcm")


def dicom_monochrome1_flat(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = np.full((ROWS, COLS), 7, dtype=np.uint16).tobytes()
    return save_dicom(ds, folder / "flat-monochrome1.dcm")


# ---------------------------------------------------------------------------------------------- PNG / JPEG


def _pil_bytes(array: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def gradient8() -> np.ndarray:
    return (np.add.outer(np.arange(ROWS), np.arange(COLS)) * 255 // (ROWS + COLS - 2)).astype(np.uint8)


def png_truncated(folder: Path) -> Path:
    data = _pil_bytes(np.random.default_rng(2).integers(0, 256, (256, 256), dtype=np.uint8), "PNG")
    path = folder / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def jpeg_truncated(folder: Path) -> Path:
    data = _pil_bytes(np.random.default_rng(3).integers(0, 256, (256, 256), dtype=np.uint8), "JPEG")
    path = folder / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


def png_16bit(folder: Path) -> Path:
    """A real 16-bit greyscale PNG whose values span 0..65535: must load as value / 65535, not clipped to 8 bits."""
    path = folder / "sixteen.png"
    path.write_bytes(_pil_bytes(png_16bit_values(), "PNG"))
    return path


def png_16bit_values() -> np.ndarray:
    ramp = np.linspace(0, 65535, ROWS * COLS).round().astype(np.uint16)
    return ramp.reshape(ROWS, COLS)


def png_named_dcm(folder: Path) -> Path:
    path = folder / "really-a-png.dcm"
    path.write_bytes(_pil_bytes(gradient8(), "PNG"))
    return path


def dicom_named_png(folder: Path) -> Path:
    path = folder / "really-a-dicom.png"
    path.write_bytes(dicom_good(folder, "source.dcm").read_bytes())
    return path


def jpeg_named_png(folder: Path) -> Path:
    """A JPEG with a .png name decodes fine: Pillow reads the content, not the name (the safe direction)."""
    path = folder / "really-a-jpeg.png"
    path.write_bytes(_pil_bytes(gradient8(), "JPEG"))
    return path


# ---------------------------------------------------------------------------------------------- metadata (csv kind)

CSV_COLUMNS = ["image_id", "patient_id", "study_id", "path", "view", "effusion"]


def csv_dataset_card(**overrides) -> dict:
    """A `csv`-kind dataset card for the metadata cases (the same shape as registry/datasets/demo-cxr.yaml)."""
    card = {
        "id": "corpus-csv", "kind": "csv", "title": "Corpus", "access": "made by tests/corpus/build.py",
        "files": {"metadata": ["metadata.csv"]},
        "columns": {"image_id": "image_id", "patient_id": "patient_id", "study_id": "study_id", "path": "path",
                    "view": "view"},
        "labels": {"effusion": {"column": "effusion"}},
    }
    card.update(overrides)
    return card


def good_rows(n: int = 6) -> list[dict]:
    return [{"image_id": f"img{i}", "patient_id": f"p{i // 2}", "study_id": f"s{i}", "path": f"files/img{i}.dcm",
             "view": "PA", "effusion": "1.0" if i % 2 else "0.0"} for i in range(n)]


def write_csv(folder: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metadata.csv"
    columns = columns or CSV_COLUMNS
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return folder


def _with(rows: list[dict], index: int, **changes) -> list[dict]:
    rows = copy.deepcopy(rows)
    rows[index].update(changes)
    return rows


def meta_missing_column(folder: Path) -> Path:
    return write_csv(folder, good_rows(), [c for c in CSV_COLUMNS if c != "patient_id"])


def meta_missing_label_column(folder: Path) -> Path:
    return write_csv(folder, good_rows(), [c for c in CSV_COLUMNS if c != "effusion"])


def meta_blank_label(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 1, effusion=""))


def meta_nan_label(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 1, effusion="NaN"))


def meta_duplicate_rows(folder: Path) -> Path:
    rows = good_rows()
    return write_csv(folder, rows + [rows[2]])


def meta_label_outside_policy(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 3, effusion="2"))


def meta_label_text(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 3, effusion="maybe"))


def meta_patient_missing(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 4, patient_id=""))


def meta_image_id_missing(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 0, image_id=""))


def meta_blank_view(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 5, view=""))


def meta_feature_not_finite(folder: Path) -> Path:
    """A numeric metadata feature holding text, "inf", "-inf" and an overflowing 1e999."""
    rows = good_rows()
    for i, age in enumerate(["61", "inf", "-inf", "1e999", "sixty", ""]):
        rows[i]["age"] = age
    return write_csv(folder, rows, [*CSV_COLUMNS, "age"])


def meta_path_dotdot(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 2, path="../../etc/passwd"))


def meta_path_absolute(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 2, path="/etc/passwd"))


def meta_path_blank(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 2, path=""))


def meta_not_utf8(folder: Path) -> Path:
    write_csv(folder, good_rows())
    path = folder / "metadata.csv"
    path.write_bytes(path.read_bytes() + b"img9,p9,s9,files/\xff\xfe.dcm,PA,1.0\n")
    return folder


def meta_missing_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder  # no metadata.csv at all


# ---------------------------------------------------------------------------------------------- cards

GOOD_DATASET_CARD = """\
id: {id}
kind: csv
title: Corpus dataset
synthetic: false
access: made by tests/corpus/build.py
files:
  metadata: [metadata.csv]
columns: {{image_id: image_id, patient_id: patient_id, study_id: study_id, path: path, view: view}}
labels:
  effusion: {{column: effusion}}
"""


def _card(folder: Path, kind_dir: str, name: str, text: str | bytes) -> Path:
    path = folder / kind_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def task_card_text(task_id: str, dataset: str = "demo-cxr", extra: str = "") -> str:
    return (f"extends: _defaults.yaml\nid: {task_id}\ntitle: Corpus task\ndataset: {dataset}\n"
            f"label: {{id: effusion, name: Effusion}}\nsampling: {{positives: 10, negatives: 10}}\n{extra}")


def card_duplicate_key(folder: Path) -> Path:
    text = task_card_text("dup") + "title: Second title\n"
    return _card(folder, "tasks", "dup.yaml", text)


def card_type_unknown(folder: Path) -> Path:
    return _card(folder, "tasks", "typo-type.yaml", task_card_text("typo-type", extra="type: retreival\n"))


def card_type_block_missing(folder: Path) -> Path:
    return _card(folder, "tasks", "zs-noprompts.yaml", task_card_text("zs-noprompts", extra="type: zero-shot\n"))


def card_multilabel_unknown_label(folder: Path) -> Path:
    text = task_card_text("ml-typo", extra="type: multi-label\nlabels: [{id: effusion, name: E}, {id: efusion, "
                                           "name: F}]\n").replace("sampling: {positives: 10, negatives: 10}",
                                                                   "sampling: {images: 20, seed: 0}")
    return _card(folder, "tasks", "ml-typo.yaml", text)


def card_sampling_two_modes(folder: Path) -> Path:
    text = task_card_text("two-modes").replace("sampling: {positives: 10, negatives: 10}",
                                               "sampling: {positives: 10, negatives: 10, images: 20}")
    return _card(folder, "tasks", "two-modes.yaml", text)


def card_zero_shot_prompts_for_another_label(folder: Path) -> Path:
    extra = "type: zero-shot\nzero_shot: {prompts: {edema: {positive: [edema], negative: [no edema]}}}\n"
    return _card(folder, "tasks", "zs-other.yaml", task_card_text("zs-other", extra=extra))


def card_unknown_key(folder: Path) -> Path:
    return _card(folder, "tasks", "unknown.yaml", task_card_text("unknown", extra="sampel_size: 3\n"))


def card_wrong_type(folder: Path) -> Path:
    text = task_card_text("wrongtype").replace("positives: 10", "positives: ten")
    return _card(folder, "tasks", "wrongtype.yaml", text)


def card_extends_cycle(folder: Path) -> Path:
    _card(folder, "tasks", "_a.yaml", "extends: _b.yaml\nviews: [PA]\n")
    _card(folder, "tasks", "_b.yaml", "extends: _a.yaml\nviews: [AP]\n")
    return _card(folder, "tasks", "cycle.yaml", task_card_text("cycle").replace("_defaults.yaml", "_a.yaml"))


def card_extends_self(folder: Path) -> Path:
    return _card(folder, "tasks", "selfref.yaml", task_card_text("selfref").replace("_defaults.yaml", "selfref.yaml"))


def card_extends_nul(folder: Path) -> Path:
    return _card(folder, "tasks", "nul.yaml", task_card_text("nul").replace("_defaults.yaml", '"_defaults\\0.yaml"'))


def card_dataset_path_dotdot(folder: Path) -> Path:
    text = GOOD_DATASET_CARD.format(id="dotdot").replace("[metadata.csv]", "[../../../etc/passwd]")
    return _card(folder, "registry/datasets", "dotdot.yaml", text)


def card_dataset_path_absolute(folder: Path) -> Path:
    text = GOOD_DATASET_CARD.format(id="abspath").replace("[metadata.csv]", "[/etc/passwd]")
    return _card(folder, "registry/datasets", "abspath.yaml", text)


TABLE_DATASET_CARD = """\
id: {id}
kind: table
title: Corpus table dataset
synthetic: false
access: made by tests/corpus/build.py
files:
  metadata: [metadata.csv]
derive:
  relpath: {{template: "files/{{image_id}}.dcm"{extra}}}
columns: {{image_id: image_id, patient_id: patient_id, path: relpath}}
labels:
  effusion: {{column: class_name, contains: Effusion}}
reads: {{rater_column: rad_id, positive_min: {readers}}}
"""


def card_derive_two_sources(folder: Path) -> Path:
    text = TABLE_DATASET_CARD.format(id="twosources", extra=", from: image_id", readers=2)
    return _card(folder, "registry/datasets", "twosources.yaml", text)


def card_reads_zero_readers(folder: Path) -> Path:
    text = TABLE_DATASET_CARD.format(id="zeroreaders", extra="", readers=0)
    return _card(folder, "registry/datasets", "zeroreaders.yaml", text)


def card_huge_number(folder: Path) -> Path:
    text = task_card_text("huge").replace("positives: 10", "positives: " + "9" * 400)
    return _card(folder, "tasks", "huge.yaml", text)


def card_huge_float(folder: Path) -> Path:
    text = task_card_text("hugefloat", extra="classifier: {params: {learning_rate: 1.0e+999}}\n")
    return _card(folder, "tasks", "hugefloat.yaml", text)


def card_nan_number(folder: Path) -> Path:
    return _card(folder, "tasks", "nanthreshold.yaml", task_card_text("nanthreshold", extra="metrics: {threshold: .nan}\n"))


def card_not_utf8(folder: Path) -> Path:
    return _card(folder, "tasks", "latin1.yaml", task_card_text("latin1").replace("Corpus task", "Épanchement")
                 .encode("latin-1"))


def card_not_yaml(folder: Path) -> Path:
    return _card(folder, "tasks", "broken.yaml", "id: broken\ntitle: [unclosed\n  dataset: demo-cxr\n")


def card_top_level_list(folder: Path) -> Path:
    return _card(folder, "tasks", "alist.yaml", "- id: alist\n- dataset: demo-cxr\n")


def card_yaml_python_tag(folder: Path) -> Path:
    """A YAML tag that an unsafe loader would execute; the safe loader must refuse it."""
    return _card(folder, "tasks", "evil.yaml", task_card_text("evil", extra="notes: !!python/object/apply:os.system ['touch pwned']\n"))


def card_unknown_dataset(folder: Path) -> Path:
    return _card(folder, "tasks", "nodata.yaml", task_card_text("nodata", dataset="mimic-cxx"))


def card_deep_nesting(folder: Path) -> Path:
    return _card(folder, "tasks", "deep.yaml", "id: deep\nnotes: " + "[" * 5000 + "]" * 5000 + "\n")


def card_empty(folder: Path) -> Path:
    return _card(folder, "tasks", "empty.yaml", "")


def card_metadata_feature_type(folder: Path) -> Path:
    text = GOOD_DATASET_CARD.format(id="badfeature") + "metadata_features:\n  - {name: view, column: view, type: text}\n"
    return _card(folder, "registry/datasets", "badfeature.yaml", text)


def card_metadata_feature_name(folder: Path) -> Path:
    text = GOOD_DATASET_CARD.format(id="badname") + \
        "metadata_features:\n  - {name: ../x, column: view, type: categorical}\n"
    return _card(folder, "registry/datasets", "badname.yaml", text)


def card_match_unknown_stratum(folder: Path) -> Path:
    text = task_card_text("badmatch").replace("negatives: 10}", "negatives: 10, match: {strata: [colour]}}")
    return _card(folder, "tasks", "badmatch.yaml", text)


def card_training_dataset_traversal(folder: Path) -> Path:
    text = (folder / "encoders" / "pixels.yaml").read_text(encoding="utf-8").replace("id: pixels", "id: pixels-bad")
    text = text.replace("training_datasets: []", 'training_datasets: ["../../etc"]')
    return _card(folder, "encoders", "pixels-bad.yaml", text)


# ---------------------------------------------------------------------------------------------- results

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def write_json_text(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def result_with(base: dict, folder: Path, name: str, mutate) -> Path:
    obj = copy.deepcopy(base)
    mutate(obj)
    return write_json_text(folder, name, json.dumps(obj, indent=1))


def result_nan(base: dict, folder: Path) -> Path:
    obj = copy.deepcopy(base)
    obj["metrics"]["auroc"]["mean"] = float("nan")
    return write_json_text(folder, "nan.json", json.dumps(obj))  # Python writes a bare NaN token


def result_infinity(base: dict, folder: Path) -> Path:
    obj = copy.deepcopy(base)
    obj["folds"][0]["f1"] = float("inf")
    return write_json_text(folder, "inf.json", json.dumps(obj))


def result_forged_card_hash(base: dict, folder: Path) -> Path:
    return result_with(base, folder, "forged-card.json", lambda o: o["task"].update(behaviour_sha256="0" * 64))


def result_forged_encoder_hash(base: dict, folder: Path) -> Path:
    return result_with(base, folder, "forged-encoder.json", lambda o: o["encoder"].update(behaviour_sha256="f" * 64))


def result_forged_manifest_hash(base: dict, folder: Path) -> Path:
    """The result claims a manifest hash other than the manifest.json beside it (written by the caller)."""
    return result_with(base, folder, "result.json", lambda o: o["manifest"].update(sha256="1" * 64))


def result_unknown_task(base: dict, folder: Path) -> Path:
    return result_with(base, folder, "unknown-task.json", lambda o: o["task"].update(id="effusion-mars"))


def result_html(base: dict, folder: Path) -> Path:
    def mutate(o):
        o["encoder"]["name"] = HOSTILE
        o["counts"]["exclusions"][0]["reason"] = "at embedding: " + HOSTILE  # a recorded exclusion, still hostile
        o["notes"] = HOSTILE
    return result_with(base, folder, "html.json", mutate)


def result_huge_file(folder: Path, size: int = 100 * 1024 * 1024) -> Path:
    """A 100 MB result file, sparse: a valid-looking JSON start and a hole; never held in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "huge.json"
    with path.open("wb") as handle:
        handle.write(b'{"schema_version": 1, "notes": "')
        handle.truncate(size)
    return path


def result_duplicate_key(base: dict, folder: Path) -> Path:
    text = json.dumps(base)
    return write_json_text(folder, "dupkey.json", text[:-1] + ', "provenance": "reported"}')


def result_deep_nesting(folder: Path) -> Path:
    return write_json_text(folder, "deep.json", '{"notes": ' + "[" * 100_000 + "]" * 100_000 + "}")


def result_not_object(folder: Path) -> Path:
    return write_json_text(folder, "list.json", "[1, 2, 3]")


def result_not_json(folder: Path) -> Path:
    return write_json_text(folder, "garbage.json", "{'single': quotes}")


def sparse_size(path: Path) -> tuple[int, int]:
    """(apparent size, bytes actually allocated) of a file."""
    st = os.stat(path)
    return st.st_size, getattr(st, "st_blocks", 0) * 512


# ============================================================================================ issue 13: hostile input

SECRET = "SECRET-TOKEN-do-not-print"  # content of files that must be refused without being echoed


def _outside_secret(folder: Path) -> Path:
    """A file outside the registry / data root that a hostile card or link points at."""
    path = folder.parent / f"outside-{folder.name}" / "secret.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"root:x:0:0:{SECRET}\n")
    return path


# ---------------------------------------------------------------------------------------------- cards


def card_billion_laughs(folder: Path) -> Path:
    """Nine levels of nine aliases: 9^9 = 387 million leaves if anything expanded it."""
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return _card(folder, "tasks", "laughs.yaml", task_card_text("laughs") + "notes:\n" + "".join(
        f"  {line}\n" for line in lines))


def card_single_alias(folder: Path) -> Path:
    text = task_card_text("alias").replace("sampling: {positives: 10, negatives: 10}",
                                           "sampling: &s {positives: 10, negatives: 10}") + "split: *s\n"
    return _card(folder, "tasks", "alias.yaml", text)


def card_symlink_dev_zero(folder: Path) -> Path:
    path = folder / "tasks" / "zero.yaml"
    path.symlink_to("/dev/zero")
    return path


def card_is_dev_zero(folder: Path) -> Path:
    return Path("/dev/zero")


def card_fifo(folder: Path) -> Path:
    path = folder / "tasks" / "fifo.yaml"
    os.mkfifo(path)
    return path


def card_too_large(folder: Path) -> Path:
    return _card(folder, "tasks", "large.yaml", task_card_text("large") + "# " + "x" * 1_100_000 + "\n")


def card_symlink_outside(folder: Path) -> Path:
    outside = folder.parent / f"outside-{folder.name}" / "evil.yaml"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text(task_card_text("evil"))
    path = folder / "tasks" / "evil.yaml"
    path.symlink_to(outside)
    return path


def card_extends_outside(folder: Path) -> Path:
    outside = folder.parent / f"outside-{folder.name}" / "_defaults.yaml"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text((folder / "tasks" / "_defaults.yaml").read_text())
    rel = os.path.relpath(outside, folder / "tasks")
    return _card(folder, "tasks", "escape.yaml", task_card_text("escape").replace("_defaults.yaml", rel))


def card_extends_absolute(folder: Path) -> Path:
    secret = _outside_secret(folder)
    return _card(folder, "tasks", "absext.yaml", task_card_text("absext").replace("_defaults.yaml", str(secret)))


def card_extends_symlink_outside(folder: Path) -> Path:
    secret = _outside_secret(folder)
    (folder / "tasks" / "_linked.yaml").symlink_to(secret)
    return _card(folder, "tasks", "linkext.yaml", task_card_text("linkext").replace("_defaults.yaml", "_linked.yaml"))


def card_id_newline(folder: Path) -> Path:
    return _card(folder, "tasks", "newline.yaml", task_card_text("newline").replace("id: newline", 'id: "newline\\n"'))


def card_fallback_folder_dotdot(folder: Path) -> Path:
    text = GOOD_DATASET_CARD.format(id="fallback") + (
        "fallback_package: {name: torchxrayvision, folder: ../../../../etc, tables: [metadata]}\n")
    return _card(folder, "registry/datasets", "fallback.yaml", text)


def card_files_nul(folder: Path) -> Path:
    text = GOOD_DATASET_CARD.format(id="nulpath").replace("[metadata.csv]", '["meta\\0data.csv"]')
    return _card(folder, "registry/datasets", "nulpath.yaml", text)


def card_weights_file_dotdot(folder: Path) -> Path:
    text = (folder / "encoders" / "rad-dino.yaml").read_text().replace(
        "id: rad-dino", "id: evil-weights").replace("files: [config.json, model.safetensors]",
                                                    "files: [config.json, ../../../.ssh/id_rsa]")
    return _card(folder, "encoders", "evil-weights.yaml", text)


def card_invalid_yaml_hides_content(folder: Path) -> Path:
    return _card(folder, "tasks", "leaky.yaml", f"id: leaky\npassword: {SECRET}\n  bad: [indent\n")


def card_seed_negative(folder: Path) -> Path:
    return _card(folder, "tasks", "negseed.yaml", task_card_text("negseed").replace(
        "sampling: {positives: 10, negatives: 10}", "sampling: {positives: 10, negatives: 10, seed: -1}"))


def card_seed_huge(folder: Path) -> Path:
    return _card(folder, "tasks", "bigseed.yaml", task_card_text("bigseed") + "split: {method: stratified-group-kfold, "
                 "folds: 5, seed: 18446744073709551616}\n")


def card_budget_out_of_range(folder: Path) -> Path:
    return _card(folder, "tasks", "budget.yaml", task_card_text("budget").replace(
        "sampling: {positives: 10, negatives: 10}", "sampling: {positives: 10, negatives: 10, max_excluded_fraction: 1.5}"))


# ---------------------------------------------------------------------------------------------- images: bombs


def dicom_declared_huge(folder: Path) -> Path:
    """Rows x Columns = 60,000 x 60,000 declared, a few bytes present: excluded before any decode or allocation."""
    ds = dicom_dataset()
    ds.Rows = ds.Columns = 60_000
    return save_dicom(ds, folder / "declared-huge.dcm")


def png_declared_huge(folder: Path) -> Path:
    """A PNG whose IHDR declares 8,000 x 8,000 (64 MP > the 50 MP bound) with a one-row IDAT."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 8000, 8000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8001)) + chunk(b"IEND", b"")
    path = folder / "declared-huge.png"
    path.write_bytes(data)
    return path


def png_pillow_bomb(folder: Path) -> Path:
    """40,000 x 40,000 declared: past Pillow's own DecompressionBombError limit, refused at open."""
    path = png_declared_huge(folder)
    data = path.read_bytes()
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)
    fixed = data[:8] + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    out = folder / "pillow-bomb.png"
    out.write_bytes(fixed + data[8 + 25:])
    path.unlink()
    return out


def dicom_deflate_bomb(folder: Path) -> Path:
    """A deflated DICOM of 6,000 x 6,000 zeros (36 MP, 72 MB inflated, ~70 KB on disk): under the default bound, so
    the corpus test checks it with a bound of 1 MP (the dataset card field), where it must be refused before inflating."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = dicom_dataset()
    ds.Rows = ds.Columns = 6000
    ds.PixelData = bytes(6000 * 6000 * 2)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return save_dicom(ds, folder / "deflate-bomb.dcm")


# ---------------------------------------------------------------------------------------------- metadata


def meta_same_file_two_ids(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 3, path="files/img2.dcm"))


def meta_same_file_two_patients(folder: Path) -> Path:
    return write_csv(folder, _with(good_rows(), 5, path="./files/img0.dcm", patient_id="p77"))


def meta_table_symlink_outside(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.csv").symlink_to(_outside_secret(folder))
    return folder


def meta_parse_error_hides_content(folder: Path) -> Path:
    write_csv(folder, good_rows())
    path = folder / "metadata.csv"
    path.write_text(path.read_text() + f"img9,p9,s9,files/img9.dcm,PA,1.0,{SECRET},extra\n")
    return folder


# ---------------------------------------------------------------------------------------------- scenarios
# Each runs one hostile situation end to end at the API and returns what the user is told (an error message or the
# recorded exclusion reasons); tests/test_corpus.py checks it contains the case's `expect`, never its `forbid`, and
# that nothing raised a traceback-worthy exception.


def _pixels_setup(tmp: Path, n: int = 4):
    """n good DICOMs under tmp/data/files, a manifest frame for them, the pixels encoder and a cache."""
    import pandas as pd

    from runner.embed.cache import EmbeddingCache
    from runner.encoders import load_encoder

    rows = []
    for i in range(n):
        dicom_good(tmp / "data" / "files", f"img{i}.dcm", seed=i)
        rows.append({"image_id": f"img{i}", "path": f"files/img{i}.dcm"})
    card = {"id": "pixels", "adapter": "pixels", "embedding": {"dim": 16},
            "preprocess": {"size": 4, "channels": 1, "interpolation": "area", "normalize": "none", "bit_depth": "float"}}
    cache = EmbeddingCache("corpus", card["preprocess"], root=tmp / "cache")
    return pd.DataFrame(rows), load_encoder(card, device="cpu"), cache, card


def _embed(tmp: Path, frame, encoder, card, cache_root=None):
    from runner.embed.cache import EmbeddingCache
    from runner.embed.embedding import embed_manifest

    cache = EmbeddingCache("corpus", card["preprocess"], root=cache_root or tmp / "cache")
    out = embed_manifest(frame, tmp / "data", "corpus", encoder, cache, workers=0, progress=False)
    return out, cache


def _failing_load(exc: BaseException, victim: str):
    from runner.data import imaging

    real = imaging.load_image

    def load(path, *args, **kwargs):
        if Path(path).name == victim:
            raise exc
        return real(path, *args, **kwargs)
    return load


def _transient(tmp: Path, exc: BaseException) -> str:
    """One image fails with a transient error: excluded with a reason, the run goes on, nothing is remembered;
    the next run (error gone) embeds it."""
    from runner.embed import cpu_pool

    frame, encoder, _cache, card = _pixels_setup(tmp)
    real = cpu_pool.load_image  # the embed stage's reader (imported by name there)
    cpu_pool.load_image = _failing_load(exc, "img1.dcm")
    try:
        out, _cache = _embed(tmp, frame, encoder, card)
    finally:
        cpu_pool.load_image = real
    reasons = [e["reason"] for e in out.exclusions]
    assert len(out.image_ids) == 3 and len(reasons) == 1, (out.image_ids, reasons)
    again, _ = _embed(tmp, frame, encoder, card)
    assert len(again.image_ids) == 4 and again.n_computed == 1, "a transient failure was remembered"
    return reasons[0] + " (not cached; the next run embedded it)"


def scenario_oom_decode(tmp: Path) -> str:
    return _transient(tmp, MemoryError())


def scenario_eio_read(tmp: Path) -> str:
    import errno

    return _transient(tmp, OSError(errno.EIO, "Input/output error"))


def scenario_timeout_read(tmp: Path) -> str:
    return _transient(tmp, TimeoutError("network file system timed out"))


def scenario_permanent_failure_is_remembered(tmp: Path) -> str:
    """The control: a truncated file fails the same way every time, so it is remembered (no second decode)."""
    frame, encoder, _cache, card = _pixels_setup(tmp)
    path = tmp / "data" / "files" / "img2.dcm"
    path.write_bytes(path.read_bytes()[:300])
    out, _ = _embed(tmp, frame, encoder, card)
    again, _ = _embed(tmp, frame, encoder, card)
    assert again.n_computed == 0, "a permanent failure was decoded again"
    return out.exclusions[0]["reason"] + " (remembered)"


def _corrupt_cache(tmp: Path, corrupt) -> str:
    import contextlib
    import io

    frame, encoder, _cache, card = _pixels_setup(tmp)
    _embed(tmp, frame, encoder, card)
    namespace = next((tmp / "cache").iterdir())
    corrupt(namespace)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out, cache = _embed(tmp, frame, encoder, card)
    assert len(out.image_ids) == 4 and out.n_computed > 0, "the corrupt shard was not recomputed"
    assert any((namespace / "quarantine").iterdir()), "nothing was moved aside"
    return err.getvalue() + " | ".join(cache.quarantined)


def scenario_cache_npy_truncated(tmp: Path) -> str:
    def corrupt(ns: Path):
        shard = next(ns.glob("shard-*.npy"))
        shard.write_bytes(shard.read_bytes()[:40])
    return _corrupt_cache(tmp, corrupt)


def scenario_cache_keys_garbage(tmp: Path) -> str:
    return _corrupt_cache(tmp, lambda ns: next(ns.glob("shard-*.keys.json")).write_text("{not json"))


def scenario_cache_rows_mismatch(tmp: Path) -> str:
    def corrupt(ns: Path):
        keys = next(ns.glob("shard-*.keys.json"))
        meta = json.loads(keys.read_text())
        meta["keys"].append("extra-key")
        keys.write_text(json.dumps(meta))
    return _corrupt_cache(tmp, corrupt)


def scenario_cache_npy_pickle(tmp: Path) -> str:
    """A shard replaced by a pickled object array: np.load(allow_pickle=False) refuses it; nothing is unpickled."""
    def corrupt(ns: Path):
        shard = next(ns.glob("shard-*.npy"))
        np.save(shard, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    return _corrupt_cache(tmp, corrupt)


def scenario_cache_failed_record_garbage(tmp: Path) -> str:
    import contextlib
    import io

    from runner.embed.cache import EmbeddingCache

    _frame, _encoder, cache, card = _pixels_setup(tmp)
    cache.put_failures({"k": "decode-failed: truncated"})
    next(cache.dir.glob("failed-*.json")).write_text("[1, 2")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        EmbeddingCache("corpus", card["preprocess"], root=tmp / "cache")
    return err.getvalue()


@contextmanager
def _card_checks_kept_in(cache: Path):
    """registry.card_memo keeps card checks under `cache` (this process's memo empty before and after)."""
    from registry import card_memo, cards

    saved = os.environ.get(card_memo.CACHE_ENV)
    os.environ[card_memo.CACHE_ENV] = str(cache)
    cards._CHECKED.clear()
    try:
        yield
    finally:
        cards._CHECKED.clear()
        if saved is None:
            os.environ.pop(card_memo.CACHE_ENV, None)
        else:
            os.environ[card_memo.CACHE_ENV] = saved


def _card_memo_damaged(tmp: Path, damage) -> str:
    """A task card loaded (its check kept on disk under tmp/cache), every kept entry damaged, the card loaded again
    with this process's memo empty: it must come out exactly as the first time."""
    from registry import cards

    card = Path(__file__).resolve().parents[2] / "tasks" / "effusion-mimic.yaml"
    with _card_checks_kept_in(tmp / "cache"):
        first = cards.load_card(card)
        entries = sorted((tmp / "cache" / "card-checks").rglob("*.json"))
        assert entries, "the check was not kept"
        for entry in entries:
            damage(entry)
        cards._CHECKED.clear()
        again = cards.load_card(card)
    assert (again.data, again.sha256, again.behaviour_sha256) == (first.data, first.sha256, first.behaviour_sha256)
    return (f"{len(entries)} damaged entry: a miss, the card checked again (seed {again.data['sampling']['seed']}, "
            f"sha256 {again.sha256[:12]}, as the first load)")


def scenario_card_memo_tampered(tmp: Path) -> str:
    def tamper(entry: Path):
        kept = json.loads(entry.read_text())
        kept["filled"]["sampling"]["seed"] = 7  # its recorded sha256 left as it was
        entry.write_text(json.dumps(kept))
    return _card_memo_damaged(tmp, tamper)


def scenario_card_memo_garbage(tmp: Path) -> str:
    return _card_memo_damaged(tmp, lambda entry: entry.write_text("{not json"))


def scenario_card_memo_link(tmp: Path) -> str:
    """Six older code-version folders and a link to a folder outside the cache, then a card checked by new registry
    code: its new folder prunes the oldest folders, never the link or what it points to."""
    from registry import card_memo, cards

    outside = tmp / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    checks = tmp / "cache" / "card-checks"
    for i in range(6):
        (checks / f"old-code-{i}").mkdir(parents=True)
        os.utime(checks / f"old-code-{i}", (1e9 - i, 1e9 - i))
    (checks / "linked").symlink_to(outside)
    with _card_checks_kept_in(tmp / "cache"):
        cards.load_card(Path(__file__).resolve().parents[2] / "tasks" / "effusion-mimic.yaml")
    assert (outside / "keep.txt").read_text() == "mine" and (checks / "linked").is_symlink()
    old = sorted(f.name for f in checks.iterdir() if f.name.startswith("old-code-"))
    assert old == [f"old-code-{i}" for i in range(card_memo.KEEP_CODE_VERSIONS - 1)], old
    return f"{len(old)} older code folders kept (the newest), the link and what it points to untouched"


def scenario_layout_same_size_and_time(tmp: Path) -> str:
    """registry.benchmarks keeps each layout it read; an edit that keeps the file's length and mtime is read again."""
    import yaml

    from registry.benchmarks import benchmarks_path, load_layout

    path = tmp / "registry" / "benchmarks.yaml"
    path.parent.mkdir(parents=True)

    def write(heading):
        path.write_text(yaml.safe_dump({"benchmarks": [{"id": "a", "title": "A"}], "leaderboard": {
            "sections": [{"id": "s", "heading": heading, "benchmarks": ["a"]}]}}), encoding="utf-8")

    write("Alpha")
    assert benchmarks_path(tmp) == path and load_layout(tmp).sections[0].heading == "Alpha"
    before = path.stat()
    write("Gamma")  # as long as "Alpha"
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    heading = load_layout(tmp).sections[0].heading
    assert heading == "Gamma", heading
    return f"same size and mtime, new content: read again (heading {heading!r})"


def _refused_without_waiting(fifo: Path, read, what: str) -> str:
    """`read()` on a registry file that is a FIFO: the CardError it raises at once ("loaded" if none); fails if it
    waits for a writer (a blocked open is released first, so that the run goes on)."""
    import threading

    from registry.errors import CardError

    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            read()
            outcome.append("loaded")
        except CardError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(20)
    if reader.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        raise AssertionError(f"{what} waited on a FIFO")
    return outcome[0]


def scenario_layout_fifo(tmp: Path) -> str:
    """registry/benchmarks.yaml is a FIFO: load_layout refuses it at once instead of waiting for a writer."""
    from registry.benchmarks import load_layout

    return _refused_without_waiting(tmp / "registry" / "benchmarks.yaml", lambda: load_layout(tmp), "load_layout")


def scenario_floors_fifo(tmp: Path) -> str:
    """leaderboard/floors.yaml is a FIFO: file_floors refuses it at once, before anything is evaluated."""
    from leaderboard.filing.file_floors import read_floor_cells
    from registry.cards import load_registry

    path = tmp / "leaderboard" / "floors.yaml"
    registry = load_registry()
    return _refused_without_waiting(path, lambda: read_floor_cells(path, registry), "read_floor_cells")


def scenario_nul_byte_path(tmp: Path) -> str:
    """A NUL byte in a metadata path: that image is excluded (sampling and embedding), the others go on."""
    from runner.sample.sampler import check_file

    frame, encoder, _cache, card = _pixels_setup(tmp)
    frame.loc[1, "path"] = "files/img\x001.dcm"
    out, _ = _embed(tmp, frame, encoder, card)
    assert len(out.image_ids) == 3
    reason, _detail, _view = check_file(str(tmp / "data"), "files/img\x001.dcm", "decode", None)
    return f"embedding: {out.exclusions[0]['reason']}; sampling: {reason}"


def scenario_deflate_bomb_bounded(tmp: Path) -> str:
    from runner.data.imaging import ImageDecodeError, load_image

    path = dicom_deflate_bomb(tmp)
    assert path.stat().st_size < 2_000_000  # small on disk
    try:
        load_image(path, max_pixels=1_000_000)
    except ImageDecodeError as exc:
        return f"{exc.reason}: {exc.detail}"
    return "decoded"


def scenario_dataset_card_pixel_bound(tmp: Path) -> str:
    """The dataset card's max_image_megapixels reaches the sampler: a 48 x 48 image is over a 0.001 MP bound."""
    from runner.data import read_index
    from runner.sample.sampler import sample_task

    rows = good_rows(8)
    for row in rows:
        dicom_good(tmp / "data" / "files", Path(row["path"]).name, seed=int(row["image_id"][3:]))
    root = write_csv(tmp / "data", rows)
    card = csv_dataset_card(max_image_megapixels=0.001)
    task = {"id": "corpus", "label": {"id": "effusion"}, "views": ["PA"],
            "label_policy": {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"},
            "sampling": {"positives": 2, "negatives": 2, "seed": 0},
            "split": {"method": "stratified-group-kfold", "folds": 2, "seed": 0}}
    from runner.data.tables import DataError

    try:
        sample_task(task, card, root, verify="decode", workers=1, index=read_index(card, root, ["effusion"]))
    except DataError as exc:
        return str(exc)
    return "sampled"


def _hf_dataset(folder: Path, ids: list[str], images: list[dict]):
    import datasets

    table = {"image": images, "uid": ids, "patient": [f"p{i}" for i in range(len(ids))],
             "projection": ["PA"] * len(ids), "effusion": [bool(i % 2) for i in range(len(ids))]}
    # The image column as its raw storage struct {bytes, path}: how a data set that references files by path arrives
    # (datasets.Image would embed the referenced file into the data set while saving it).
    image = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    features = datasets.Features({"image": image, "uid": datasets.Value("string"),
                                  "patient": datasets.Value("string"), "projection": datasets.Value("string"),
                                  "effusion": datasets.Value("bool")})
    datasets.Dataset.from_dict(table, features=features).save_to_disk(str(folder))
    return {"id": "tiny-hf", "kind": "huggingface", "title": "tiny", "synthetic": True, "access": "built by the test",
            "columns": {"image_id": "uid", "patient_id": "patient", "image": "image", "view": "projection"},
            "labels": {"effusion": {"column": "effusion"}}}


def _png_item(value: int) -> dict:
    return {"bytes": _pil_bytes(np.full((12, 12), value, dtype=np.uint8), "PNG"), "path": None}


def _read_hf(card: dict, root: Path) -> str:
    from runner.data import read_index
    from runner.data.tables import DataError

    try:
        read_index(card, root)
    except DataError as exc:
        return str(exc)
    return "read"


def scenario_hf_stored_path_outside(tmp: Path) -> str:
    secret = _outside_secret(tmp / "x")
    card = _hf_dataset(tmp / "ds", ["a", "b"], [_png_item(1), {"bytes": None, "path": str(secret)}])
    return _read_hf(card, tmp / "ds")


def scenario_hf_stored_path_dotdot(tmp: Path) -> str:
    _outside_secret(tmp / "ds")
    card = _hf_dataset(tmp / "ds", ["a", "b"], [_png_item(1), {"bytes": None, "path": "../outside-ds/secret.txt"}])
    return _read_hf(card, tmp / "ds")


def scenario_hf_ids_collide_case(tmp: Path) -> str:
    card = _hf_dataset(tmp / "ds", ["img-A", "img-a"], [_png_item(1), _png_item(2)])
    return _read_hf(card, tmp / "ds")


def scenario_hf_ids_collide_row_name(tmp: Path) -> str:
    card = _hf_dataset(tmp / "ds", ["row00000001", "a/b"], [_png_item(1), _png_item(2)])
    return _read_hf(card, tmp / "ds")


def scenario_hf_changed_bytes_rewritten(tmp: Path) -> str:
    """Same id, same size, other pixels: the file written by the first read is re-written, not reused."""
    import shutil

    from runner.data import read_index

    card = _hf_dataset(tmp / "ds", ["a", "b"], [_png_item(10), _png_item(20)])
    first = read_index(card, tmp / "ds").frame
    path = tmp / "ds" / first["path"].iloc[0]
    before = path.read_bytes()
    images = tmp / "ds" / "hf-images"
    shutil.move(images, tmp / "kept-images")
    shutil.rmtree(tmp / "ds")
    card = _hf_dataset(tmp / "ds", ["a", "b"], [_png_item(11), _png_item(20)])
    shutil.move(tmp / "kept-images", images)
    assert len(_png_item(11)["bytes"]) == len(before)  # the same size: size alone cannot tell
    read_index(card, tmp / "ds")
    return "rewritten" if path.read_bytes() == _png_item(11)["bytes"] else "reused stale bytes"


def _fingerprinted(tmp: Path):
    """A manifest of 4 images (verify decode) with its fingerprint; returns (card, root, sampled, fingerprint)."""
    from runner.data import read_index
    from runner.data.fingerprint import data_fingerprint
    from runner.sample.sampler import sample_task

    rows = good_rows(8)
    for row in rows:
        dicom_good(tmp / "data" / "files", Path(row["path"]).name, seed=int(row["image_id"][3:]))
    root = write_csv(tmp / "data", rows)
    card = csv_dataset_card()
    task = {"id": "corpus", "label": {"id": "effusion"}, "views": ["PA"],
            "label_policy": {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"},
            "sampling": {"positives": 2, "negatives": 2, "seed": 0},
            "split": {"method": "stratified-group-kfold", "folds": 2, "seed": 0}}
    sampled = sample_task(task, card, root, verify="decode", workers=1, index=read_index(card, root, ["effusion"]))
    return card, root, sampled, data_fingerprint(card, root, sampled)


def scenario_manifest_other_root(tmp: Path) -> str:
    import shutil

    from runner.data.fingerprint import fingerprint_differences

    card, root, sampled, fingerprint = _fingerprinted(tmp)
    other = tmp / "other"
    shutil.copytree(root, other)
    for rel in sampled.frame["path"].iloc[:3]:
        (other / rel).unlink()
    return str(fingerprint_differences(fingerprint, card, other, sampled.frame))


def scenario_manifest_table_changed(tmp: Path) -> str:
    from runner.data.fingerprint import fingerprint_differences

    card, root, sampled, fingerprint = _fingerprinted(tmp)
    with (root / "metadata.csv").open("a") as handle:
        handle.write("img99,p99,s99,files/img99.dcm,PA,1.0\n")
    return str(fingerprint_differences(fingerprint, card, root, sampled.frame))


def scenario_manifest_image_bytes_changed(tmp: Path) -> str:
    """Same size, new bytes, new mtime: the content hash recorded at sampling tells."""
    from runner.data.fingerprint import fingerprint_differences

    card, root, sampled, fingerprint = _fingerprinted(tmp)
    path = root / sampled.frame["path"].iloc[0]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    touched = fingerprint_differences(fingerprint, card, root, sampled.frame)
    assert fingerprint_differences(fingerprint, card, root, sampled.frame.iloc[1:]) is None  # the others match
    return str(touched)


def scenario_manifest_touched_only(tmp: Path) -> str:
    """A touched file (new mtime, same bytes) is the same data: the manifest is still usable."""
    from runner.data.fingerprint import fingerprint_differences

    card, root, sampled, fingerprint = _fingerprinted(tmp)
    os.utime(root / sampled.frame["path"].iloc[0], ns=(5_000_000_000, 5_000_000_000))
    return str(fingerprint_differences(fingerprint, card, root, sampled.frame) or "matches")


def _cli(args: list[str], env: dict | None = None) -> str:
    from typer.testing import CliRunner

    from runner.cli.main import app

    result = CliRunner().invoke(app, args, env=env or {})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return f"exit {result.exit_code}: {result.stderr.strip()}"


def scenario_cli_sample_seed_negative(tmp: Path) -> str:
    return _cli(["sample", "--task", "effusion-demo", "--seed", "-1"])


def scenario_cli_sample_seed_huge(tmp: Path) -> str:
    return _cli(["sample", "--task", "effusion-demo", "--seed", str(2**64)])


def _site_into(out: Path) -> str:
    from leaderboard.site.render import SiteDirError, build_site
    from tests.support import RESULTS_DIR

    try:
        build_site(out, RESULTS_DIR)
    except SiteDirError as exc:
        return str(exc)
    return "built"


def scenario_site_out_nonempty(tmp: Path) -> str:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("years of work")
    message = _site_into(tmp / "mine")
    assert (tmp / "mine" / "thesis.tex").read_text() == "years of work"
    return message


def scenario_site_out_repo_root(tmp: Path) -> str:
    repo = Path(__file__).resolve().parents[2]
    return _site_into(repo)


def scenario_site_out_inside_registry(tmp: Path) -> str:
    repo = Path(__file__).resolve().parents[2]
    return _site_into(repo / "tasks")


def scenario_site_out_symlinked_subfolder(tmp: Path) -> str:
    (tmp / "site").mkdir()
    (tmp / "elsewhere").mkdir()
    (tmp / "site" / "tasks").symlink_to(tmp / "elsewhere")
    return _site_into(tmp / "site")


def scenario_site_tex_markup_in_titles(tmp: Path) -> str:
    """`$\\frac{$` in an encoder title (shown in plot legends and titles): the ROC plot is still drawn."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from runs import shared_run
    from test_results import fake_registry

    from leaderboard.filing.submit import submit
    from leaderboard.site.render import build_site

    reg = fake_registry()
    reg.encoders["pixels"].data["title"] = r"$\frac{$ pixels $^{"
    submit(shared_run(tmp / "out", reg), reg, tmp / "results")
    index = build_site(tmp / "site", tmp / "results", reg)
    png = index.parent / "tasks" / "effusion-demo-roc.png"
    return f"plot drawn ({png.stat().st_size} bytes)" if png.read_bytes()[:4] == b"\x89PNG" else "no plot"


def _signal_during_eval(tmp: Path, sig: int, data: Path | None = None) -> str:
    """`runner eval` on the demo data, signalled while it works: a clean message, no traceback, no partial file.

    `data`: that demo data set made already (tests/conftest.py demo_data_dir: the same seed and size; `runner eval`
    only reads its data root); made here when not given."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from runner.data.synthetic import make_demo_dataset

    repo = Path(__file__).resolve().parents[2]
    if data is None:
        data = tmp / "data"
        make_demo_dataset(data, seed=0, n_patients=80, image_size=128)
    root = tmp / "registry"
    for sub in ("tasks", "encoders", "registry/datasets"):
        shutil.copytree(repo / sub, root / sub)
    (root / "tasks" / "effusion-sig.yaml").write_text(
        "extends: _defaults.yaml\nid: effusion-sig\ntitle: Signal test\ndataset: demo-cxr\n"
        "label: {id: effusion, name: Effusion}\nsampling: {positives: 70, negatives: 70, verify: header}\n")
    env = {**os.environ, "PYTHONPATH": str(repo), "CXR_CACHE_DIR": str(tmp / "cache"), "CXR_REGISTRY_ROOT": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli.main", "eval", "--task", "effusion-sig", "--encoder",
                             "random-cnn", "--data-root", str(data), "--out", str(tmp / "out"),
                             "--analyses", "none", "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not list((tmp / "out").glob("*/manifest.json")):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=120)
    leftovers = [p.name for p in tmp.rglob("*.tmp")] + [p.name for p in (tmp / "out").rglob("result.json")]
    assert "Traceback" not in err, err[-2000:]
    assert proc.returncode != 0 and not leftovers, (proc.returncode, leftovers)
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    return f"{signal.Signals(sig).name}: exit {proc.returncode}: {lines[0] if lines else err.strip()[-300:]}"


def scenario_sigterm_during_eval(tmp: Path, data: Path | None = None) -> str:
    import signal

    return _signal_during_eval(tmp, signal.SIGTERM, data)


def scenario_sigint_during_eval(tmp: Path, data: Path | None = None) -> str:
    import signal

    return _signal_during_eval(tmp, signal.SIGINT, data)


# ---------------------------------------------------------------------------------------------- results (verified)
# `base` is a real run's result (tests/runs.py): the folder holds its predictions.parquet, the manifest one folder up.


def result_deep_analyses(base: dict, folder: Path) -> Path:
    deep: list = []
    for _ in range(400):
        deep = [deep]
    return result_with(base, folder, "deep-analyses.json", lambda o: o["analyses"].update(deep=deep))


def result_edited_auroc(base: dict, folder: Path) -> Path:
    return result_with(base, folder, "result.json", lambda o: o["metrics"]["auroc"].update(mean=0.999))


def result_swapped_predictions(base: dict, folder: Path) -> Path:
    import pandas as pd

    predictions = pd.read_parquet(folder / "predictions.parquet")
    predictions.assign(prob=predictions["label"].astype(float)).to_parquet(folder / "predictions.parquet", index=False)
    return result_with(base, folder, "result.json", lambda o: None)


def result_forged_n_images(base: dict, folder: Path) -> Path:
    return result_with(base, folder, "result.json", lambda o: o["manifest"].update(n_images=2000))


def result_no_predictions(base: dict, folder: Path) -> Path:
    (folder / "predictions.parquet").unlink()
    (folder / "embeddings.npz").unlink(missing_ok=True)
    return result_with(base, folder, "result.json", lambda o: o.pop("embeddings_sha256", None))


def result_predictions_extra_row(base: dict, folder: Path) -> Path:
    import pandas as pd

    from runner.data.fingerprint import file_sha256

    predictions = pd.read_parquet(folder / "predictions.parquet")
    extra = predictions.iloc[:1].assign(image_id="img-999")
    pd.concat([predictions, extra]).to_parquet(folder / "predictions.parquet", index=False)
    sha = file_sha256(folder / "predictions.parquet")  # a forger keeps the result's hash of the file in step
    return result_with(base, folder, "result.json", lambda o: o.update(predictions_sha256=sha))


def result_over_budget(base: dict, folder: Path) -> Path:
    """Ten of the 300 manifest images lost at embedding (over the card's 2% budget), every number recomputed without
    them."""
    import pandas as pd

    frame = pd.read_parquet(folder.parent / "manifest.parquet")
    result = json.loads((folder / "result.json").read_text())
    result["counts"]["exclusions"] = [{"image_id": r.image_id, "path": r.path, "reason": "at embedding: missing-file"}
                                      for r in frame.head(10).itertuples()]
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    return _forged_run(folder)


def result_manifest_tampered(base: dict, folder: Path) -> Path:
    import pandas as pd

    manifest = folder.parent / "manifest.parquet"
    frame = pd.read_parquet(manifest)
    frame.loc[0, "label"] = 1 - frame.loc[0, "label"]
    frame.to_parquet(manifest, index=False)
    return result_with(base, folder, "result.json", lambda o: None)


def result_seed_negative(base: dict, folder: Path) -> Path:
    return result_with(base, folder, "result.json", lambda o: o["seeds"].update(sampling=-1))


def _reported(folder: Path, name: str, mutate) -> Path:
    from leaderboard.filing.publications import load_publication, reported_results
    from registry.cards import load_registry
    from tests.support import TABLE_PATH

    results = reported_results(load_publication(TABLE_PATH), load_registry())
    obj = next(r for r in results if (r["task"]["id"], r["encoder"]["id"]) == ("effusion-nih", "medimageinsight"))
    mutate(obj)
    return write_json_text(folder, name, json.dumps(obj))


def result_reported_made_up(base: dict, folder: Path) -> Path:
    return _reported(folder, "made-up.json", lambda o: o["metrics"]["auroc"].update(mean=0.999))


def result_reported_unknown_publication(base: dict, folder: Path) -> Path:
    return _reported(folder, "nobody.json", lambda o: o.update(publication="nobody2099-table9"))


def result_reported_wrong_cell(base: dict, folder: Path) -> Path:
    """CXR-Foundation's number filed under MedImageInsight: the publication prints another number there."""
    return _reported(folder, "wrong-cell.json", lambda o: o["metrics"]["auroc"].update(
        mean=0.901, half_width=0.006, ci_low=0.895, ci_high=0.907))


# ---------------------------------------------------------------- an earlier result in the run folder (runner.results.reuse)

RUN_INPUTS = "f" * 64  # the fingerprint the cases' runs are checked against


def _earlier_run(tmp: Path, change=None) -> Path:
    """A consistent run folder (tests/runs.py) whose result records RUN_INPUTS; `change(result)` edits it after."""
    from registry.cards import load_registry
    from tests.runs import edit_result, shared_run

    path = shared_run(tmp / "out", load_registry())
    edit_result(path, lambda r: r.update(inputs_sha256=RUN_INPUTS))
    if change is not None:
        edit_result(path, change)
    return path.parent


def _reuse_says(run_dir: Path) -> str:
    from runner.results.reuse import reusable_result

    result, reason = reusable_result(run_dir, RUN_INPUTS)
    return "reused" if result is not None else "computed again: " + reason


def scenario_earlier_result_truncated(tmp: Path) -> str:
    run_dir = _earlier_run(tmp)
    text = (run_dir / "result.json").read_bytes()
    (run_dir / "result.json").write_bytes(text[: len(text) // 2])
    return _reuse_says(run_dir)


def scenario_earlier_result_huge(tmp: Path) -> str:
    run_dir = _earlier_run(tmp)
    with (run_dir / "result.json").open("r+b") as handle:  # sparse: 200 MB on paper, nothing on disk
        handle.truncate(200_000_000)
    return _reuse_says(run_dir)


def scenario_earlier_result_other_inputs(tmp: Path) -> str:
    return _reuse_says(_earlier_run(tmp, lambda r: r.update(inputs_sha256="0" * 64)))


def scenario_earlier_result_off_schema(tmp: Path) -> str:
    return _reuse_says(_earlier_run(tmp, lambda r: r["metrics"]["auroc"].update(mean=7.0)))


def scenario_earlier_result_predictions_swapped(tmp: Path) -> str:
    import pandas as pd

    run_dir = _earlier_run(tmp)
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    predictions.assign(prob=predictions["label"].astype(float)).to_parquet(run_dir / "predictions.parquet", index=False)
    return _reuse_says(run_dir)


def scenario_earlier_result_figure_missing(tmp: Path) -> str:
    """Both forms a result names its figures in: clustering's {png, svg} and label efficiency's one name."""
    said = []
    for analyses in ({"clustering": {"figure": {"png": "umap.png"}}},
                     {"label_efficiency": {"figure": "label_efficiency.png"}}):
        said.append(_reuse_says(_earlier_run(tmp / str(len(said)), lambda r, a=analyses: r["analyses"].update(a))))
    return " | ".join(said)


def scenario_earlier_result_forged_metric(tmp: Path) -> str:
    """The fingerprint intact, a number edited: runner eval keeps its owner's file; filing it is refused."""
    from leaderboard.filing.submit import SubmitError, submit
    from registry.cards import load_registry

    run_dir = _earlier_run(tmp, lambda r: r["metrics"]["auroc"].update(mean=0.999))
    said = _reuse_says(run_dir)
    try:
        submit(run_dir / "result.json", load_registry(), tmp / "filed")
    except SubmitError as exc:
        return f"{said} by runner eval; runner submit: {exc}"
    return f"{said} by runner eval; runner submit filed it"


# ------------------------------------------------------------------ issue 25: verification is regeneration
# Forged runs: the forger edits the manifest or the predictions and recomputes every hash and number with the
# registry's own code, so only the registry's pins, its checks against the card and its own refit can refuse them.


def _forged_run(folder: Path, change_frame=None, change_meta=None, change_predictions=None,
                keep_bundle: bool = True, registry=None) -> Path:
    """Rewrite the run in `folder` (OUT/<task>/<encoder>/, made by tests/runs.py make_run) as a forger would."""
    import pandas as pd

    from registry.cards import load_registry
    from runner.analysis.for_run import prediction_analyses
    from runner.data.fingerprint import file_sha256
    from runner.metrics.summary import summarize
    from runner.results.run_result import RunFacts, run_result
    from runner.sample.manifest import Manifest, canonical_frame, content_sha256, pinned_fields

    result = json.loads((folder / "result.json").read_text())
    reg = registry or load_registry()
    task, encoder = reg.tasks[result["task"]["id"]], reg.encoders[result["encoder"]["id"]]
    meta = json.loads((folder.parent / "manifest.json").read_text())
    frame = canonical_frame(pd.read_parquet(folder.parent / "manifest.parquet"))
    frame = canonical_frame(change_frame(frame)) if change_frame else frame
    if change_meta:
        change_meta(meta)
    meta.update(sha256=content_sha256(frame, pinned_fields(meta)), n_images=len(frame))
    frame.to_parquet(folder.parent / "manifest.parquet", index=False)
    (folder.parent / "manifest.json").write_text(json.dumps(meta, indent=1))
    old = pd.read_parquet(folder / "predictions.parquet").set_index("image_id")["prob"]
    excluded = {e["image_id"] for e in result["counts"]["exclusions"] if e["reason"].startswith("at embedding: ")}
    rows = frame[~frame["image_id"].isin(excluded)].reset_index(drop=True)
    predictions = rows[["image_id", "patient_id", "label", "fold"]].assign(
        prob=[float(old.get(i, 0.5)) for i in rows["image_id"]])
    if change_predictions:
        predictions = change_predictions(predictions)
    predictions.to_parquet(folder / "predictions.parquet", index=False)
    folds = [int(f) for f in meta["eval_folds"]]
    summary = summarize(predictions, task.spec.metrics, eval_folds=folds,
                        n_train={f: int((rows["fold"] != f).sum()) for f in folds})
    analyses = prediction_analyses(task, predictions, rows, folds, summary, [])
    analyses["classifier"] = result["analyses"]["classifier"]
    exclusions = [{**e, "reason": e["reason"].removeprefix("at embedding: ")} for e in result["counts"]["exclusions"]
                  if e["image_id"] in excluded]
    forged = run_result(task, encoder, reg.datasets[task.spec.dataset], Manifest(frame, meta), predictions,
                        exclusions, summary, analyses, RunFacts.of_result(result))
    forged["predictions_sha256"] = file_sha256(folder / "predictions.parquet")
    if keep_bundle and result.get("embeddings_sha256"):
        forged["embeddings_sha256"] = result["embeddings_sha256"]
    else:
        (folder / "embeddings.npz").unlink(missing_ok=True)
    (folder / "result.json").write_text(json.dumps(forged, indent=1))
    return folder / "result.json"


def result_cherry_picked_folds(base: dict, folder: Path) -> Path:
    """Only the best fold evaluated (eval_folds [0]), manifest hash and every number recomputed."""
    return _forged_run(folder, change_meta=lambda m: m.update(eval_folds=[0]),
                       change_predictions=lambda p: p[p["fold"] == 0])


def result_manifest_without_task(base: dict, folder: Path) -> Path:
    """The manifest's task_id removed (another task's sample passed off), hash recomputed."""
    return _forged_run(folder, change_meta=lambda m: m.update(task_id=None))


def result_hand_picked_subset(base: dict, folder: Path) -> Path:
    """Only the images a model got right kept (a third of the negatives dropped), hash and numbers recomputed."""
    def drop(frame):
        negatives = frame.index[frame["label"] == 0]
        return frame.drop(negatives[: len(negatives) // 3])
    return _forged_run(folder, change_frame=drop)


def result_made_up_predictions(base: dict, folder: Path) -> Path:
    """Predictions 0.9 x label + 0.05 with every number recomputed; the run's genuine embeddings still filed."""
    return _forged_run(folder, change_predictions=lambda p: p.assign(prob=0.9 * p["label"] + 0.05))


def result_made_up_predictions_only(base: dict, folder: Path) -> Path:
    """The same made-up predictions, and no embeddings for the registry to refit from."""
    return _forged_run(folder, change_predictions=lambda p: p.assign(prob=0.9 * p["label"] + 0.05),
                       keep_bundle=False)


def result_scores_outside_unit(base: dict, folder: Path) -> Path:
    """Scores that are not probabilities (x 10), every number recomputed (AUROC is rank-based: it does not change)."""
    return _forged_run(folder, change_predictions=lambda p: p.assign(prob=p["prob"] * 10), keep_bundle=False)


def result_edited_subgroup_gap(base: dict, folder: Path) -> Path:
    """An analysis number the registry recomputes from the predictions, edited."""
    def mutate(o):
        o["analyses"]["within_view"] = {"status": "skipped", "reason": "nothing to see here"}
    return result_with(base, folder, "result.json", mutate)


def result_manifest_of_committed_task(base: dict, folder: Path) -> Path:
    """A hand-made sample of a task whose manifest the registry commits (atelectasis-vindr), every hash and number
    consistent: the registry scores the task on its committed manifest only."""
    from runs import shared_run

    from registry.cards import load_registry

    return shared_run(folder.parent.parent / "vindr", load_registry(), "atelectasis-vindr", "pixels")


def result_reported_with_made_up_folds(base: dict, folder: Path) -> Path:
    """A reported result that keeps the paper's means but adds per-fold values, a ROC curve and a subgroup analysis
    the publication never printed."""
    def mutate(o):
        o["metrics"]["auroc"]["per_fold"] = [0.95, 0.96, 0.97, 0.95, 0.96]
        o["roc"] = {"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.9, 1.0]}
        o["analyses"] = {"subgroups": {"sex": {"gap": 0.0001}}}
    return _reported(folder, "made-up-folds.json", mutate)


# ============================================================================================ issue 25 item 8
# ---------------------------------------------------------------------------------------------- results: manifests


def result_manifest_json_list(base: dict, folder: Path) -> Path:
    (folder.parent / "manifest.json").write_text("[1, 2]")
    return result_with(base, folder, "result.json", lambda o: None)


def result_manifest_nan_label(base: dict, folder: Path) -> Path:
    """A label cell NaN in manifest.parquet (the rows otherwise as written; their hash no longer matters)."""
    import pandas as pd

    manifest = folder.parent / "manifest.parquet"
    frame = pd.read_parquet(manifest)
    frame["label"] = frame["label"].astype("float64")
    frame.loc[3, "label"] = np.nan
    frame.to_parquet(manifest, index=False)
    return result_with(base, folder, "result.json", lambda o: None)


def result_predictions_nan_label(base: dict, folder: Path) -> Path:
    """A NaN label in predictions.parquet, with the result's predictions_sha256 made to match the edited file."""
    import pandas as pd

    from runner.data.fingerprint import file_sha256

    path = folder / "predictions.parquet"
    predictions = pd.read_parquet(path)
    predictions["label"] = predictions["label"].astype("float64")
    predictions.loc[3, "label"] = np.nan
    predictions.to_parquet(path, index=False)
    return result_with(base, folder, "result.json", lambda o: o.update(predictions_sha256=file_sha256(path)))


def _filed_results(tmp: Path):
    """One real run of the real effusion-demo task and pixels encoder (tests/runs.py), filed under tmp/results."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from runs import shared_run

    from leaderboard.filing.submit import submit
    from registry.cards import load_registry

    reg = load_registry()
    submit(shared_run(tmp / "out", reg, "effusion-demo", "pixels"), reg, tmp / "results")
    return reg


def scenario_site_filed_manifest_list(tmp: Path) -> str:
    """A filed result's manifest.json (under results/manifests/) replaced by a JSON list, then the site is built."""
    from leaderboard.site.render import build_site

    reg = _filed_results(tmp)
    filed = next((tmp / "results" / "manifests").rglob("manifest.json"))
    filed.write_text("[1, 2]")
    problems: list = []
    build_site(tmp / "site", tmp / "results", reg, problems=problems)
    return " | ".join(f"{name}: {problem}" for name, problem in problems) or "verified"


# ---------------------------------------------------------------------------------------------- Hugging Face reader


def _hf_rows_said(card: dict, root: Path) -> str:
    """Each row of the read index: 'usable' or the reason the sampler's file check records for it."""
    from runner.data import read_index
    from runner.sample.sampler import check_file

    frame = read_index(card, root).frame
    said = []
    for image_id, path in zip(frame["image_id"], frame["path"]):
        reason, _detail, _view = check_file(str(root), path, "decode", None)
        said.append(f"{image_id}: {reason or 'usable'}")
    return "; ".join(said)


def _hf_odd_paths(tmp: Path, stored: str) -> str:
    """Row a: a plain item; b: bytes plus an odd stored path; c: only the odd stored path (no bytes)."""
    png = _png_item(3)["bytes"]
    card = _hf_dataset(tmp / "ds", ["a", "b", "c"], [_png_item(1), {"bytes": png, "path": stored},
                                                      {"bytes": None, "path": stored}])
    return _hf_rows_said(card, tmp / "ds")


def scenario_hf_path_nul(tmp: Path) -> str:
    return _hf_odd_paths(tmp, "scan.png\x00")  # the NUL in the suffix the file would be named with


def scenario_hf_path_long_suffix(tmp: Path) -> str:
    return _hf_odd_paths(tmp, "scan." + "p" * 300)


def scenario_hf_images_symlink_outside(tmp: Path) -> str:
    outside = tmp / "outside"
    outside.mkdir()
    card = _hf_dataset(tmp / "ds", ["a", "b"], [_png_item(1), _png_item(2)])
    (tmp / "ds" / "hf-images").symlink_to(outside, target_is_directory=True)
    said = _read_hf(card, tmp / "ds")
    assert not any(outside.iterdir()), "images were written outside the data root"
    return said


# ---------------------------------------------------------------------------------------------- runner demo-data


def scenario_demo_data_out_dot(tmp: Path) -> str:
    """`--out .` in an empty folder (a non-empty one was refused before): the folder the shell is in."""
    (tmp / "work").mkdir()
    here = Path.cwd()
    os.chdir(tmp / "work")
    try:
        said = _cli(["demo-data", "--out", ".", "--patients", "2"])
    finally:
        os.chdir(here)
    assert (tmp / "work").is_dir()
    return said


def scenario_demo_data_foreign_files(tmp: Path) -> str:
    from runner.data.synthetic import make_demo_dataset

    make_demo_dataset(tmp / "demo", n_patients=2, image_size=64)
    (tmp / "demo" / "files" / "notes.txt").write_text("my notes")  # a user's file inside an earlier demo set
    said = _cli(["demo-data", "--out", str(tmp / "demo"), "--patients", "2"])
    assert (tmp / "demo" / "files" / "notes.txt").read_text() == "my notes", "a user's file was deleted"
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "demo_data.json").write_text("{}")  # a folder that merely holds a file of that name
    (mine / "thesis.tex").write_text("years of work")
    said += " | " + _cli(["demo-data", "--out", str(mine), "--patients", "2"])
    assert (mine / "thesis.tex").read_text() == "years of work", "a user's file was deleted"
    return said


def scenario_demo_data_killed_partial(tmp: Path) -> str:
    """`runner demo-data` killed with SIGKILL while it writes: the next run removes the partial folder it left."""
    import contextlib
    import io
    import signal
    import subprocess
    import sys
    import time

    from runner.data.synthetic import make_demo_dataset

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", "from runner.cli.main import app; app()", "demo-data", "--out",
                             str(tmp / "demo"), "--patients", "300"], env={**os.environ, "PYTHONPATH": str(repo)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp.glob(".demo.partial-*/files/*/*/*.dcm")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    left = list(tmp.glob(".demo.partial-*"))
    assert left, "the killed run left nothing to clean up (it finished, or never started)"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        make_demo_dataset(tmp / "demo", n_patients=2, image_size=64)
    assert not list(tmp.glob(".demo.partial-*")), f"still there: {[p.name for p in tmp.glob('.demo.partial-*')]}"
    return err.getvalue().strip()


# ---------------------------------------------------------------------------------------------- leaderboard build


def scenario_site_user_file_in_results(tmp: Path) -> str:
    from leaderboard.site.render import build_site

    reg = _filed_results(tmp)
    build_site(tmp / "site", tmp / "results", reg)
    (tmp / "site" / "results" / "notes.txt").write_text("my notes")
    build_site(tmp / "site", tmp / "results", reg)
    kept = (tmp / "site" / "results" / "notes.txt").is_file()
    return f"notes.txt {'kept' if kept else 'deleted'} by the rebuild"


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after the point it is raised runs (not even `finally` blocks of the build)."""


def scenario_site_killed_build(tmp: Path) -> str:
    import contextlib
    import io

    from leaderboard.site import render

    reg = _filed_results(tmp)
    real = render._write_csv

    def killed(*args, **kwargs):  # the pages are written by now; the CSV, the encoders page, the marker are not
        raise _Killed()
    render._write_csv = killed
    try:
        render.build_site(tmp / "site", tmp / "results", reg)
    except _Killed:
        pass
    finally:
        render._write_csv = real
    assert (tmp / "site" / "index.html").is_file(), "the interrupted build wrote nothing"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        message = _site_build(tmp / "site", tmp / "results", reg)
    return f"{message} {err.getvalue().strip()}"


def _site_build(out: Path, results: Path, reg) -> str:
    from leaderboard.site.render import SiteDirError, build_site

    try:
        build_site(out, results, reg)
    except SiteDirError as exc:
        return str(exc)
    return "built"


# ---------------------------------------------------------------------------------------------- --workers


def scenario_workers_bounded_by_work(tmp: Path) -> str:
    """--workers 40 with 2 chunks to embed and 8 files to check: count the processes each pool is asked for."""
    import concurrent.futures

    from runner.data import read_index
    from runner.embed import cpu_pool
    from runner.sample import sampler
    from runner.sample.sampler import sample_task

    asked: dict[str, int] = {}

    def recording(name, real):
        class Pool(real):
            def __init__(self, max_workers=None, *args, **kwargs):
                asked[name] = max_workers
                super().__init__(max_workers, *args, **kwargs)
        return Pool

    frame, encoder, _cache, card = _pixels_setup(tmp)  # 4 images; batch size 2 -> 2 chunks
    real = concurrent.futures.ProcessPoolExecutor
    cpu_pool.ProcessPoolExecutor = recording("embedding", real)
    sampler.ProcessPoolExecutor = recording("sampling", real)
    try:
        from runner.embed.cache import EmbeddingCache
        from runner.embed.embedding import embed_manifest

        cache = EmbeddingCache("corpus", card["preprocess"], root=tmp / "cache")
        embed_manifest(frame, tmp / "data", "corpus", encoder, cache, workers=40, batch_size=2, progress=False)
        rows = good_rows(40)
        for row in rows:
            dicom_good(tmp / "meta" / "files", Path(row["path"]).name, seed=int(row["image_id"][3:]))
        root = write_csv(tmp / "meta", rows)
        task = {"id": "corpus", "label": {"id": "effusion"}, "views": ["PA"],
                "label_policy": {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"},
                "sampling": {"positives": 8, "negatives": 8, "seed": 0},  # checked 8 files at a time
                "split": {"method": "stratified-group-kfold", "folds": 2, "seed": 0}}
        sample_task(task, csv_dataset_card(), root, verify="decode", workers=40,
                    index=read_index(csv_dataset_card(), root, ["effusion"]))
    finally:
        cpu_pool.ProcessPoolExecutor = real
        sampler.ProcessPoolExecutor = real
    return (f"embedding: {asked.get('embedding')} processes for 2 chunks; "
            f"sampling: {asked.get('sampling')} processes for 8 files")


def scenario_cli_workers_absurd(tmp: Path) -> str:
    return _cli(["eval", "--task", "effusion-demo", "--encoder", "pixels", "--workers", "100000",
                 "--data-root", str(tmp), "--out", str(tmp / "out")])


# ---------------------------------------------------------------------------------------------- DICOM tags


def dicom_rows_two_values(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.Rows = [ROWS, ROWS]  # US allows a value multiplicity pydicom reads back as a list; int() of it fails
    return save_dicom(ds, folder / "rows-two-values.dcm")


def dicom_samples_two_values(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.SamplesPerPixel = [1, 1]
    return save_dicom(ds, folder / "samples-two-values.dcm")


def dicom_frames_not_number(folder: Path) -> Path:
    """NumberOfFrames (IS) "ab": pydicom will not write it, so the valid "1 " is written and its 2 bytes replaced."""
    ds = dicom_dataset()
    ds.NumberOfFrames = 1
    path = save_dicom(ds, folder / "frames-not-number.dcm")
    element = b"\x28\x00\x08\x00IS\x02\x00"  # tag (0028,0008), explicit VR IS, length 2
    data = path.read_bytes()
    assert data.count(element + b"1 ") == 1
    path.write_bytes(data.replace(element + b"1 ", element + b"ab"))
    return path


def dicom_rescale_slope_zero(folder: Path) -> Path:
    ds = dicom_dataset()
    ds.RescaleSlope, ds.RescaleIntercept = "0", "100"  # every pixel becomes 100: a blank image
    return save_dicom(ds, folder / "slope-zero.dcm")


# ---------------------------------------------------------------------------------------------- PNG


def png_one_pixel(folder: Path) -> Path:
    path = folder / "one-pixel.png"
    path.write_bytes(_pil_bytes(np.array([[200]], dtype=np.uint8), "PNG"))
    return path


def png_16bit_rgb_values() -> np.ndarray:
    """A grey ramp over 0..65535 in all three channels: its low bytes carry information an 8-bit read drops."""
    grey = png_16bit_values()
    return np.stack([grey, grey, grey], axis=-1)


def png_16bit_rgb(folder: Path) -> Path:
    """A 16-bit RGB PNG (colour type 2, bit depth 16). Pillow cannot write one (it has no 48-bit mode), so the chunks
    are written by the PNG specification; Pillow, the decoder under test, reads it back as 8-bit RGB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    values = png_16bit_rgb_values()
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in values)  # filter type 0 per scanline
    ihdr = struct.pack(">IIBBBBB", COLS, ROWS, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path = folder / "rgb16.png"
    path.write_bytes(data)
    return path


def scenario_image_symlink_outside(tmp: Path) -> str:
    """img1.dcm is a link to a valid DICOM outside the data root: excluded at sampling and at embedding."""
    from runner.sample.sampler import check_file

    frame, encoder, _cache, card = _pixels_setup(tmp)
    outside = dicom_good(tmp / "outside", "elsewhere.dcm", seed=9)
    link = tmp / "data" / "files" / "img1.dcm"
    link.unlink()
    link.symlink_to(outside)
    out, _ = _embed(tmp, frame, encoder, card)
    reasons = [e["reason"] for e in out.exclusions if e["image_id"] == "img1"]
    reason, _detail, _view = check_file(str(tmp / "data"), "files/img1.dcm", "decode", None)
    return f"embedding: {reasons[0] if reasons else 'embedded'}; sampling: {reason or 'sampled'}"


# ---------------------------------------------------------------------------------------------- metadata


def meta_duplicate_label_column(folder: Path) -> Path:
    """Two columns named effusion with different values: pandas would rename the second effusion.1."""
    write_csv(folder, good_rows())
    path = folder / "metadata.csv"
    lines = path.read_text().splitlines()
    lines[0] += ",effusion"
    lines[1:] = [line + ("," + ("0.0" if line.endswith("1.0") else "1.0")) for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")
    return folder


# ---------------------------------------------------------------------------------------------- embedding cache


def _replace_shard(ns: Path, make) -> None:
    shard = next(ns.glob("shard-*.npy"))
    rows = np.load(shard).shape[0]
    np.save(shard, make(rows))


def scenario_cache_shard_wrong_width(tmp: Path) -> str:
    return _corrupt_cache(tmp, lambda ns: _replace_shard(ns, lambda n: np.ones((n, 19), dtype=np.float32)))


def scenario_cache_shard_nan(tmp: Path) -> str:
    return _corrupt_cache(tmp, lambda ns: _replace_shard(ns, lambda n: np.full((n, 16), np.nan, dtype=np.float32)))


# ---------------------------------------------------------------------------------------------- echoed strings


def scenario_cli_task_huge(tmp: Path) -> str:
    said = _cli(["sample", "--task", "a" * 100_000])
    assert len(said) < 1000, f"{len(said):,} characters echoed"
    return said


# ---------------------------------------------------------------------------------------------- issue 25: several steps


def _submit_said(path: Path, reg, results: Path, **options) -> str:
    """What `runner submit` says about one result: 'filed' or the refusal's message."""
    from leaderboard.filing.submit import SubmitError, submit

    try:
        submit(path, reg, results, **options)
    except SubmitError as exc:
        return f"exit {exc.exit_code}: {exc}"
    return "filed"


def _build_said(reg, results: Path, site: Path) -> str:
    """What `leaderboard build --strict` would fail on (the problems it lists), or 'verified'."""
    from leaderboard.site.render import build_site

    problems: list = []
    build_site(site, results, reg, problems=problems)
    return " | ".join(f"{name}: {problem}" for name, problem in problems) or "verified"


def _runs():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from runs import shared_run

    from registry.cards import load_registry

    return shared_run, load_registry()  # make_run's files, made once per process for the same inputs


def scenario_labels_flipped_after_pin(tmp: Path) -> str:
    """Every label of a run-time-sampled task flipped, hash and numbers recomputed, after a genuine first filing: the
    class sizes still match the card (150/150), but the task is pinned to the first filing's manifest."""
    make_run, reg = _runs()
    assert _submit_said(make_run(tmp / "a", reg), reg, tmp / "results") == "filed"
    forged = _forged_run(make_run(tmp / "b", reg, encoder_id="radiomics").parent,
                         change_frame=lambda f: f.assign(label=1 - f["label"]), registry=reg)
    return _submit_said(forged, reg, tmp / "results")


def scenario_later_submission_keeps_earlier_files(tmp: Path) -> str:
    """A second encoder filed on the same task: the first filing's manifest and predictions are untouched and the
    first result still regenerates as filed."""
    from leaderboard.filing.submit import filed_problems

    make_run, reg = _runs()
    results = tmp / "results"
    assert _submit_said(make_run(tmp / "a", reg), reg, results) == "filed"
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file() and p.name != "pins.json"}
    assert _submit_said(make_run(tmp / "b", reg, encoder_id="radiomics", seed=3), reg, results) == "filed"
    changed = [p.name for p, data in before.items() if p.read_bytes() != data]
    first = results / "effusion-demo__pixels__reproduced.json"
    return f"changed: {changed or 'none'}; first result: {filed_problems(first, json.loads(first.read_text()), reg)}"


def scenario_interrupted_replace(tmp: Path) -> str:
    """`runner submit --replace` killed after the new predictions are stored, before the result is written: the old
    result stands with its own files."""
    import leaderboard.filing.submit as filing

    make_run, reg = _runs()
    results = tmp / "results"
    assert _submit_said(make_run(tmp / "a", reg), reg, results) == "filed"
    first = results / "effusion-demo__pixels__reproduced.json"
    old, real = first.read_bytes(), filing.write_result

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while filing")

    filing.write_result = killed
    try:
        _submit_said(make_run(tmp / "b", reg, separation=2.0), reg, results, replace=True)
    except KeyboardInterrupt:
        pass
    finally:
        filing.write_result = real
    same = "unchanged" if first.read_bytes() == old else "CHANGED"
    return f"old result {same}; it regenerates: {filing.filed_problems(first, json.loads(old), reg) or 'yes'}"


def _planted(tmp: Path, plant) -> str:
    make_run, reg = _runs()
    results = tmp / "results"
    assert _submit_said(make_run(tmp / "a", reg), reg, results) == "filed"
    assert _build_said(reg, results, tmp / "site0") == "verified"
    plant(results / "effusion-demo__pixels__reproduced.json")
    return _build_said(reg, results, tmp / "site1")


def scenario_planted_forged_number(tmp: Path) -> str:
    """A filed result's AUROC edited to 0.999 by hand in the results folder (never through runner submit)."""
    def plant(path: Path):
        result = json.loads(path.read_text())
        result["metrics"]["auroc"]["mean"] = 0.999
        path.write_text(json.dumps(result))
    return _planted(tmp, plant)


def scenario_forged_verification_block(tmp: Path) -> str:
    """A run that writes the registry's own `verification` block: tier "audited" and a made-up analysis listed as left
    out. The registry files its own block: the tier it checked, and only analyses the runner has (by name, with its
    own reason)."""
    make_run, reg = _runs()
    path = make_run(tmp / "run", reg)
    result = json.loads(path.read_text())
    result["verification"] = {"tier": "audited", "not_verified": {"made-up": "trust me", "stability": "trust me"}}
    path.write_text(json.dumps(result))
    said = _submit_said(path, reg, tmp / "results")
    filed = json.loads((tmp / "results" / "effusion-demo__pixels__reproduced.json").read_text())["verification"]
    return f"{said}: tier {filed['tier']}; not verified {sorted(filed['not_verified'].items())}"


def scenario_planted_truncated_result(tmp: Path) -> str:
    return _planted(tmp, lambda path: path.write_text(path.read_text()[:500]))


def scenario_planted_result_of_deleted_card(tmp: Path) -> str:
    """A filed result whose task card no longer exists (a copy under another task id)."""
    def plant(path: Path):
        text = path.read_text().replace('"effusion-demo"', '"effusion-ghost"')
        (path.parent / "effusion-ghost__pixels__reproduced.json").write_text(text)
    return _planted(tmp, plant)


def scenario_false_exclusion_claim(tmp: Path, data: Path | None = None) -> str:
    """Two negatives claimed undecodable at embedding (within the budget), every number recomputed: `runner submit
    --data-root` reads them again, they decode, and the claim is refused.

    `data`: that demo data set made already (tests/conftest.py demo_data_dir: the same seed and size; the run and
    submit only read it); made here when not given."""
    import pandas as pd

    from registry.cards import load_registry
    from runner.data.synthetic import make_demo_dataset
    from runner.evaluate import EvalOptions, run_evaluation
    from tests.support import TINY_TASK, make_registry_root

    _runs()  # tests/ on the path
    if data is None:
        data = tmp / "data"
        make_demo_dataset(data, seed=0, n_patients=80, image_size=128)
    reg = load_registry(make_registry_root(tmp / "reg", {"effusion-tiny": TINY_TASK}))
    done = run_evaluation("effusion-tiny", "pixels", data, tmp / "runs",
                          EvalOptions(device="cpu", workers=0, cache_dir=tmp / "cache", progress=False,
                                      save_embeddings=True), reg)
    manifest = pd.read_parquet(done.result_path.parent.parent / "manifest.parquet")
    claimed = manifest[manifest["label"] == 0].head(2)
    result = json.loads(done.result_path.read_text())
    result["counts"]["exclusions"] += [{"image_id": r.image_id, "path": r.path, "reason": "at embedding: truncated"}
                                       for r in claimed.itertuples()]
    done.result_path.write_text(json.dumps(result))
    forged = _forged_run(done.result_path.parent, keep_bundle=False, registry=reg)
    return _submit_said(forged, reg, tmp / "results", data_root=data)


# ---------------------------------------------------- issue 25 item 6: every reuse is keyed by what made it


def scenario_cache_rows_reversed(tmp: Path) -> str:
    """A shard with its rows reversed: a valid .npy of the right shape, every row finite; only its checksum tells
    (the review: AUROC 0.843 -> 0.508, exit 0, no warning)."""
    def corrupt(ns: Path):
        shard = next(ns.glob("shard-*.npy"))
        np.save(shard, np.load(shard)[::-1].copy())
    return _corrupt_cache(tmp, corrupt)


def scenario_cache_changed_checkpoint(tmp: Path) -> str:
    """A timm card with local weights and no sha256 pin; the checkpoint file is replaced by another one at the same
    path between two runs (the review: identical numbers, the second run embedded nothing)."""
    from types import SimpleNamespace

    import timm
    import torch
    from safetensors.torch import save_file

    from registry.hashing import sha256_of
    from runner.embed.for_task import EmbedSettings, embed_task, open_cache, open_encoder

    frame, _encoder, _cache, _card = _pixels_setup(tmp)
    checkpoint = tmp / "weights" / "model.safetensors"
    checkpoint.parent.mkdir()

    def save_checkpoint(seed: int):
        torch.manual_seed(seed)
        model = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, checkpoint)
        return model.num_features

    dim = save_checkpoint(0)
    data = {"id": "timm-local", "title": "a timm card with local weights", "adapter": "timm",
            "model": {"name": "test_efficientnet"}, "weights": {"files": ["model.safetensors"]},
            "preprocess": {"size": 32, "channels": 3, "interpolation": "bilinear", "normalize": "imagenet",
                           "bit_depth": 8},
            "embedding": {"dim": dim, "pooling": "none"}, "precision": {"bf16": False}, "batch_size": 4}
    card = SimpleNamespace(id=data["id"], data=data, behaviour_sha256=sha256_of(data))
    settings = EmbedSettings(device="cpu", workers=0, progress=False, cache_dir=tmp / "cache",
                             weights_dir=checkpoint.parent)

    def embed():
        encoder = open_encoder(card, settings)
        return embed_task(encoder, card, "corpus", tmp / "data", frame, open_cache(card, encoder, settings), None,
                          settings)

    first = embed()
    save_checkpoint(1)  # another checkpoint, same path and name
    second = embed()
    changed = not np.allclose(first.original, second.original)
    return (f"computed {second.n_computed} of {len(frame)} again; embeddings "
            f"{'changed' if changed else 'identical to the old ones'}")


# ---------------------------------------------------------------------------------------------- card copies
# A run folder (or results folder) whose cards/ holds the copies `runner eval` writes of cards kept outside the
# registry (runner.cli.run_cards); `runner submit`, `show` and `leaderboard build` read them back.

COPY_CARD = """\
id: {id}
title: A card kept outside the registry
adapter: timm
model: {{name: resnet18}}
weights: {{random_init: true}}
preprocess: {{size: 64, channels: 3, interpolation: bilinear, normalize: imagenet, bit_depth: 8}}
embedding: {{dim: 512, pooling: none}}
license: Apache-2.0
"""


def _copy(folder: Path, name: str, text: str, kind_dir: str = "encoders") -> Path:
    _card(folder / "cards", kind_dir, name, text)
    return folder


def card_copy_edited_registry_card(folder: Path) -> Path:
    """A copy under a registry id (pixels) whose content is not the registry's card: it must not replace it."""
    repo = Path(__file__).resolve().parents[2]
    text = (repo / "encoders" / "pixels.yaml").read_text(encoding="utf-8").replace("size: 32", "size: 16")
    return _copy(folder, "pixels.yaml", text)


def card_copy_symlink(folder: Path) -> Path:
    (folder / "cards" / "encoders").mkdir(parents=True, exist_ok=True)
    (folder / "cards" / "encoders" / "leak.yaml").symlink_to("/etc/passwd")
    return folder


def card_copy_id_not_file_name(folder: Path) -> Path:
    return _copy(folder, "mine.yaml", COPY_CARD.format(id="theirs"))


def card_copy_wrong_kind(folder: Path) -> Path:
    """A task card where encoder copies go: read as an encoder card, refused by the schema."""
    return _copy(folder, "corpus-task.yaml", task_card_text("corpus-task").replace("extends: _defaults.yaml\n", ""))


def card_copy_alias_bomb(folder: Path) -> Path:
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return _copy(folder, "laughs.yaml", COPY_CARD.format(id="laughs") + "notes:\n" + "".join(
        f"  {line}\n" for line in lines))


def card_copy_extends_outside(folder: Path) -> Path:
    """A copy that extends a file outside its folder (copies are resolved: they never extend anything)."""
    return _copy(folder, "reach.yaml", "extends: ../../../../../../../../etc/passwd\n" + COPY_CARD.format(id="reach"))


def card_copy_not_yaml(folder: Path) -> Path:
    return _copy(folder, "notes.txt", "secret notes\n")


def card_copy_too_many(folder: Path) -> Path:
    for i in range(65):
        _copy(folder, f"many-{i:02d}.yaml", COPY_CARD.format(id=f"many-{i:02d}"))
    return folder
