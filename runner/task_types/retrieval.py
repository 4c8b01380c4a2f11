"""Image->image retrieval (MedImageInsight's kNN search, MIEB's any2any retrieval) and same-patient retrieval.

retrieval: each image of an evaluated fold is a query; the gallery is every image of the other folds (patient-wise
folds: a patient's own images never answer for it); relevant = the same label. Cosine similarity of the embeddings
ranks the gallery. precision@k (the card's `retrieval.k`), mAP and nDCG@10 per query (runner.metrics.ranking),
averaged over a fold's queries; mean and 95% CI over the folds. Chance: a random ranking's expected precision, the share
of relevant images in the gallery.

reidentification: each image of an evaluated fold whose patient has another image in the manifest is a query; the
gallery is every other image of the manifest; relevant = the same patient. recall@k (is one of the patient's images
among the top k: the re-identification rate at k) and mAP. High means the embedding identifies the patient — a privacy
risk for anyone sharing embeddings, and a sign that it encodes the person rather than the finding. Chance: the expected
recall@1 of a random ranking.
"""

from __future__ import annotations

import numpy as np

from runner.metrics.ranking import query_metrics, rankings
from runner.metrics.summary import fold_metric
from runner.task_types import ScoreInputs, Scores, TaskType, TaskTypeError, l2_normalized

NDCG_K = 10


def _check(inputs: ScoreInputs) -> np.ndarray:
    if not inputs.reads_pixels:
        raise TaskTypeError(f"{inputs.task.id}: retrieval ranks by cosine similarity of embeddings; the metadata "
                            "baseline's features are not an embedding (its floor here is chance)")
    return l2_normalized(inputs.embeddings)


def score_by_label(inputs: ScoreInputs) -> Scores:
    """precision@k, mAP and nDCG@10 with the same label as relevant (see the module docstring)."""
    x = _check(inputs)
    labels = inputs.rows["label"].to_numpy(dtype=np.int64)
    folds = inputs.rows["fold"].to_numpy(dtype=np.int64)
    ks = tuple(sorted(inputs.task.spec.retrieval.k))
    per_fold: dict[str, list] = {}
    chance, n_queries = [], []
    for fold in inputs.eval_folds:
        queries, gallery = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
        order = rankings(x[queries] @ x[gallery].T)
        relevant = labels[gallery][order] == labels[queries][:, None]
        values = query_metrics(relevant, ks, NDCG_K)
        for name, v in values.items():
            per_fold.setdefault(name, []).append(float(np.nanmean(v)) if np.isfinite(v).any() else None)
        chance.append(float(np.mean([np.mean(labels[gallery] == y) for y in labels[queries]])))
        n_queries.append(len(queries))
    confidence = inputs.task.spec.metrics.confidence
    metrics = {"map": fold_metric(per_fold["ap"], confidence),
               f"ndcg_at_{NDCG_K}": fold_metric(per_fold[f"ndcg_at_{NDCG_K}"], confidence),
               **{f"precision_at_{k}": fold_metric(per_fold[f"precision_at_{k}"], confidence) for k in ks}}
    details = {"relevant": "same label", "gallery": "the images of the other folds", "folds": list(inputs.eval_folds),
               "queries_per_fold": n_queries, "chance_precision": float(np.mean(chance)),
               "chance_precision_per_fold": chance}
    return Scores(metrics, details, {"positives": int((labels == 1).sum()), "negatives": int((labels == 0).sum())})


def score_same_patient(inputs: ScoreInputs) -> Scores:
    """recall@k and mAP with the same patient as relevant (see the module docstring)."""
    x = _check(inputs)
    patients = inputs.rows["patient_id"].astype(str).to_numpy()
    folds = inputs.rows["fold"].to_numpy(dtype=np.int64)
    ks = tuple(sorted(inputs.task.spec.retrieval.k))
    _, patient_code, counts = np.unique(patients, return_inverse=True, return_counts=True)
    everyone = np.arange(len(x))
    per_fold: dict[str, list] = {}
    chance, n_queries = [], []
    for fold in inputs.eval_folds:
        queries = np.flatnonzero((folds == fold) & (counts[patient_code] >= 2))
        if len(queries) == 0:
            for name in ("ap", *(f"recall_at_{k}" for k in ks)):
                per_fold.setdefault(name, []).append(None)
            chance.append(None)
            n_queries.append(0)
            continue
        similarity = x[queries] @ x.T
        similarity[np.arange(len(queries)), queries] = -np.inf  # the query itself is not in its gallery
        order = rankings(similarity)[:, :-1]  # drop the query, ranked last
        relevant = patient_code[everyone][order] == patient_code[queries][:, None]
        values = query_metrics(relevant, ks, NDCG_K)
        for name in ("ap", *(f"recall_at_{k}" for k in ks)):
            per_fold.setdefault(name, []).append(float(np.nanmean(values[name])))
        chance.append(float(np.mean((counts[patient_code[queries]] - 1) / (len(x) - 1))))
        n_queries.append(len(queries))
    confidence = inputs.task.spec.metrics.confidence
    metrics = {"map": fold_metric(per_fold["ap"], confidence),
               **{f"recall_at_{k}": fold_metric(per_fold[f"recall_at_{k}"], confidence) for k in ks}}
    usable = [c for c in chance if c is not None]
    details = {"relevant": "same patient", "gallery": "every other image of the manifest",
               "folds": list(inputs.eval_folds), "queries_per_fold": n_queries,
               "chance_recall_at_1": float(np.mean(usable)) if usable else None, "chance_recall_at_1_per_fold": chance,
               "patients": len(counts), "images_per_patient": {str(k): int(v) for k, v in
                                                                    zip(*np.unique(counts, return_counts=True))},
               "privacy": "high is a privacy risk: the embedding identifies the patient"}
    return Scores(metrics, details)


RETRIEVAL = TaskType(
    name="retrieval",
    title="Image-to-image retrieval",
    measures=("Whether similar embeddings mean the same finding: each held-out image queries the other folds' images by "
              "cosine similarity; precision@k, mAP and nDCG@10 with the same label as relevant (MedImageInsight's "
              "kNN search, MIEB's retrieval), 95% CI over the folds."),
    floor="Chance: a random ranking's precision is the share of same-label images in the gallery (details).",
    sampling="binary", metrics=("map", f"ndcg_at_{NDCG_K}"), score=score_by_label, reads_metadata_floor=False)

REIDENTIFICATION = TaskType(
    name="reidentification",
    title="Same-patient retrieval (re-identification)",
    measures=("Whether an embedding identifies the patient: given one image of a patient, are the patient's other "
              "images ranked first among every image of the sample? recall@k and mAP, 95% CI over the folds. High is "
              "a privacy risk, not a merit: shared embeddings could be linked back to a person."),
    floor="Chance: a random ranking's recall@1 is the share of the patient's other images in the gallery (details).",
    sampling="patients", metrics=("map",), score=score_same_patient, higher_is="a privacy risk",
    reads_metadata_floor=False)
