"""MIMIC-CXR (DICOM) and MIMIC-CXR-JPG: metadata + per-study label CSV (+ split CSV), joined on subject/study."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runner.data import DatasetIndex
from runner.data.tables import (
    DataError,
    add_labels,
    add_metadata_features,
    align,
    base_index,
    check_ids,
    feature_columns,
    find_table,
    is_unique,
    key_array,
    require_columns,
    table_columns,
    wanted_labels,
)


def build_paths(template: str, fields: dict[str, pa.Array]) -> np.ndarray:
    """Fill a `{field}` template column-wise in Arrow (377k rows in ~0.1 s, unlike str.format per row)."""
    parts: list = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        if literal:
            parts.append(literal)
        if name is not None:
            if name not in fields:
                raise DataError(f"path_template field {{{name}}} unknown (known: {', '.join(fields)})")
            parts.append(fields[name])
    if not any(isinstance(p, pa.Array) for p in parts):
        raise DataError(f"path_template {template!r} names no field")
    return pc.binary_join_element_wise(*parts, "").to_numpy(zero_copy_only=False)


def read(card: dict, root: Path, labels: list[str] | None) -> DatasetIndex:
    label_ids = wanted_labels(card, labels)
    columns, join = card["columns"], card.get("join", [])
    meta, meta_files = find_table(card, root, "metadata", table_columns(card, "metadata", label_ids, join),
                                  feature_columns(card))
    index = base_index(meta, card, meta_files[0])
    check_ids(index, card, meta_files[0])
    tables, sources = {"metadata": meta}, {"metadata": meta_files}
    if any(card["labels"][x].get("table") == "labels" for x in label_ids):
        table, files = find_table(card, root, "labels", table_columns(card, "labels", label_ids, join))
        require_columns(meta, join, meta_files[0], card)
        require_columns(table, join, files[0], card)
        table_keys = key_array(table, join)
        if not is_unique(table_keys):
            repeated = int(table.duplicated(join).sum())
            raise DataError(f"{card['id']}: {files[0]} has {repeated} repeated {'/'.join(join)} rows; "
                            "labels must be one row per study")
        # Labels are per study, images per DICOM: every image gets its study's row; a study without labels is blank.
        tables["labels"] = align(table, table_keys, key_array(meta, join))
        sources["labels"] = files
    add_labels(index, tables, card, label_ids)
    add_metadata_features(index, tables, card)

    if card.get("files", {}).get("split"):
        try:
            split, split_files = find_table(card, root, "split", [columns["image_id"], "split"])
        except DataError:
            split = None  # optional: recorded for reference only
        if split is not None and {columns["image_id"], "split"} <= set(split.columns):
            found = align(split[["split"]], key_array(split, [columns["image_id"]]), key_array(index, ["image_id"]))
            index["source_split"] = found["split"].to_numpy()
            sources["split"] = split_files

    subject = key_array(index, ["patient_id"])
    fields = {"subject_id": subject, "subject_prefix": pc.utf8_slice_codeunits(subject, 0, 2),
              "study_id": key_array(index, ["study_id"]), "dicom_id": key_array(index, ["image_id"]),
              "image_id": key_array(index, ["image_id"])}
    index["path"] = build_paths(card["files"]["path_template"], fields)
    return DatasetIndex(card["id"], root, index, sources)
