"""`csv` kind: any folder of DICOM/PNG/JPEG files described by one CSV (path, ids, view, one column per label)."""

from __future__ import annotations

from pathlib import Path

from runner.data import DatasetIndex
from runner.data.tables import (
    DataError,
    add_labels,
    add_metadata_features,
    base_index,
    check_ids,
    feature_columns,
    find_table,
    table_columns,
    wanted_labels,
)


def read(card: dict, root: Path, labels: list[str] | None) -> DatasetIndex:
    if "path" not in card["columns"]:
        raise DataError(f"{card['id']}: a csv dataset card must name its relative file path column (columns.path)")
    label_ids = wanted_labels(card, labels)
    meta, files = find_table(card, root, "metadata", table_columns(card, "metadata", label_ids),
                              feature_columns(card))
    index = base_index(meta, card, files[0])
    check_ids(index, card, files[0])
    add_labels(index, {"metadata": meta}, card, label_ids)
    add_metadata_features(index, {"metadata": meta}, card)
    paths = meta[card["columns"]["path"]].astype("string").str.strip().str.replace("\\", "/", regex=False)
    bad = paths.isna() | (paths == "")  # paths that leave the data root are refused by read_index for every kind
    if bad.any():
        raise DataError(f"{card['id']}: {int(bad.sum())} rows of {files[0]} have a blank path, "
                        f"e.g. row {int(bad.to_numpy().nonzero()[0][0]) + 2}")
    index["path"] = paths.to_numpy()
    return DatasetIndex(card["id"], root, index, {"metadata": files})
