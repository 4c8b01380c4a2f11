"""The paper's task types, scored by the classifier path of runner.evaluate (manifest -> embeddings -> the card's
classifier per fold -> out-of-fold predictions -> AUROC and F1 with CIs -> analyses): their results predate task types,
carry `metrics.auroc` and `metrics.f1`, per-fold values and class counts, and are verified from their predictions or
refitted from their embeddings (leaderboard.filing.regenerate)."""

from __future__ import annotations

from runner.task_types import TaskType

CLASSIFICATION = TaskType(
    name="classification",
    title="Binary classification probe",
    measures=("Whether a finding can be read off the frozen embedding: the card's classifier (LightGBM as in the paper, "
              "logistic regression as in MIEB, or kNN) is trained on the other folds' images and scores the held-out "
              "patients' images; AUROC and F1 per fold, mean with a 95% CI."),
    floor=("The metadata-only baseline (the data set's acquisition and demographic columns; no pixels) on the same "
           "images and folds: "
           "what acquisition and demographics alone predict."),
    sampling="binary", metrics=("auroc", "f1"), score=None)

TRANSFER = TaskType(
    name="transfer",
    title="Cross-dataset transfer",
    measures=("Whether a probe trained on one data set's images still works on another's: the classifier is trained on "
              "every image of the training task's manifest and scores this task's images; AUROC and F1 with the "
              "patient bootstrap CI."),
    floor="The same encoder cross-validated on the target's own images (the in-domain reference) bounds it from above; "
          "the metadata baseline transferred the same way is the shortcut floor.",
    sampling="binary", metrics=("auroc", "f1"), score=None)
