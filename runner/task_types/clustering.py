"""Clustering the MIEB way: k-means with k = the number of classes, scored against the classes.

The classes are the task's label (positive / negative: k = 2) or, with a `target`, the attribute's classes (sex, view,
age band). On each evaluated fold's images, scikit-learn KMeans (k = the number of classes of the task, `clusters.n_init`
restarts, `clusters.seed`) on L2-normalised embeddings, so Euclidean k-means follows cosine similarity; V-measure,
normalised mutual information and the adjusted Rand index (scikit-learn), and cluster accuracy: the share of images in
the cluster-to-class matching that maximises it (the Hungarian algorithm, scipy linear_sum_assignment). Mean and 95% CI
over the folds. Beside runner/analysis/clustering.py, which chooses k by silhouette (the paper's analysis): here k is
given and the question is whether the clusters are the classes.
"""

from __future__ import annotations

import numpy as np

from runner.metrics.summary import fold_metric
from runner.task_types import ScoreInputs, Scores, TaskType, TaskTypeError, l2_normalized
from runner.task_types.targets import class_names


def cluster_accuracy(classes: np.ndarray, clusters: np.ndarray) -> float:
    """The share of items in the one-to-one cluster -> class matching that maximises it (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    class_ids, class_of = np.unique(classes, return_inverse=True)
    cluster_ids, cluster_of = np.unique(clusters, return_inverse=True)
    table = np.zeros((len(cluster_ids), len(class_ids)), dtype=np.int64)
    np.add.at(table, (cluster_of, class_of), 1)
    rows, columns = linear_sum_assignment(-table)
    return float(table[rows, columns].sum() / len(classes))


def score(inputs: ScoreInputs) -> Scores:
    """V-measure, NMI, ARI and cluster accuracy per fold (see the module docstring)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, v_measure_score

    spec = inputs.task.spec
    if not inputs.reads_pixels:
        raise TaskTypeError(f"{inputs.task.id}: k-means clusters embeddings; the metadata baseline's features are not "
                            "an embedding (its floor here is chance)")
    x = l2_normalized(inputs.embeddings)
    labels = inputs.rows["label"].to_numpy(dtype=np.int64)
    folds = inputs.rows["fold"].to_numpy(dtype=np.int64)
    names = class_names(inputs.task, inputs.rows) if spec.target is not None else ["negative", "positive"]
    k = len(names)
    per_fold: dict[str, list] = {"v_measure": [], "nmi": [], "ari": [], "accuracy": []}
    majority = []
    for fold in inputs.eval_folds:
        rows = np.flatnonzero(folds == fold)
        if len(rows) < k:
            raise TaskTypeError(f"{inputs.task.id}: fold {fold} has {len(rows)} images for k = {k} clusters")
        clusters = KMeans(n_clusters=k, n_init=spec.clusters.n_init, random_state=spec.clusters.seed).fit_predict(x[rows])
        y = labels[rows]
        per_fold["v_measure"].append(float(v_measure_score(y, clusters)))
        per_fold["nmi"].append(float(normalized_mutual_info_score(y, clusters)))
        per_fold["ari"].append(float(adjusted_rand_score(y, clusters)))
        per_fold["accuracy"].append(cluster_accuracy(y, clusters))
        majority.append(float(np.bincount(y).max() / len(y)))
    confidence = spec.metrics.confidence
    metrics = {name: fold_metric(values, confidence, low=-1.0 if name == "ari" else 0.0)
               for name, values in per_fold.items()}
    details = {"k": k, "classes": names, "folds": list(inputs.eval_folds),
               "class_counts": {name: int((labels == i).sum()) for i, name in enumerate(names)},
               "chance_accuracy": float(np.mean(majority)), "chance_accuracy_per_fold": majority,
               "kmeans": {"n_init": spec.clusters.n_init, "seed": spec.clusters.seed, "space": "L2-normalised"}}
    return Scores(metrics, details)


CLUSTERING = TaskType(
    name="clustering",
    title="Clustering (k = number of classes)",
    measures=("Whether the embedding's own structure separates the classes, with no training: k-means with k = the "
              "number of classes on each fold's images, scored by V-measure, NMI, ARI and cluster accuracy (MIEB's "
              "clustering), 95% CI over the folds."),
    floor="Chance: V-measure, NMI and ARI near 0; cluster accuracy the majority class share (details).",
    sampling="binary", metrics=("v_measure", "nmi", "ari", "accuracy"), score=score, reads_metadata_floor=False)
