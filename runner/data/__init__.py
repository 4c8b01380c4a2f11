"""Dataset readers: a dataset card + a data root -> the common image index.

`read_index(card, data_root)` picks the reader named by the card's `kind` (nih-cxr14, mimic-cxr, csv, huggingface, table).
Every reader returns the same columns (docs/ARCHITECTURE.md, "Dataset index"); every failure is a `DataError` whose
message names the missing file or column and says how to get the data set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from registry import plugins
from runner.data.tables import DataError, access_hint, check_paths_unique, paths_leaving_root


@dataclass
class DatasetIndex:
    """One row per image: image_id, patient_id, study_id, path (relative to data_root, POSIX), view, [sex, age],
    one float column per label read (1.0 / 0.0 / -1.0 / NaN)."""

    dataset_id: str
    data_root: Path
    frame: pd.DataFrame
    sources: dict[str, list[str]] = field(default_factory=dict)  # table -> files read
    files_found: int | None = None  # image files seen on disk while indexing (None: not scanned)

    @property
    def views_known(self) -> bool:
        """False when the metadata has no view column, so views come from the DICOM ViewPosition tag."""
        return bool((self.frame["view"] != "").any())


def read_index(dataset_card: dict, data_root: Path, labels: list[str] | None = None) -> DatasetIndex:
    """Index the data set at `data_root` as `dataset_card` describes it; `labels` limits which label columns are read."""
    try:
        read = plugins.load("dataset_kind", str(dataset_card.get("kind")))  # the reader the card's kind names
    except plugins.PluginError as exc:
        raise DataError(f"dataset {dataset_card.get('id')!r}: {exc}") from None
    data_root = Path(data_root).expanduser()
    if not data_root.is_dir():
        raise DataError(f"data root {str(data_root)!r} is not a folder. {access_hint(dataset_card)}")
    index = read(dataset_card, data_root, labels)
    _refuse_paths_outside_root(index, dataset_card)

    check_paths_unique(index.frame, dataset_card, "the index")
    return index


def _refuse_paths_outside_root(index: DatasetIndex, card: dict) -> None:
    """Every reader builds paths from metadata (a CSV cell, an image id): none may leave the data root."""
    bad = paths_leaving_root(index.frame["path"])
    if bad.any():
        first = index.frame.loc[bad, ["image_id", "path"]].iloc[0]
        raise DataError(f"{card.get('id')}: {int(bad.sum())} image path(s) leave the data root, e.g. image "
                        f"{first['image_id']!r} -> {first['path']!r}; paths must be relative, without '..'")
