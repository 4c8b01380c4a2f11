"""Zero-shot classification with text prompts (ELIXR's and CLIP's): no training, the text tower says what to look for.

An image's score is its mean cosine similarity to the embeddings of the label's positive prompts minus its mean cosine
similarity to the negative prompts' (the task card's `zero_shot.prompts`; ELIXR: "score = similarity to a positive
prompt minus a negative prompt"). The score in [-2, 2] is mapped linearly to a probability (score + 2) / 4, so F1 at
the card's threshold 0.5 counts an image positive when it is closer to the positive prompts, and AUROC is the score's.
AUROC and F1 per fold of the manifest with both CIs, exactly as for the probes (runner.metrics.summary.summarize); the
folds only group the images, nothing is trained. The prompts' embeddings come from the encoder's text tower in
`runner eval` and from the embeddings bundle in the registry's regeneration (runner.task_types.run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from runner.metrics.summary import summarize
from runner.task_types import ScoreInputs, Scores, TaskType, TaskTypeError, l2_normalized


def prompt_scores(images: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Mean cosine similarity to the positive prompts minus that to the negative prompts, per image."""
    x = l2_normalized(images)
    return (x @ l2_normalized(positive).T).mean(axis=1) - (x @ l2_normalized(negative).T).mean(axis=1)


def predictions(inputs: ScoreInputs) -> pd.DataFrame:
    """The zero-shot 'predictions' (image_id, patient_id, label, fold, prob = (score + 2) / 4) of the task's label."""
    label = inputs.task.spec.label.id
    try:
        positive, negative = inputs.texts[f"{label}:positive"], inputs.texts[f"{label}:negative"]
    except KeyError:
        raise TaskTypeError(f"{inputs.task.id}: no text embeddings of the prompts for {label!r}") from None
    if positive.shape[1] != inputs.embeddings.shape[1]:
        raise TaskTypeError(f"{inputs.task.id}: text embeddings of width {positive.shape[1]}, image embeddings "
                            f"{inputs.embeddings.shape[1]}: the text tower is not in the image tower's space")
    score = prompt_scores(inputs.embeddings, positive, negative)
    rows = inputs.rows
    return pd.DataFrame({"image_id": rows["image_id"].astype(str).to_numpy(),
                         "patient_id": rows["patient_id"].astype(str).to_numpy(),
                         "label": rows["label"].to_numpy(dtype=np.int64),
                         "fold": rows["fold"].to_numpy(dtype=np.int64),
                         "prob": np.clip((score + 2.0) / 4.0, 0.0, 1.0)})


def score(inputs: ScoreInputs) -> Scores:
    """AUROC and F1 of the prompt-similarity difference (see the module docstring)."""
    spec = inputs.task.spec
    if spec.label.id not in (spec.prompts or {}):
        raise TaskTypeError(f"{inputs.task.id}: zero_shot.prompts has no prompts for the label {spec.label.id!r}")
    frame = predictions(inputs)
    folds = list(inputs.eval_folds)
    evaluated = frame[frame["fold"].isin(folds)]
    summary = summarize(evaluated, spec.metrics, eval_folds=folds, n_train={f: 0 for f in folds})
    prompts = spec.prompts[spec.label.id]
    details = {"prompts": {"positive": list(prompts.positive), "negative": list(prompts.negative)},
               "score": "mean cosine to the positive prompts - mean cosine to the negative prompts; prob = (score + 2) / 4",
               "folds": summary["folds"], "ci_alternatives": summary["ci_alternatives"],
               "mean_score": {"positives": float(evaluated.loc[evaluated["label"] == 1, "prob"].mean() * 4 - 2),
                              "negatives": float(evaluated.loc[evaluated["label"] == 0, "prob"].mean() * 4 - 2)}}
    labels = evaluated["label"]
    return Scores({"auroc": summary["auroc"], "f1": summary["f1"]}, details,
                  {"positives": int((labels == 1).sum()), "negatives": int((labels == 0).sum())})


ZERO_SHOT = TaskType(
    name="zero-shot",
    title="Zero-shot classification with text prompts",
    measures=("Whether the encoder's text tower and image tower agree on a finding, with no training: each image is "
              "scored by its similarity to positive prompts minus negative prompts; AUROC and F1 per fold with a 95% "
              "CI, on the same images and folds as the probe (ELIXR's and CLIP's zero-shot evaluation)."),
    floor=("Chance (0.5). The probe on the same images is the reference above: a zero-shot score near it means the "
           "text tower knows the finding as well as a trained classifier does."),
    sampling="binary", metrics=("auroc", "f1"), score=score, needs_text=True, reads_metadata_floor=False)
