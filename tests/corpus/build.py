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
    return result_with(base, folder, "forged-card.json", lambda o: o["task"].update(sha256="0" * 64))


def result_forged_encoder_hash(base: dict, folder: Path) -> Path:
    return result_with(base, folder, "forged-encoder.json", lambda o: o["encoder"].update(sha256="f" * 64))


def result_forged_manifest_hash(base: dict, folder: Path) -> Path:
    """The result claims a manifest hash other than the manifest.json beside it (written by the caller)."""
    return result_with(base, folder, "result.json", lambda o: o["manifest"].update(sha256="1" * 64))


def result_unknown_task(base: dict, folder: Path) -> Path:
    return result_with(base, folder, "unknown-task.json", lambda o: o["task"].update(id="effusion-mars"))


def result_html(base: dict, folder: Path) -> Path:
    def mutate(o):
        o["encoder"]["name"] = HOSTILE
        o["counts"]["exclusions"][0]["reason"] = HOSTILE
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
