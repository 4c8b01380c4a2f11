"""The frozen manifest: the exact images, labels and folds a result refers to.

`manifest.parquet` holds the rows; `manifest.json` the provenance and the sha256 of the canonical content.
The hash covers the rows and what the sample is for (PINNED: the task and the card behaviour it was drawn under, the
data set, label, split and the folds a result is evaluated on), so a manifest cannot be given to another task, nor its evaluated folds cherry-picked, without its
hash changing; the registry pins one hash per task (leaderboard.filing.pins). It is the sha256 of a canonical JSON
text (rows sorted by image_id, columns in contract order, floats as shortest round-trip repr), never of parquet
bytes, so the same sample gives the same hash on every platform and version.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path

import numpy as np
import pandas as pd

from registry.errors import RegistryError
from runner.data.tables import METADATA_PREFIX, paths_leaving_root
from runner.runtime.atomic import atomic_write_bytes
from runner.sample.sampler import eval_folds_of

FORMAT = 2  # 2: the hash covers PINNED as well as the rows
# manifest.json fields the hash covers: what the sample is for, and the task card behaviour it was drawn under (one
# manifest per task behaviour: a card change that keeps the rows still makes a new manifest, never an edited one)
PINNED = ("task_id", "task_sha256", "dataset_id", "label", "split", "eval_folds")
COLUMNS = ["image_id", "patient_id", "study_id", "path", "view", "label", "fold"]
OPTIONAL = ["sex", "age"]
# A multi-label task's findings, one column each (1.0 / 0.0 / NaN unknown), between OPTIONAL and the metadata features.
TARGET_PREFIX = "target_"
INT_COLUMNS = ("label", "fold")


class ManifestError(RegistryError):
    """A manifest that is missing, malformed or does not match its recorded hash."""

    exit_code = 2


class ManifestFormatError(ManifestError):
    """A manifest file that is not what `write_manifest` writes (unreadable, not an object, a label that is not 0/1):
    bad input, as opposed to a well-formed manifest whose rows no longer hash to its record (edited)."""


@dataclass
class Manifest:
    frame: pd.DataFrame
    meta: dict  # the manifest.json content


def canonical_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract columns in contract order, rows sorted by image_id, ids as text, label/fold as int64."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"manifest lacks column(s) {', '.join(missing)}")
    # Findings of a multi-label task (target_<id>), then the metadata features (dataset card `metadata_features`,
    # columns meta_<name>), each in the frame's order.
    targets = [c for c in frame.columns if str(c).startswith(TARGET_PREFIX)]
    features = [c for c in frame.columns if str(c).startswith(METADATA_PREFIX)]
    columns = COLUMNS + [c for c in OPTIONAL if c in frame.columns] + targets + features
    out = frame[columns].copy()
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c])]
    text = [c for c in features if c not in numeric]
    for name in ["image_id", "patient_id", "study_id", "path", "view"] + (["sex"] if "sex" in out else []) + text:
        out[name] = out[name].astype(object).where(out[name].notna(), None)
        out[name] = [None if v is None else str(v) for v in out[name]]
    for name in INT_COLUMNS:
        out[name] = out[name].astype("int64")
    for name in (["age"] if "age" in out else []) + targets + numeric:
        out[name] = out[name].astype("float64")
    return out.sort_values("image_id", kind="mergesort").reset_index(drop=True)


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _cells(column: pd.Series) -> list:
    """[_cell(v) for v in column], without a Python call per cell for the canonical frame's dtypes."""
    if column.dtype == "float64":
        values = column.tolist()  # Python floats
        for i in np.flatnonzero(column.isna().to_numpy()):
            values[i] = None
        return values
    if column.dtype == "int64" or column.dtype == object:  # canonical_frame's text columns hold str or None only
        return column.tolist()
    if isinstance(column.dtype, pd.StringDtype) and column.dtype.na_value is not pd.NA:  # pandas' default text dtype,
        values = column.tolist()  # which canonical_frame's text columns take: Python str, NaN where missing
        for i in np.flatnonzero(column.isna().to_numpy()):
            values[i] = None
        return values
    return [_cell(v) for v in column.tolist()]


def pinned_fields(meta: dict) -> dict:
    """The manifest.json fields the content hash covers (PINNED), as recorded."""
    return {key: meta.get(key) for key in PINNED}


def content_sha256(frame: pd.DataFrame, pinned: dict) -> str:
    """sha256 of the canonical JSON of {format, pinned fields, rows: [[columns...], [row...], ...]}."""
    return _canonical_sha256(canonical_frame(frame), pinned)


def _canonical_sha256(canon: pd.DataFrame, pinned: dict) -> str:
    """content_sha256 of a frame that is canonical_frame's output already (canonical_frame of it is itself)."""
    # column by column (a JSON array of a tuple is the array of its list): the same text as _cell on every row's cells
    columns = [_cells(canon[name]) for name in canon.columns]
    rows = [list(canon.columns)] + list(zip(*columns))
    content = {"format": FORMAT, "pinned": {key: pinned.get(key) for key in PINNED}, "rows": rows}
    text = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return sha256(text.encode("utf-8")).hexdigest()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as parquet, as `frame.to_parquet(index=False)` writes it but without pandas' version in the file's
    metadata: the bytes of a committed manifest then depend on its rows and the pyarrow that wrote them, and a pandas
    release (3.1.1 -> 3.1.2 changed two bytes) does not ask for a refreeze (runner.sample.committed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pandas_metadata = json.loads(table.schema.metadata[b"pandas"])
    pandas_metadata.pop("pandas_version", None)
    table = table.replace_schema_metadata({**table.schema.metadata, b"pandas": json.dumps(pandas_metadata).encode()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


def write_manifest(out_dir: Path, result, task_sha256: str, fingerprint: dict | None = None) -> Manifest:
    """Write manifest.parquet, manifest.json and exclusions.csv for a `runner.sample.sampler.SampleResult`.

    `fingerprint` (runner.data.fingerprint.data_fingerprint) is stored as `data_fingerprint`: it is not part of the
    content sha256 (which stays a function of the rows alone), it is what proves a reuse is on the same files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = canonical_frame(result.frame)
    exclusions = [asdict(e) for e in result.exclusions]
    pinned = {"task_id": result.task_id, "task_sha256": task_sha256, "dataset_id": result.dataset_id,
              "label": result.label, "split": result.split, "eval_folds": [int(f) for f in result.eval_folds]}
    meta = {
        **pinned,
        "synthetic": result.synthetic,
        "seed": result.seed,
        "verify": result.verify,
        "format": FORMAT,
        "sha256": _canonical_sha256(frame, pinned),
        "n_images": len(frame),
        "counts": {
            "positives": int((frame["label"] == 1).sum()),
            "negatives": int((frame["label"] == 0).sum()),
            "excluded": len(exclusions),
            "patients": int(frame["patient_id"].nunique()),
            "per_fold": {str(f): {"positives": int(((frame["fold"] == f) & (frame["label"] == 1)).sum()),
                                  "negatives": int(((frame["fold"] == f) & (frame["label"] == 0)).sum())}
                         for f in sorted(frame["fold"].unique())},
            "filters": [asdict(s) for s in result.steps],
        },
        "exclusions": exclusions,
        "sources": result.sources,
        **({"data_fingerprint": fingerprint} if fingerprint is not None else {}),
        **({"matching": result.matching} if getattr(result, "matching", None) else {}),
        **({"verify_note": result.verify_note} if getattr(result, "verify_note", None) else {}),
        **({"classes": list(result.classes)} if getattr(result, "classes", None) else {}),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    text = io.StringIO()
    writer = csv.DictWriter(text, ["image_id", "path", "reason", "label", "detail"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(exclusions)
    atomic_write_bytes(out_dir / "exclusions.csv", text.getvalue().encode("utf-8"))
    atomic_write_bytes(out_dir / "manifest.parquet", parquet_bytes(frame))
    atomic_write_bytes(out_dir / "manifest.json",
                  (json.dumps(meta, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))
    return Manifest(frame, meta)


def _check_int_columns(frame: pd.DataFrame, folder: Path, n_classes: int = 2) -> None:
    """label must be a class index (0 or 1; 0 to n - 1 in a manifest that names its n `classes`, e.g. age bands) and
    fold a whole number >= 0 in every row (a NaN would not survive canonical_frame)."""
    for name in (c for c in INT_COLUMNS if c in frame.columns):
        values = pd.to_numeric(frame[name], errors="coerce")
        whole = values.notna() & (values == values.round()) & (values >= 0)
        bad = ~(values.isin(range(n_classes)) if name == "label" else whole)
        if bad.any():
            first = frame.loc[bad, "image_id"].iloc[0] if "image_id" in frame.columns else int(bad.argmax())
            want = ("0 or 1" if n_classes == 2 else f"0 to {n_classes - 1}") if name == "label" else "a whole number >= 0"
            raise ManifestFormatError(f"{folder}/manifest.parquet: {int(bad.sum())} {name}(s) not {want}, e.g. image "
                                      f"{str(first)[:80]!r}: {str(frame.loc[bad, name].iloc[0])[:40]}")


def read_manifest(folder: Path) -> Manifest:
    """Read manifest.parquet + manifest.json from `folder` and check the rows still hash to the recorded sha256."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        frame = pd.read_parquet(folder / "manifest.parquet")
    except FileNotFoundError as exc:
        raise ManifestError(f"no manifest in {folder}: {Path(exc.filename).name} missing "
                            "(make one with `runner sample --task ID`)") from None
    except (OSError, ValueError) as exc:
        raise ManifestFormatError(f"cannot read the manifest in {folder}: {str(exc)[:200]}") from None
    if not isinstance(meta, dict):
        raise ManifestFormatError(f"{folder}/manifest.json must hold a JSON object (as `runner sample` writes it), "
                                  f"not a JSON {type(meta).__name__}")
    classes = meta.get("classes")
    _check_int_columns(frame, folder, len(classes) if isinstance(classes, list) and len(classes) > 2 else 2)
    frame = canonical_frame(frame)

    outside = paths_leaving_root(frame["path"])
    if outside.any():  # a hand-made manifest must not point the run at files outside the data root
        raise ManifestError(f"{folder}/manifest.parquet: {int(outside.sum())} path(s) leave the data root, e.g. "
                            f"{frame.loc[outside, 'path'].iloc[0]!r}; paths must be relative, without '..'")
    if not isinstance(meta, dict):
        raise ManifestError(f"{folder}/manifest.json is a JSON {type(meta).__name__}, not a manifest object")
    if meta.get("format", 1) != FORMAT:
        raise ManifestError(f"{folder}/manifest.json is manifest format {meta.get('format', 1)!r}; this version hashes "
                            f"format {FORMAT} (the rows and the task, label, split and folds they are for): sample "
                            "again (`runner eval --resample`, `runner sample`)")
    try:
        actual = _canonical_sha256(frame, pinned_fields(meta))
    except (TypeError, ValueError) as exc:  # a pinned field that JSON cannot hold canonically
        raise ManifestError(f"{folder}/manifest.json: {exc}") from None
    if actual != meta.get("sha256"):
        raise ManifestError(f"{folder}: the rows and the pinned fields ({', '.join(PINNED)}) hash to {actual[:12]}…, but "
                            f"manifest.json records {str(meta.get('sha256'))[:12]}…: the manifest was changed after "
                            "sampling")
    return Manifest(frame, meta)


def card_problems(manifest: Manifest, task_card) -> list[str]:
    """What does not match between a manifest and the task card it claims to sample (empty: it belongs to the card).

    Checked: the pinned fields (task, data set, label, split, evaluated folds) against the card, and the class counts
    of the rows against the card's exact `sampling` sizes (the sampler replaces failing files, so they are exact)."""
    meta, spec = manifest.meta, task_card.spec
    split = spec.split.as_dict()
    expected = {"task_id": task_card.id, "dataset_id": spec.dataset, "label": spec.label.id, "split": split,
                "eval_folds": eval_folds_of(split)}
    problems = [f"{key} is {meta.get(key)!r}, the task card says {want!r}" for key, want in expected.items()
                if meta.get(key) != want]
    frame, sampling = manifest.frame, spec.sampling
    if sampling.mode == "images":
        if len(frame) != sampling.images:
            problems.append(f"{len(frame)} images in the rows, the task card samples {sampling.images}")
        wanted = sorted(TARGET_PREFIX + label.id for label in spec.labels)
        have = sorted(c for c in frame.columns if c.startswith(TARGET_PREFIX))
        if have != wanted:
            problems.append(f"finding columns {have}, the task card scores {wanted}")
        return problems
    if sampling.mode == "patients":
        if frame["patient_id"].nunique() != sampling.patients:
            problems.append(f"{frame['patient_id'].nunique()} patients in the rows, the task card samples "
                            f"{sampling.patients}")
        return problems
    labels = frame["label"]
    for name, cls, want in (("positives", 1, sampling.positives), ("negatives", 0, sampling.negatives)):
        have = int((labels == cls).sum())
        if have != want:
            problems.append(f"{have} {name} in the rows, the task card samples {want}")
    return problems
