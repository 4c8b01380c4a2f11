"""Unsupervised structure of an embedding space (paper §2.4, Figure 1).

Entries:
* `umap_figure(embeddings, labels, png_path, svg_path, ...)`: seeded 2-D UMAP (umap-learn, n_jobs=1 so the layout is
  reproducible) and a scatter with negatives (0) and positives (1) coloured, saved as PNG and SVG.
* `kmeans_cosine(embeddings, labels, k_values, n_init=50, seed=0)`: k-means with cosine distance (rows are
  L2-normalised, so Euclidean k-means on the unit sphere ranks like cosine), k chosen by the largest mean silhouette
  coefficient (metric="cosine"); reports silhouette per k, the chosen k, and ARI / NMI of its clusters with the labels.

Speed (benchmarks/bench_analyses.py prints before/after on one task): for N <= EXACT_MAX_ROWS the cosine distance
matrix is computed once (one float32 matrix product, kept in float64) and shared by every silhouette and by UMAP
(`metric="precomputed"`; umap-learn would otherwise compute the same exact matrix for N < 4096 through a Python
callback per pair); k-means fits run in float32, one thread per fit, the k values spread over the cores; UMAP's
numba functions are cached on disk (`_import_umap`), so only the first run on a machine compiles them.
Earlier cost on the 2-core CPU dev machine (load ~7): 2,000 x 1,024 with n_init=50, k = 2..10 took 100 s
(UMAP 23.5 s first call, 10 s after).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runner.analysis import need
from runner.metrics.scores import MetricsInputError
from runner.results.figures import plot_umap

if TYPE_CHECKING:
    from runner.analysis import AnalysisContext

# up to this many rows the exact N x N cosine distance matrix is computed once and shared (32 MB at 2,000 rows);
# umap-learn also switches from exact distances to approximate neighbours at 4,096 rows
EXACT_MAX_ROWS = 4096


def _import_umap():
    """umap-learn, without its optional ParametricUMAP, with its numba functions cached on disk.

    umap/__init__ imports TensorFlow for ParametricUMAP when it is installed (the `tf` extra); that import chain
    goes on to torch._dynamo -> triton, and triton imported after TensorFlow 2.21 segfaults the process.
    Marking the submodule absent makes umap take its own "TensorFlow not installed" path; plain UMAP is unaffected.

    umap-learn compiles most of its numba functions without `cache=True`: every new process spent 10-25 s of the
    2-core machine compiling them again. `enable_caching()` gives them numba's on-disk cache (next to the module, or
    under $NUMBA_CACHE_DIR), which numba invalidates itself when the source or numba changes; the compiled code is
    the same, so layouts are identical with and without the cache.
    """
    import contextlib
    import sys

    if "umap" not in sys.modules:
        sys.modules.setdefault("umap.parametric_umap", None)
    import umap

    if not getattr(umap, "_cxr_numba_cache", False):
        from numba.core.registry import CPUDispatcher

        for name, module in list(sys.modules.items()):
            if module is None or not name.startswith("umap"):
                continue
            for value in list(vars(module).values()):
                if isinstance(value, CPUDispatcher):
                    with contextlib.suppress(RuntimeError):  # a function numba cannot cache compiles as before
                        value.enable_caching()
        umap._cxr_numba_cache = True
    return umap


def cosine_distance_matrix(unit: np.ndarray) -> np.ndarray:
    """Exact cosine distances of L2-normalised rows: 1 - cos, float64, zero diagonal, never negative."""
    unit32 = np.ascontiguousarray(unit, dtype=np.float32)
    distances = 1.0 - (unit32 @ unit32.T).astype(np.float64)
    np.clip(distances, 0.0, 2.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances


def unit_rows(x: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import normalize

    if (np.linalg.norm(x, axis=1) == 0).any():
        raise MetricsInputError("an embedding row is all zeros: its cosine distance is undefined")
    return normalize(x)


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
    distances: np.ndarray | None = None,
) -> dict:
    """Seeded 2-D UMAP of the embeddings, scatter coloured by label, saved to PNG (and SVG).

    Returns the figure file names (relative to png_path's folder), the UMAP parameters, and the 2-D coordinates
    (4 decimals) with their labels, so that a result file can be drawn again without its run folder (the site does).
    `distances`: the rows' cosine distance matrix when the caller has it (`cosine_distance_matrix`).
    """
    import warnings

    umap = _import_umap()
    x = _check_embeddings(embeddings, labels)
    labels = np.asarray(labels).astype(int)
    n_neighbors = min(n_neighbors, x.shape[0] - 1)
    if distances is None and x.shape[0] <= EXACT_MAX_ROWS and (np.linalg.norm(x, axis=1) > 0).all():
        distances = cosine_distance_matrix(unit_rows(x))
    metric = "cosine" if distances is None else "precomputed"
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                        random_state=seed, n_jobs=1)
    with warnings.catch_warnings():  # "inverse_transform will be unavailable": never used here
        warnings.filterwarnings("ignore", message="using precomputed metric", category=UserWarning)
        xy = np.round(reducer.fit_transform(x if distances is None else distances).astype(float), 4)
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
    distances: np.ndarray | None = None,
) -> dict:
    """Cosine k-means over k_values; k chosen by the mean silhouette (cosine); ARI/NMI of the chosen clustering.

    `distances`: the rows' cosine distance matrix when the caller has it (`cosine_distance_matrix`)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

    x = _check_embeddings(embeddings, labels)
    unit = unit_rows(x)
    k_values = sorted({int(k) for k in k_values})
    if not k_values or k_values[0] < 2 or k_values[-1] >= x.shape[0]:
        raise MetricsInputError(f"k values must lie in [2, N-1] = [2, {x.shape[0] - 1}], got {k_values}")
    if distances is None and x.shape[0] <= EXACT_MAX_ROWS:
        distances = cosine_distance_matrix(unit)
    assignments = kmeans_fits(unit, k_values, n_init, seed)
    silhouettes = {}
    for k in k_values:
        # a degenerate fit (fewer distinct clusters than k, e.g. duplicate rows) has no silhouette
        if len(np.unique(assignments[k])) < 2:
            silhouettes[k] = None
        elif distances is not None:
            silhouettes[k] = float(silhouette_score(distances, assignments[k], metric="precomputed"))
        else:
            silhouettes[k] = float(silhouette_score(unit, assignments[k], metric="cosine"))
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


def kmeans_fits(unit: np.ndarray, k_values: Sequence[int], n_init: int, seed: int) -> dict[int, np.ndarray]:
    """{k: cluster of each row}: scikit-learn KMeans (n_init restarts, random_state=seed) on float32 unit rows.

    Each fit runs on one thread and the k values are spread over the cores (Python threads: KMeans releases the GIL),
    which on the 2-core machine beat one fit at a time on two OpenMP threads; float32 halves the memory traffic.
    The fits are independent, so the result does not depend on the number of threads.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    data = np.ascontiguousarray(unit, dtype=np.float32)

    def fit(k: int) -> np.ndarray:
        # OpenMP's thread count is a per-thread setting, so each fit limits its own thread to one
        with threadpool_limits(limits=1, user_api="openmp"):
            return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(data)

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    # largest k first: the longest fits start early, so the cores finish together
    order = sorted(k_values, reverse=True)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(1, min(cores, len(order)))) as pool:
        fitted = dict(zip(order, pool.map(fit, order)))
    return {k: fitted[k] for k in k_values}


def run(ctx: AnalysisContext, params) -> dict:
    """The clustering block of a run's result: k-means over the card's k range and the UMAP figure."""
    x = need(ctx.embeddings, "embeddings")
    labels = need(ctx.manifest, "the manifest")["label"].to_numpy()
    # one exact cosine distance matrix for every silhouette and the UMAP layout
    distances = cosine_distance_matrix(unit_rows(np.asarray(x, dtype=float))) if len(x) <= EXACT_MAX_ROWS else None
    out = {"kmeans": kmeans_cosine(x, labels, range(params.k_min, params.k_max + 1), n_init=params.n_init,
                                   seed=params.seed, distances=distances)}
    if params.umap.enabled and ctx.output_dir is not None:
        out["umap"] = umap_figure(x, labels, Path(ctx.output_dir) / "umap.png", Path(ctx.output_dir) / "umap.svg",
                                  seed=params.seed, n_neighbors=params.umap.n_neighbors, min_dist=params.umap.min_dist,
                                  distances=distances)
    return out
