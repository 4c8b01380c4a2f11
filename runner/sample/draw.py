"""`sample(task, dataset_card, data_root, ...)`: the sampler a task card's `sampling` block names — N positives and
N negatives of one label (runner.sample.sampler.sample_task), `images` (runner.sample.by_images.sample_images) or
`patients` (runner.sample.by_images.sample_patients) — with the same keyword arguments and the same SampleResult."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from runner.sample.by_images import (
    TARGET_PREFIX,
    attribute_classes,
    attribute_label,
    sample_images,
    sample_patients,
)
from runner.sample.sampler import SampleResult, apply_label_policy, sample_task


def sampling_mode(task: dict) -> str:
    """binary | images | patients, from the card's `sampling` block."""
    sampling = task.get("sampling") or {}
    return "images" if "images" in sampling else "patients" if "patients" in sampling else "binary"


def sample(task: dict, dataset_card: dict, data_root: Path, **options) -> SampleResult:
    """Sample and split one task (a resolved task card's data) as its `sampling` block says."""
    draw = {"binary": sample_task, "images": sample_images, "patients": sample_patients}[sampling_mode(task)]
    return draw(task, dataset_card, data_root, **options)


def read_labels(task: dict) -> list[str]:
    """The dataset labels a task reads: its label (and the one its negatives require) for binary sampling, its
    `labels` for a multi-label task, none for an attribute target or patients."""
    mode = sampling_mode(task)
    if mode == "binary":
        requires = (task.get("label_policy") or {}).get("negative_requires")
        return [task["label"]["id"]] + ([requires] if requires else [])
    return [item["id"] for item in task.get("labels") or []]


def labels_of(task: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """The label columns a task's manifest holds (label, and target_<id> for multi-label), recomputed from index rows
    as the task's sampler sets them: what a committed manifest is checked against on the user's data."""
    mode = sampling_mode(task)
    if mode == "binary":
        requires = task["label_policy"].get("negative_requires")
        return pd.DataFrame({"label": apply_label_policy(rows[task["label"]["id"]], task["label_policy"],
                                                         rows[requires] if requires else None)}, index=rows.index)
    if mode == "patients":
        return pd.DataFrame({"label": 1.0}, index=rows.index)
    labels = [item["id"] for item in task.get("labels") or []]
    if labels:
        out = pd.DataFrame({TARGET_PREFIX + label: apply_label_policy(rows[label], task["label_policy"])
                            for label in labels}, index=rows.index)
        known = out.notna().any(axis=1)
        return out.assign(label=(out == 1.0).any(axis=1).astype(float).where(known))
    classes = attribute_classes(task["target"], list(task["views"]))
    return pd.DataFrame({"label": attribute_label(rows, task["target"], classes)}, index=rows.index)
