"""What the classifier is given: `Design` (embeddings, the rows they belong to, the folds to evaluate, augmented views).

`cross_validation_design(manifest, embedded)`: k-fold cross-validation on one frozen manifest, the rows that embedded,
in embedding order. `transfer_design(train, test)`: train on every embedded row of the training task's manifest
(fold 1), test on every row of this task's (fold 0): one holdout "fold 0".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TRAIN_PREFIX = "train:"  # marks the training task's rows in a transfer design (ids may repeat across data sets)


@dataclass(frozen=True)
class Design:
    """One classify call's inputs: what `runner.classify.out_of_fold.classify` takes besides the classifier card."""

    embeddings: np.ndarray
    table: pd.DataFrame  # image_id, patient_id, label (0/1), fold, ...; aligned row for row with `embeddings`
    eval_folds: list[int]
    augmented: dict[str, np.ndarray] | None = None  # view id -> embeddings aligned with `table`
    allow_missing: bool = False  # NaN is a missing value (the metadata baseline's features), not an error


def cross_validation_design(manifest, embedded, allow_missing: bool = False) -> Design:
    """Cross-validation on one manifest (runner.sample.manifest.Manifest) with its embeddings
    (runner.embed.rows.Embeddings): the rows that embedded, in embedding order, the manifest's eval folds."""
    table = manifest.frame.set_index("image_id").loc[embedded.image_ids].reset_index()
    return Design(embedded.original, table, [int(f) for f in manifest.meta["eval_folds"]], dict(embedded.augmented),
                  allow_missing)


def transfer_design(train_manifest, train_embedded, test_manifest, test_embedded, allow_missing: bool = False
                    ) -> Design:
    """Train on every embedded row of the training task (fold 1), test on every row of this task (fold 0)."""
    train_table = cross_validation_design(train_manifest, train_embedded).table.assign(fold=1)
    for column in ("image_id", "patient_id", "study_id"):
        if column in train_table.columns:
            train_table[column] = TRAIN_PREFIX + train_table[column].astype(str)
    test_table = cross_validation_design(test_manifest, test_embedded).table.assign(fold=0)
    table = pd.concat([train_table, test_table], ignore_index=True)
    views = sorted(set(train_embedded.augmented) & set(test_embedded.augmented))
    augmented = {v: np.vstack([train_embedded.augmented[v], test_embedded.augmented[v]]) for v in views}
    return Design(np.vstack([train_embedded.original, test_embedded.original]), table, [0], augmented, allow_missing)
