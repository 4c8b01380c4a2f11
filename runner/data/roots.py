"""Which folder holds each data set of a run: `DataRoots(own dataset, --data-root, --dataset-root ID=DIR ...)`.

`--data-root` is the task's own data set; any other data set a run needs (a transfer task's training set, a transfer
analysis target) comes from `--dataset-root ID=DIR` or that dataset card's environment variable. A data set with no
root is a DataError (exit 2) saying which flag or variable to set and how to get the data.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.data.tables import DataError, access_hint, resolve_data_root


class DataRoots:
    def __init__(self, own_dataset: str, data_root: Path | None, data_roots: dict | None):
        self.own, self.data_root, self.data_roots = own_dataset, data_root, dict(data_roots or {})

    def of(self, dataset_card: dict) -> Path:
        """The data root of one data set (its dataset card)."""
        dataset_id = dataset_card["id"]
        given = self.data_root if dataset_id == self.own and self.data_root is not None else \
            self.data_roots.get(dataset_id)
        if given is None and dataset_id != self.own and not os.environ.get(dataset_card.get("root_env") or ""):
            hint = f" or set ${dataset_card['root_env']}" if dataset_card.get("root_env") else ""
            raise DataError(f"no data root for dataset {dataset_id!r}: pass --dataset-root {dataset_id}=DIR{hint}. "
                            f"{access_hint(dataset_card)}")
        return Path(resolve_data_root(dataset_card, given))
