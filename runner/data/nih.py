"""NIH ChestX-ray14: Data_Entry CSV + PNGs under images/, images_*/images/ or a flat folder, + Google's relabels."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from runner.data import DatasetIndex
from runner.data.tables import (
    add_labels,
    add_metadata_features,
    base_index,
    check_ids,
    feature_columns,
    find_table,
    require_columns,
    table_columns,
    wanted_labels,
)


def find_images(root: Path, patterns: list[str]) -> dict[str, str]:
    """File name -> path relative to root, over every folder matching the card's glob patterns (first match wins)."""
    found: dict[str, str] = {}
    for pattern in patterns:
        for folder in sorted(glob.glob(pattern, root_dir=root)):
            prefix = "" if os.path.normpath(folder) == "." else Path(folder).as_posix().rstrip("/") + "/"
            try:
                entries = list(os.scandir(root / folder))
            except (NotADirectoryError, FileNotFoundError):
                continue
            for entry in entries:
                if entry.name not in found and entry.is_file():
                    found[entry.name] = prefix + entry.name
    return found


def read(card: dict, root: Path, labels: list[str] | None) -> DatasetIndex:
    label_ids = wanted_labels(card, labels)
    meta, meta_files = find_table(card, root, "metadata", table_columns(card, "metadata", label_ids),
                                  feature_columns(card))
    index = base_index(meta, card, meta_files[0])
    check_ids(index, card, meta_files[0])
    tables, sources = {"metadata": meta}, {"metadata": meta_files}
    if any(card["labels"][x].get("table") == "relabels" for x in label_ids):
        relabels, relabel_files = find_table(card, root, "relabels")
        image_col = card["columns"]["image_id"]
        require_columns(relabels, [image_col], relabel_files[0], card)
        # Only the relabel columns are taken; rows align with the metadata by image id (absent -> blank).
        relabels = relabels.drop_duplicates(image_col).set_index(image_col)
        tables["relabels"] = relabels.reindex(index["image_id"]).reset_index(drop=True)
        sources["relabels"] = relabel_files
    add_labels(index, tables, card, label_ids)
    add_metadata_features(index, tables, card)

    patterns = card["files"]["image_dirs"]
    on_disk = find_images(root, patterns)
    default_dir = next((p for p in patterns if not glob.has_magic(p)), ".")
    prefix = "" if default_dir == "." else default_dir.rstrip("/") + "/"
    index["path"] = [on_disk.get(name, prefix + name) for name in index["image_id"]]
    found = sum(name in on_disk for name in index["image_id"])
    return DatasetIndex(card["id"], root, index, sources, files_found=found)
