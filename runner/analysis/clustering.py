"""Unsupervised structure of an embedding space (paper §2.4, Figure 1).

Entries:
* `umap_figure(embeddings, labels, png_path, svg_path, ...)`: seeded 2-D UMAP (umap-learn, n_jobs=1 so the layout is
  reproducible) and a scatter with negatives (0) and positives (1) coloured, saved as PNG and SVG.
* `kmeans_cosine(embeddings, labels, k_values, n_init=50, seed=0)`: k-means with cosine distance (rows are
  L2-normalised, so Euclidean k-means on the unit sphere ranks like cosine), k chosen by the largest mean silhouette
  coefficient (metric="cosine"); reports silhouette per k, the chosen k, and ARI / NMI of its clusters with the labels.

The k-means is the project's own batched one (runner/analysis/kmeans.py), no longer scikit-learn's `KMeans`: the
n_init restarts of one k run side by side, so each Lloyd iteration is one matrix product of the rows with every
restart's centres (and one, over the rows that moved, to update the centres), float32; the k-means++ seeding is
vectorised over the restarts and reads its distances from the cosine distance matrix. scikit-learn ran the restarts
one after another, each iteration a small (N x k) distance block: for the paper's setting (2,000 x 1,024, n_init 50,
k = 2..10) 19-29 CPU-s of the analysis, against 4-7 CPU-s now. scikit-learn's KMeans stays the reference in
tests/test_analysis_kmeans.py: the same chosen k, silhouettes equal where the partitions agree, ARI against it within
scikit-learn's own seed-to-seed spread. The random numbers differ from scikit-learn's (numpy's Generator, seeded with
(seed, k)), so on data without clear clusters the partitions differ as much as two scikit-learn seeds would.
The result block (silhouette per k, chosen k, cluster sizes, ARI / NMI with the labels) is unchanged.

Speed (benchmarks/bench_analyses.py prints before/after on one task): for N <= EXACT_MAX_ROWS the cosine distance
matrix is computed once (one float32 matrix product, kept in float64) and shared by the k-means++ seeding, every
silhouette (all k in one product with the stacked one-hot cluster matrices) and UMAP (`metric="precomputed"`;
umap-learn would otherwise compute the same exact matrix for N < 4096 through a Python callback per pair); above it,
the silhouettes make the matrix block by block. UMAP's numba functions are cached on disk (`_import_umap`), under
the project's cache folder, so only the first run on a machine compiles them (~7 CPU-s for a fit on precomputed
distances, since pynndescent is left out and umap-learn's parallel k-NN sort is numpy's (`nearest_indices`); it was
~26 CPU-s; the progress output says so before such a fit).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from runner.analysis import need
from runner.analysis.kmeans import kmeans_restarts, silhouette_scores
from runner.embed.cache import numba_cache_dir
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
    2-core machine compiling them again. `enable_caching()` gives them numba's on-disk cache, which numba invalidates
    itself when the source or numba changes; the compiled code is the same, so layouts are identical with and without
    the cache. The cache lives in the project's cache folder (runner.embed.cache.numba_cache_dir) unless
    $NUMBA_CACHE_DIR is set: numba's default is beside umap's sources, inside the virtual environment.
    pynndescent, which compiles at import, is imported only when a fit uses it (`_pynndescent_on_first_use`).
    """

    _use_project_numba_cache()
    if "umap" not in sys.modules:
        sys.modules.setdefault("umap.parametric_umap", None)
        with _pynndescent_on_first_use():
            import umap
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
        umap.umap_.fast_knn_indices = nearest_indices
        umap._cxr_numba_cache = True
    return umap


# What umap.umap_ imports from pynndescent at module level: {pynndescent module: (its name, umap.umap_'s name)}.
PYNNDESCENT_NAMES = {"pynndescent": ("NNDescent", "NNDescent"),
                     "pynndescent.distances": ("named_distances", "pynn_named_distances"),
                     "pynndescent.sparse": ("sparse_named_distances", "pynn_sparse_named_distances")}


@contextlib.contextmanager
def _pynndescent_on_first_use():
    """umap-learn imported with pynndescent's three names standing in until one of them is first used.

    pynndescent (approximate nearest neighbours) compiles ~60 numba functions as it is imported: ~13 CPU-s of the
    2-core machine with an empty numba cache, ~0.3 s with a full one. A fit on a precomputed distance matrix (every
    fit here up to EXACT_MAX_ROWS rows) never uses it; a fit with metric="cosine" does, and its first use of a
    stand-in imports pynndescent and puts the real names into umap.umap_ (`_PynndescentName`). The stand-ins leave
    sys.modules when umap is imported, so any other `import pynndescent` gets the real package."""
    if "pynndescent" in sys.modules:
        yield
        return
    import types

    placed = {}
    for module_name, (name, _) in PYNNDESCENT_NAMES.items():
        module = placed[module_name] = types.ModuleType(module_name)
        setattr(module, name, _PynndescentName(module_name))
        sys.modules[module_name] = module
    placed["pynndescent"].__path__ = []  # a package, so that its submodules' names resolve to the stand-ins
    try:
        yield
    finally:
        for module_name, module in placed.items():
            if sys.modules.get(module_name) is module:
                del sys.modules[module_name]


class _PynndescentName:
    """umap.umap_'s stand-in for one pynndescent name: its first use imports pynndescent, replaces every stand-in in
    umap.umap_ by the real object, and forwards the use (a call, `isinstance`, `in`, `[]`, an attribute)."""

    def __init__(self, module_name: str):
        self.module_name = module_name

    def real(self):
        import importlib

        umap_ = sys.modules["umap.umap_"]
        for module_name, (name, umap_name) in PYNNDESCENT_NAMES.items():
            if isinstance(vars(umap_).get(umap_name), _PynndescentName):
                setattr(umap_, umap_name, getattr(importlib.import_module(module_name), name))
        name, _ = PYNNDESCENT_NAMES[self.module_name]
        return getattr(importlib.import_module(self.module_name), name)

    def __call__(self, *args, **kwargs):
        return self.real()(*args, **kwargs)

    def __instancecheck__(self, instance) -> bool:
        return isinstance(instance, self.real())

    def __contains__(self, key) -> bool:
        return key in self.real()

    def __getitem__(self, key):
        return self.real()[key]

    def __iter__(self):
        return iter(self.real())

    def __len__(self) -> int:
        return len(self.real())

    def __getattr__(self, attribute):
        return getattr(self.real(), attribute)


def _use_project_numba_cache() -> None:
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = str(numba_cache_dir())  # numba reads it when it is imported
        if "numba" in sys.modules:  # imported already: its settings were read then
            sys.modules["numba"].core.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]


def umap_will_compile() -> bool:
    """Whether UMAP's first import and fit in this process compile numba code (umap-learn's and pynndescent's):
    numba's cache holds no entry for umap's functions yet (a new machine, cache folder, umap-learn or numba)."""
    import importlib.util

    if "umap" in sys.modules and getattr(sys.modules["umap"], "_cxr_fitted", False):
        return False  # compiled in this process already
    spec = importlib.util.find_spec("umap")
    if spec is None or spec.origin is None:
        return False  # not installed: the import will say so
    _use_project_numba_cache()
    try:
        from numba.core.caching import UserProvidedCacheLocator

        subdir = UserProvidedCacheLocator.get_suitable_cache_subpath(str(Path(spec.origin).parent / "umap_.py"))
    except (ImportError, AttributeError):  # numba's internals moved: any umap entries will do
        subdir = "umap_*"
    return not any(numba_cache_dir().glob(f"{subdir}/umap_.*.nbi"))


def _compile_lock():
    """A lock on the numba cache folder for a fit that compiles: processes that start at once on a cold cache (test
    workers, runs side by side) compile umap-learn one after the other, so the second loads what the first compiled
    instead of compiling it too. No lock where the folder cannot be made (the fit still runs)."""
    folder = numba_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return contextlib.nullcontext()
    return FileLock(str(folder / ".compile.lock"))


def nearest_indices(distances: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Each row's n_neighbors smallest distances' columns, nearest first, ties in column order (int32).

    What umap-learn's `fast_knn_indices` returns for a precomputed distance matrix (a stable argsort of each row), in
    numpy: umap-learn's is a numba function compiled with parallel=True, ~4 CPU-s to compile in every new numba
    cache; a stable sort orders the same values the same way, so the neighbours, and the layout, are the same."""
    return np.argsort(distances, axis=1, kind="stable")[:, :n_neighbors].astype(np.int32)


def cosine_distance_matrix(unit: np.ndarray) -> np.ndarray:
    """Exact cosine distances of L2-normalised rows: 1 - cos, float64, zero diagonal, never negative."""
    unit32 = np.ascontiguousarray(unit, dtype=np.float32)
    distances = 1.0 - (unit32 @ unit32.T).astype(np.float64)
    np.clip(distances, 0.0, 2.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (an all-zero row has no direction: an error)."""
    x = np.asarray(x, dtype=float)
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise MetricsInputError("an embedding row is all zeros: its cosine distance is undefined")
    return x / norms[:, None]


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
    draw: bool = True,
) -> dict:
    """Seeded 2-D UMAP of the embeddings, scatter coloured by label, saved to PNG (and SVG).

    Returns the figure file names (relative to png_path's folder), the UMAP parameters, and the 2-D coordinates
    (4 decimals) with their labels, so that a result file can be drawn again without its run folder (the site does).
    `distances`: the rows' cosine distance matrix when the caller has it (`cosine_distance_matrix`).
    `draw`: False gives the same block without drawing the figure (a caller that throws the files away).
    """
    import warnings

    compiles = umap_will_compile()
    if compiles:
        print(f"UMAP: the first fit with this cache folder compiles umap-learn's numba code (seconds to a "
              f"minute, once); later runs reuse it from {numba_cache_dir()}", file=sys.stderr, flush=True)
    x = _check_embeddings(embeddings, labels)
    labels = np.asarray(labels).astype(int)
    n_neighbors = min(n_neighbors, x.shape[0] - 1)
    if distances is None and x.shape[0] <= EXACT_MAX_ROWS and (np.linalg.norm(x, axis=1) > 0).all():
        distances = cosine_distance_matrix(unit_rows(x))
    metric = "cosine" if distances is None else "precomputed"
    with _compile_lock() if compiles else contextlib.nullcontext():
        umap = _import_umap()
        umap._cxr_fitted = True
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                            random_state=seed, n_jobs=1)
        with warnings.catch_warnings():  # "inverse_transform will be unavailable": never used here
            warnings.filterwarnings("ignore", message="using precomputed metric", category=UserWarning)
            xy = np.round(reducer.fit_transform(x if distances is None else distances).astype(float), 4)
    paths = (plot_umap(xy, labels, png_path, svg_path, title) if draw else
             {key: str(path) for key, path in (("png", png_path), ("svg", svg_path)) if path is not None})
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
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    x = _check_embeddings(embeddings, labels)
    unit = unit_rows(x)
    k_values = sorted({int(k) for k in k_values})
    if not k_values or k_values[0] < 2 or k_values[-1] >= x.shape[0]:
        raise MetricsInputError(f"k values must lie in [2, N-1] = [2, {x.shape[0] - 1}], got {k_values}")
    if distances is None and x.shape[0] <= EXACT_MAX_ROWS:
        distances = cosine_distance_matrix(unit)
    assignments = kmeans_fits(unit, k_values, n_init, seed, distances)
    # a degenerate fit (fewer distinct clusters than k, e.g. duplicate rows) has no silhouette: None
    silhouettes = silhouette_scores(assignments, distances=distances, unit=unit)
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


def kmeans_fits(unit: np.ndarray, k_values: Sequence[int], n_init: int, seed: int,
                distances: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """{k: cluster of each row}: the best of n_init restarts of each k (runner.analysis.kmeans.kmeans_restarts)."""
    return {k: kmeans_restarts(unit, k, n_init, seed, distances).labels for k in k_values}


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
                                  distances=distances, draw=ctx.draw_figures)
    return out
