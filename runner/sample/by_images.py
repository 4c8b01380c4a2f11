"""The samplers of the task types that do not draw N positives and N negatives of one label (runner.sample.sampler):

* `sample_images`: exactly `sampling.images` images from every candidate, in the seeded order (multi-label tasks:
  every image with at least one finding known under the label policy, each finding's value kept as a `target_<id>`
  column; demographic tasks and clustering by attribute: every image whose sex, view or age is known, its class index
  as `label`, the class names in the manifest's `classes`);
* `sample_patients`: exactly `sampling.patients` patients with at least two candidate images, all their images (or the
  first `images_per_patient` in the seeded order), for the same-patient retrieval of reidentification tasks.

Both share the label sampler's steps and checks: the view filter (the DICOM ViewPosition tag when the metadata has
none), a stable sort by id then a numpy Generator permutation, every taken file checked as `sampling.verify` says and a
failing one recorded as an exclusion and replaced by the next candidate, a patient-wise split. Folds: images sampling
stratifies StratifiedGroupKFold on a class per image (the attribute's class; for multi-label the image's rarest positive
finding, or none), so rare findings spread over the folds; patients sampling deals the patients to the folds in a
seeded order (a patient's images always share a fold).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from runner.data import read_index
from runner.data.tables import METADATA_PREFIX
from runner.sample.manifest import TARGET_PREFIX
from runner.sample.sampler import (
    VERIFY_MODES,
    FilterStep,
    SampleResult,
    SamplingError,
    apply_label_policy,
    eval_folds_of,
    file_checks,
    seeded_order,
    seeded_positions,
    split_folds,
    take_verified,
)

NOT_A_CLASS = -1  # an exclusion's `label` in samplers that draw no binary classes
SEX_CLASSES = ("M", "F")  # class 1 (the binary target) is F


def attribute_classes(target: dict, views: list[str]) -> list[str]:
    """The classes of an attribute target, in class-index order: sex M, F; view the card's `views`; age its bands."""
    if target["attribute"] == "sex":
        return list(SEX_CLASSES)
    if target["attribute"] == "view":
        return list(views)
    edges = [float(e) for e in target["age_bands"]]
    if any(b <= a for a, b in pairwise(edges)):
        raise SamplingError(f"target.age_bands must increase, got {edges}")
    return [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)]


def attribute_label(frame: pd.DataFrame, target: dict, classes: list[str]) -> pd.Series:
    """Class index per row (NaN where the attribute is unknown or outside every class)."""
    attribute = target["attribute"]
    if attribute not in frame.columns:
        raise SamplingError(f"target.attribute {attribute!r}: the dataset card maps no {attribute} column")
    if attribute == "age":
        edges = [float(e) for e in target["age_bands"]]
        codes = pd.cut(pd.to_numeric(frame["age"], errors="coerce"), edges, right=False, labels=False)
        return codes.astype(float)
    position = {name: float(i) for i, name in enumerate(classes)}
    return frame[attribute].astype(object).map(lambda v: position.get(str(v).upper() if v is not None else None))


def _prepare(task: dict, dataset_card: dict, data_root: Path, verify: str | None, workers: int | None, index,
             defer_verify_without_images: bool, label_ids: list[str]):
    """(candidate frame after the view filter, header views, verify mode and note, the file checker, steps, index)."""
    sampling = task["sampling"]
    verify = verify or sampling.get("verify", "decode")
    if verify not in VERIFY_MODES:
        raise SamplingError(f"verify {verify!r} unknown (one of {', '.join(VERIFY_MODES)})")
    if index is None:
        index = read_index(dataset_card, data_root, label_ids)
    frame = index.frame
    missing = [label for label in label_ids if label not in frame.columns]
    if missing:
        raise SamplingError(f"dataset {index.dataset_id!r} index has no {missing[0]!r} label column")
    steps = [FilterStep("indexed", len(frame), 0)]
    views = tuple(task["views"])
    frame, verify, note, checker = file_checks(index, frame, views, verify, dataset_card, data_root,
                                               workers or sampling.get("verify_workers", 2),
                                               defer_verify_without_images)
    if index.views_known:
        steps.append(FilterStep(f"view in {'/'.join(views)}", len(frame), 0))
    return frame, verify, note, checker, steps, index


def _columns(frame: pd.DataFrame) -> list[str]:
    columns = ["image_id", "patient_id", "study_id", "path", "view", "label", "fold"]
    columns += [c for c in ("sex", "age") if c in frame.columns]
    columns += [c for c in frame.columns if c.startswith(TARGET_PREFIX)]
    columns += [c for c in frame.columns if c.startswith(METADATA_PREFIX)]
    return columns


def sample_images(task: dict, dataset_card: dict, data_root: Path, *, seed: int | None = None,
                  verify: str | None = None, workers: int | None = None, index=None,
                  defer_verify_without_images: bool = False) -> SampleResult:
    """Exactly `sampling.images` images (see the module docstring)."""
    sampling, split = dict(task["sampling"]), dict(task["split"])
    if seed is not None:
        sampling["seed"] = split["seed"] = seed
    labels = [item["id"] for item in task.get("labels") or []]
    frame, verify, note, checker, steps, index = _prepare(task, dataset_card, data_root, verify, workers, index,
                                                          defer_verify_without_images, labels)
    classes = None
    if labels:  # multi-label: each finding under the label policy; a candidate has at least one known
        targets = {TARGET_PREFIX + label: apply_label_policy(frame[label], task["label_policy"]) for label in labels}
        frame = frame.assign(**targets)
        known = frame[list(targets)].notna().any(axis=1)
        frame = frame[known].assign(label=(frame.loc[known, list(targets)] == 1.0).any(axis=1).astype(float))
        steps.append(FilterStep("at least one finding known under the label policy", len(frame), 0))
    else:  # an attribute: its class is the label
        classes = attribute_classes(task["target"], list(task["views"]))
        frame = frame.assign(label=attribute_label(frame, task["target"], classes))
        frame = frame[frame["label"].notna()]
        steps.append(FilterStep(f"{task['target']['attribute']} known", len(frame), 0))
    want = int(sampling["images"])
    if len(frame) < want:
        raise SamplingError(_short(task, steps, want, "images"))
    rng = np.random.default_rng(sampling["seed"])
    try:
        picked, exclusions = take_verified(frame, want, NOT_A_CLASS, checker, seeded_positions(frame, rng))
    finally:
        checker.close()
    steps.append(FilterStep(f"sampled after file checks ({verify})", len(picked), 0))
    if len(picked) < want:
        raise SamplingError(_short(task, steps, want, "images") + f" Files excluded: {len(exclusions)}.")
    picked = picked.sort_values("image_id", kind="mergesort").reset_index(drop=True)
    picked["label"] = picked["label"].astype("int64")
    picked["fold"], eval_folds = _stratified_folds(picked, split, _strata(picked, labels))
    return SampleResult(task["id"], index.dataset_id, picked[_columns(picked)], split, eval_folds, sampling["seed"],
                        verify, steps, exclusions, index.sources, bool(dataset_card.get("synthetic", False)), None,
                        note, task["label"]["id"], classes)


def sample_patients(task: dict, dataset_card: dict, data_root: Path, *, seed: int | None = None,
                    verify: str | None = None, workers: int | None = None, index=None,
                    defer_verify_without_images: bool = False) -> SampleResult:
    """Exactly `sampling.patients` patients with two or more usable images (see the module docstring)."""
    sampling, split = dict(task["sampling"]), dict(task["split"])
    if seed is not None:
        sampling["seed"] = split["seed"] = seed
    frame, verify, note, checker, steps, index = _prepare(task, dataset_card, data_root, verify, workers, index,
                                                          defer_verify_without_images, [])
    counts = frame.groupby("patient_id")["image_id"].transform("size")
    frame = frame[counts >= 2].assign(label=1)
    steps.append(FilterStep("patients with two or more candidate images", len(frame), 0))
    want, per_patient = int(sampling["patients"]), sampling.get("images_per_patient")
    rng = np.random.default_rng(sampling["seed"])
    patients = rng.permutation(np.sort(frame["patient_id"].astype(str).unique()))
    if len(patients) < want:
        raise SamplingError(_short(task, steps, want, "patients") + f" ({len(patients)} patients qualify)")
    # row positions per patient (each patient's rows in frame order); only the patients tried are copied out
    by_patient = frame.groupby(frame["patient_id"].astype(str), sort=False).indices
    chosen, exclusions = [], []
    try:
        for patient in patients:
            rows = seeded_order(frame.iloc[by_patient[patient]], rng)
            n = len(rows) if per_patient is None else min(len(rows), int(per_patient))
            taken, excluded = take_verified(rows, n, NOT_A_CLASS, checker)
            exclusions += excluded
            if len(taken) >= 2:  # a patient with one usable image cannot be re-identified: the next one is taken
                chosen.append(taken)
            if len(chosen) == want:
                break
    finally:
        checker.close()
    steps.append(FilterStep(f"patients sampled after file checks ({verify})", sum(map(len, chosen)), 0))
    if len(chosen) < want:
        raise SamplingError(_short(task, steps, want, "patients") + f" Files excluded: {len(exclusions)}.")
    picked = pd.concat(chosen).sort_values("image_id", kind="mergesort").reset_index(drop=True)
    picked["label"] = picked["label"].astype("int64")
    picked["fold"], eval_folds = _patient_folds(picked, split)
    return SampleResult(task["id"], index.dataset_id, picked[_columns(picked)], split, eval_folds, sampling["seed"],
                        verify, steps, exclusions, index.sources, bool(dataset_card.get("synthetic", False)), None,
                        note, task["label"]["id"], None)


def _short(task: dict, steps: list[FilterStep], want: int, what: str) -> str:
    trail = "; ".join(f"{s.step}: {s.positives:,}" for s in steps)
    return f"task {task['id']!r}: not enough candidates for {want:,} {what}. Remaining after each filter — {trail}."


def _strata(frame: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """A class per image for the stratified split: the attribute class, or the image's rarest positive finding."""
    if not labels:
        return frame["label"].to_numpy()
    positives = frame[[TARGET_PREFIX + label for label in labels]].to_numpy() == 1.0
    order = np.argsort(positives.sum(axis=0), kind="stable")  # rarest first
    rarest = np.full(len(frame), len(labels))  # len(labels): no positive finding
    for column in order[::-1]:  # the rarest positive wins: written last
        rarest[positives[:, column]] = column
    return rarest


def _stratified_folds(frame: pd.DataFrame, split: dict, strata: np.ndarray) -> tuple[np.ndarray, list[int]]:
    groups = frame["patient_id"].astype(str).to_numpy()
    if split["method"] == "stratified-group-kfold" and len(set(groups)) < int(split["folds"]):
        raise SamplingError(f"split: {split['folds']} folds need at least {split['folds']} patients; the sample has "
                            f"{len(set(groups))}")
    return split_folds(strata, groups, split)


def _patient_folds(frame: pd.DataFrame, split: dict) -> tuple[np.ndarray, list[int]]:
    """Patients dealt to the folds in a seeded order (k-fold), or a seeded share of them as the test side (holdout)."""
    patients = np.sort(frame["patient_id"].astype(str).unique())
    order = np.random.default_rng(split["seed"]).permutation(len(patients))
    if split["method"] == "stratified-group-kfold":
        k = int(split["folds"])
        if len(patients) < k:
            raise SamplingError(f"split: {k} folds need at least {k} patients; the sample has {len(patients)}")
        fold_of = {patients[j]: position % k for position, j in enumerate(order)}
        eval_folds = eval_folds_of(split)
    else:
        n_test = max(1, round(split["test_fraction"] * len(patients)))
        fold_of = {patients[j]: 0 if position < n_test else 1 for position, j in enumerate(order)}
        eval_folds = [0]
    return frame["patient_id"].astype(str).map(fold_of).to_numpy(dtype=np.int64), eval_folds

