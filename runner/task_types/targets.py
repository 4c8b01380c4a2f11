"""Multi-label and demographic tasks: one binary probe per target on shared patient-wise folds, macro AUROC.

Targets: a multi-label task's findings (the manifest's `target_<id>` columns: 1, 0, or unknown, which that finding's
probe leaves out); a demographic task's attribute classes (sex: F vs M, view: the second view vs the first, age: each
band against the others, one-vs-rest), from the manifest's class-index `label`. For each target the task card's
classifier (runner.classify.out_of_fold: LightGBM, logistic regression or kNN) is trained on the other folds' images
with a known value and scores the held-out fold's; AUROC per fold. The macro AUROC of a fold is the mean over the
targets computable in every fold (both classes in every test fold and every training set); a target that is not is
listed under details.left_out with why, and its own AUROC is still shown where it could be computed. Mean and CI of
every AUROC: the across-fold t-interval (runner.metrics.summary.fold_metric).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from registry.errors import RegistryError
from runner.classify.design import Design
from runner.classify.out_of_fold import classify_many
from runner.metrics.summary import fold_metric
from runner.sample.by_images import attribute_classes
from runner.sample.manifest import TARGET_PREFIX
from runner.task_types import ScoreInputs, Scores, TaskType, TaskTypeError


def targets(inputs: ScoreInputs) -> dict[str, tuple[str, np.ndarray]]:
    """target id -> (display name, values per row: 1.0, 0.0 or NaN unknown)."""
    spec, rows = inputs.task.spec, inputs.rows
    if spec.labels:
        return {label.id: (label.name, rows[TARGET_PREFIX + label.id].to_numpy(dtype=float)) for label in spec.labels}
    classes = class_names(inputs.task, rows)
    label = rows["label"].to_numpy(dtype=np.int64)
    if len(classes) == 2:  # one probe: class 1 against class 0 (F vs M, AP vs PA)
        return {_slug(classes[1]): (f"{classes[1]} vs {classes[0]}", (label == 1).astype(float))}
    return {_slug(name): (f"{name} vs rest", (label == i).astype(float)) for i, name in enumerate(classes)}


def class_names(task, rows: pd.DataFrame) -> list[str]:
    """The attribute classes of a demographic task, from its card (the sampler's order: runner.sample.by_images)."""
    target = task.spec.target
    classes = attribute_classes({"attribute": target.attribute, "age_bands": list(target.age_bands)},
                                list(task.spec.views))
    if int(rows["label"].max()) >= len(classes):
        raise TaskTypeError(f"{task.id}: the manifest has class {int(rows['label'].max())}, the card {len(classes)}")
    return classes


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(name).lower()).strip("_") or "class"


def score(inputs: ScoreInputs) -> Scores:
    """Per-target and macro AUROC (see the module docstring)."""
    spec = inputs.task.spec
    if spec.type == "demographic" and not inputs.reads_pixels:
        raise TaskTypeError(f"{inputs.task.id}: the metadata baseline reads the {spec.target.attribute} it would "
                            "predict; a demographic task's floor is the pixel-statistics baseline (encoder `pixels`)")
    folds = list(inputs.eval_folds)
    fold_of_row = inputs.rows["fold"].to_numpy(dtype=np.int64)
    found = targets(inputs)
    designs, reasons = {}, {}
    for target_id, (_, values) in found.items():
        known = ~np.isnan(values)
        reason = _unscorable(values[known], fold_of_row[known], folds)
        if reason:
            reasons[target_id] = reason
            continue
        table = pd.DataFrame({"image_id": inputs.rows["image_id"].to_numpy()[known],
                              "patient_id": inputs.rows["patient_id"].astype(str).to_numpy()[known],
                              "label": values[known].astype(np.int64), "fold": fold_of_row[known]})
        augmented = {view: x[known] for view, x in inputs.augmented.items()}
        designs[target_id] = Design(inputs.embeddings[known], table, folds, augmented or None,
                                    allow_missing=not inputs.reads_pixels)
    try:
        fitted = dict(zip(designs, classify_many(list(designs.values()), spec.classifier)))
    except RegistryError as exc:
        raise TaskTypeError(f"{inputs.task.id}: {exc}") from None
    confidence = spec.metrics.confidence
    per_target, per_fold = {}, {}
    for target_id, (name, values) in found.items():
        known = values[~np.isnan(values)]
        block = {"name": name, "positives": int((known == 1).sum()), "negatives": int((known == 0).sum()),
                 "unknown": int(np.isnan(values).sum())}
        if target_id in fitted:
            predictions = fitted[target_id].predictions
            per_fold[target_id] = [_auroc(predictions[predictions["fold"] == f]) for f in folds]
            block["auroc"] = fold_metric(per_fold[target_id], confidence)
        else:
            block["reason"] = reasons[target_id]
        per_target[target_id] = block
    in_macro = [t for t, values in per_fold.items() if all(v is not None for v in values)]
    left_out = {t: reasons.get(t, "a test fold holds a single class") for t in found if t not in in_macro}
    macro = [float(np.mean([per_fold[t][i] for t in in_macro])) if in_macro else None for i in range(len(folds))]
    metric = fold_metric(macro, confidence)
    if not in_macro:
        metric["reason"] = "no target could be scored in every fold"
    details = {"targets": per_target, "macro_over": in_macro, "left_out": left_out, "folds": folds,
               "classifier": spec.classifier.type}
    return Scores({"auroc": metric}, details)


def _unscorable(values: np.ndarray, folds_of_rows: np.ndarray, folds: list[int]) -> str | None:
    """Why a target cannot be probed at all: a single class overall, or a fold whose training rows hold one."""
    if len(np.unique(values)) < 2:
        return f"a single class among the {len(values)} images with a known value"
    for fold in folds:
        if len(np.unique(values[folds_of_rows != fold])) < 2:
            return f"fold {fold}: the training images hold a single class"
    return None


def _auroc(rows: pd.DataFrame) -> float | None:
    from sklearn.metrics import roc_auc_score

    if rows["label"].nunique() < 2:
        return None
    return float(roc_auc_score(rows["label"], rows["prob"]))


MULTI_LABEL = TaskType(
    name="multi-label",
    title="Multi-label findings",
    measures=("How many of a data set's findings can be read off one frozen embedding: one probe per finding (the "
              "card's classifier, trained on the other folds' images), macro AUROC over the findings with a 95% CI, "
              "and each finding's AUROC (BenchX's and CheXpert's multi-label evaluation)."),
    floor=("The metadata-only baseline (the data set's acquisition and demographic columns; no pixels) on the same "
           "images and folds: "
           "what acquisition and demographics alone predict of the findings."),
    sampling="images", metrics=("auroc",), score=score)

DEMOGRAPHIC = TaskType(
    name="demographic",
    title="Demographic and acquisition probes",
    measures=("What else an encoder's embedding encodes: sex, age band or view position predicted from the frozen "
              "embedding by the card's classifier (macro one-vs-rest AUROC for age bands). High means the attribute "
              "is in the embedding, and a finding probe can use it as a shortcut; the floors of the finding tasks are "
              "partly explained by these."),
    floor=("Chance (0.5) and the pixel-statistics baseline (encoder `pixels`): what raw intensities give. The metadata "
           "baseline is no floor here: it reads the attribute itself."),
    sampling="images", metrics=("auroc",), score=score, reads_metadata_floor=False)
