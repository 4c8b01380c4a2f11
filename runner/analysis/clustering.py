"""Unsupervised structure of an embedding space (paper §2.4, Figure 1).

Entries:
* `umap_figure(embeddings, labels, png_path, svg_path, ...)`: seeded 2-D UMAP (umap-learn, n_jobs=1 so the layout is
  reproducible) and a scatter with negatives (0) and positives (1) coloured, saved as PNG and SVG.
* `kmeans_cosine(embeddings, labels, k_values, n_init=50, seed=0)`: k-means with cosine distance (rows are
  L2-normalised, so Euclidean k-means on the unit sphere ranks like cosine), k chosen by the largest mean silhouette
  coefficient (metric="cosine"); reports silhouette per k, the chosen k, and ARI / NMI of its clusters with the labels.

Cost measured on the 2-core CPU dev machine shared with other jobs (load average ~7, so upper bounds):
UMAP on 500 x 256: 24 s on the first call of a process (numba compiles), 2 s after. k-means with silhouettes on
500 x 256: n_init=10, k = 2..6: 5 s; n_init=50, k = 2..10 (the paper's setting): 58 s. k-means grows about linearly
in N x D x n_init: the paper's 2,000 x 1,024 with n_init=50, k = 2..10 took 100 s (UMAP 23.5 s first call, 10 s
after); lower n_init or k_max in the card for quick runs (docs/analyses.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runner.metrics import MetricsInputError
from runner.plots import plot_umap


def _import_umap():
    """umap-learn, without its optional ParametricUMAP.

    umap/__init__ imports TensorFlow for ParametricUMAP when it is installed (the `tf` extra); that import chain
    goes on to torch._dynamo -> triton, and triton imported after TensorFlow 2.21 segfaults the process.
    Marking the submodule absent makes umap take its own "TensorFlow not installed" path; plain UMAP is unaffected.
    """
    import sys

    if "umap" not in sys.modules:
        sys.modules.setdefault("umap.parametric_umap", None)
    import umap

    return umap


def _check_embeddings(embeddings, labels=None) -> np.ndarray:
    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 3:
        raise MetricsInputError(f"embeddings must be (N, D) with N >= 3, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise MetricsInputError("embeddings contain NaN or Infinity")
    if labels is not None and len(labels) != x.shape[0]:
        raise MetricsInputError(f"{len(labels)} labels for {x.shape[0]} embeddings")
    return x


def umap_figure(
    embeddings,
    labels,
    png_path: str | Path,
    svg_path: str | Path | None = None,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    title: str | None = None,
) -> dict:
    """Seeded 2-D UMAP of the embeddings, scatter coloured by label, saved to PNG (and SVG).

    Returns the figure file names (relative to png_path's folder), the UMAP parameters, and the 2-D coordinates
    (4 decimals) with their labels, so that a result file can be drawn again without its run folder (the site does).
    """
    umap = _import_umap()
    x = _check_embeddings(embeddings, labels)
    labels = np.asarray(labels).astype(int)
    n_neighbors = min(n_neighbors, x.shape[0] - 1)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                        random_state=seed, n_jobs=1)
    xy = np.round(reducer.fit_transform(x).astype(float), 4)
    paths = plot_umap(xy, labels, png_path, svg_path, title)
    return {"figure": {k: Path(v).name for k, v in paths.items()},
            "umap": {"n_neighbors": n_neighbors, "min_dist": min_dist, "metric": "cosine", "random_state": seed,
                     "n_jobs": 1},
            "coordinates": {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(), "label": labels.tolist()}}


def kmeans_cosine(
    embeddings,
    labels=None,
    k_values: Sequence[int] = range(2, 11),
    n_init: int = 50,
    seed: int = 0,
) -> dict:
    """Cosine k-means over k_values; k chosen by the mean silhouette (cosine); ARI/NMI of the chosen clustering."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
    from sklearn.preprocessing import normalize

    x = _check_embeddings(embeddings, labels)
    if (np.linalg.norm(x, axis=1) == 0).any():
        raise MetricsInputError("an embedding row is all zeros: its cosine distance is undefined")
    k_values = sorted({int(k) for k in k_values})
    if not k_values or k_values[0] < 2 or k_values[-1] >= x.shape[0]:
        raise MetricsInputError(f"k values must lie in [2, N-1] = [2, {x.shape[0] - 1}], got {k_values}")
    unit = normalize(x)
    silhouettes, assignments = {}, {}
    for k in k_values:
        assignment = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(unit)
        assignments[k] = assignment
        # a degenerate fit (fewer distinct clusters than k, e.g. duplicate rows) has no silhouette
        silhouettes[k] = (float(silhouette_score(unit, assignment, metric="cosine"))
                          if len(np.unique(assignment)) > 1 else None)
    scored = {k: s for k, s in silhouettes.items() if s is not None}
    if not scored:
        return {"chosen_k": None, "reason": "no k gave two or more distinct clusters",
                "silhouette": {str(k): s for k, s in silhouettes.items()}}
    chosen = max(scored, key=lambda k: (scored[k], -k))  # ties: the smaller k
    out = {
        "distance": "cosine (L2-normalised rows)",
        "n_init": n_init,
        "seed": seed,
        "silhouette": {str(k): s for k, s in silhouettes.items()},
        "chosen_k": chosen,
        "cluster_sizes": np.bincount(assignments[chosen]).tolist(),
    }
    if labels is not None:
        labels = np.asarray(labels)
        out["ari"] = float(adjusted_rand_score(labels, assignments[chosen]))
        out["nmi"] = float(normalized_mutual_info_score(labels, assignments[chosen]))
    return out
