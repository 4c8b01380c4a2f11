"""Batched Euclidean k-means of L2-normalised rows (cosine k-means) and silhouettes from one distance matrix.

Entries:
* `kmeans_restarts(unit, k, n_init, seed, distances=None) -> KMeansFit`: the best of `n_init` k-means++ seeded Lloyd
  runs (lowest inertia).
* `lloyd(unit, initial)`: Lloyd's iterations from given centres, scikit-learn's `KMeans(algorithm="lloyd")` step for
  step (stopping rule, empty clusters), with every restart in the same matrix products: per iteration one GEMM of the
  rows against all restarts' centres for the assignment, and one of the rows that changed cluster with a +1/-1 matrix
  to update the cluster sums, float32 (sums kept in float64). Restarts that have stopped leave the batch.
* `kmeans_plusplus(unit, k, n_init, rng, distances=None)`: greedy k-means++ seeding (2 + log k candidates a step, the
  one that lowers the potential most kept, as scikit-learn's `_kmeans_plusplus`), all restarts at once; candidate
  distances are rows of the cosine distance matrix when the caller has one (squared Euclidean = 2 x cosine distance on
  the unit sphere), one GEMM a step otherwise.
* `silhouette_scores(labelings, distances=None, unit=None) -> {key: float | None}`: the mean silhouette coefficient
  (cosine) of several labelings from one pass over the distances: one product of the N x N matrix (or row blocks of it
  made from `unit`) with the stacked one-hot matrices of all labelings.

Why not scikit-learn's KMeans (still the reference in tests/test_analysis_kmeans.py): it runs restarts one after
another, each iteration a (N x k) distance block, which for the paper's setting (n_init 50, k = 2..10, 2000 x 1024)
cost 19-29 CPU-s on the 2-core machine; batching the restarts turns the work into a few large matrix products.
The random numbers differ from scikit-learn's (numpy's Generator, seeded per k), so partitions agree with
scikit-learn's only as well as scikit-learn's own agree across seeds; the tests check exactly that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

MAX_ITER = 300  # scikit-learn's defaults
TOL = 1e-4
BLOCK_ELEMENTS = 1 << 22  # rows per block so that a (rows x columns) float32 block stays ~16 MB


@dataclass(frozen=True)
class KMeansFit:
    """The best restart of one k: each row's cluster, its inertia, Lloyd iterations of every restart."""

    labels: np.ndarray  # (N,) int
    inertia: float
    n_iter: np.ndarray  # (n_init,)


def _row_blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = max(1, BLOCK_ELEMENTS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _squared_distances_to(unit: np.ndarray, rows: np.ndarray, distances: np.ndarray | None) -> np.ndarray:
    """(len(rows), N) squared Euclidean distances of the unit rows `rows` to every row: 2 x cosine distance."""
    if distances is not None:
        return 2.0 * distances[rows]
    out = 2.0 - 2.0 * (unit[rows] @ unit.T).astype(np.float64)
    np.maximum(out, 0.0, out=out)
    return out


def kmeans_plusplus(unit: np.ndarray, k: int, n_init: int, rng: np.random.Generator,
                    distances: np.ndarray | None = None) -> np.ndarray:
    """(n_init, k) row indices of the initial centres of each restart (greedy k-means++)."""
    n = unit.shape[0]
    trials = 2 + int(np.log(k))
    every = np.arange(n_init)
    chosen = [rng.integers(n, size=n_init)]
    closest = _squared_distances_to(unit, chosen[0], distances)  # (R, N)
    for _ in range(1, k):
        cumulative = np.cumsum(closest, axis=1)
        draws = rng.uniform(size=(n_init, trials)) * cumulative[:, -1:]
        # searchsorted(cumulative[r], draws[r]) for every restart at once: how many cumulative sums lie below
        candidates = np.minimum((cumulative[:, None, :] < draws[:, :, None]).sum(axis=2), n - 1)  # (R, trials)
        to_candidates = _squared_distances_to(unit, candidates.ravel(), distances).reshape(n_init, trials, n)
        np.minimum(to_candidates, closest[:, None, :], out=to_candidates)
        best = to_candidates.sum(axis=2).argmin(axis=1)
        closest = to_candidates[every, best]
        chosen.append(candidates[every, best])
    return np.stack(chosen, axis=1)


def _assign(rows1: np.ndarray, centers: np.ndarray, distances: bool = False
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Nearest centre of every row for every restart: (labels (R, N), with `distances` the squared distance to it
    (R, N) float32). `rows1`: the unit rows with a column of ones appended.

    ||x - c||^2 = 1 + 2 (||c||^2 / 2 - x.c) for unit rows: the bracket for all restarts' centres comes from one GEMM
    per block of rows (the column of ones adds ||c||^2 / 2)."""
    n_restarts, k, dim = centers.shape
    flat = centers.reshape(n_restarts * k, dim)
    weights = np.empty((dim + 1, n_restarts * k), dtype=np.float32)
    weights[:dim] = -flat.T
    weights[dim] = 0.5 * np.einsum("ij,ij->i", flat, flat)
    labels = np.empty((n_restarts, rows1.shape[0]), dtype=np.intp)
    nearest = np.empty((n_restarts, rows1.shape[0]), dtype=np.float32) if distances else None
    for rows in _row_blocks(rows1.shape[0], n_restarts * k):
        scores = (rows1[rows] @ weights).reshape(-1, n_restarts, k)
        best = scores.argmin(axis=2)  # (rows, R)
        labels[:, rows] = best.T
        if distances:
            nearest[:, rows] = np.take_along_axis(scores, best[:, :, None], axis=2)[:, :, 0].T * 2 + 1
    if distances:
        np.maximum(nearest, 0.0, out=nearest)
    return labels, nearest


def _moved_sums(unit: np.ndarray, labels: np.ndarray, new_labels: np.ndarray, k: int) -> np.ndarray:
    """(R, k, D) change of each cluster's sum of rows when the assignment goes from `labels` to `new_labels`
    (-1: no cluster yet): a (moved rows x R*k) matrix of +1 and -1 times those rows, one GEMM per block of rows.

    After the first iterations few rows move, so updating the sums costs far less than summing every row again."""
    n_restarts = new_labels.shape[0]
    moved = new_labels != labels
    rows = np.flatnonzero(moved.any(axis=0))
    offsets = (np.arange(n_restarts) * k)[:, None]
    out = np.zeros((n_restarts * k, unit.shape[1]), dtype=np.float64)
    for block in _row_blocks(len(rows), n_restarts * k):
        at = rows[block]
        weights = np.zeros((len(at), n_restarts * k), dtype=np.float32)
        restart, row = np.nonzero(moved[:, at])
        weights[row, offsets[restart, 0] + new_labels[restart, at[row]]] = 1.0
        had = labels[restart, at[row]] >= 0
        weights[row[had], offsets[restart[had], 0] + labels[restart[had], at[row[had]]]] = -1.0
        out += (unit[at].T @ weights).T  # this operand order: OpenBLAS ran it twice as fast as weights.T @ rows
    return out.reshape(n_restarts, k, -1)


def _relocate_empty(unit: np.ndarray, sums: np.ndarray, counts: np.ndarray, labels: np.ndarray,
                    nearest: np.ndarray) -> np.ndarray:
    """An empty cluster takes the row farthest from its centre, as scikit-learn does (in place, sums and counts);
    returns which restarts had one."""
    relocated = (counts == 0).any(axis=1)
    for r in np.flatnonzero(relocated):
        empty = np.flatnonzero(counts[r] == 0)
        far = np.argsort(nearest[r], kind="stable")[::-1][:len(empty)]
        for cluster, row in zip(empty, far, strict=True):
            old = labels[r, row]
            sums[r, old] -= unit[row]
            counts[r, old] -= 1
            sums[r, cluster] = unit[row]
            counts[r, cluster] = 1
    return relocated


def lloyd(unit: np.ndarray, initial: np.ndarray, max_iter: int = MAX_ITER, tol: float = TOL
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lloyd's k-means from each restart's initial centres (R, k, D), all restarts side by side:
    (labels (R, N), inertia (R,), iterations (R,)).

    Each restart stops as scikit-learn's does: when its assignment no longer changes, or when the squared shift of
    its centres falls to `tol` x the mean per-dimension variance of the rows; its rows are then assigned to its final
    centres once more (which is what the labels and the inertia are computed from)."""
    x = np.ascontiguousarray(unit, dtype=np.float32)
    x1 = np.hstack([x, np.ones((x.shape[0], 1), dtype=np.float32)])
    n_init, k, _ = initial.shape
    final = np.array(initial, dtype=np.float32)  # each restart's centres when it stopped
    threshold = tol * float(np.mean(np.var(x, axis=0, dtype=np.float64)))
    n_iter = np.zeros(n_init, dtype=int)
    # the restarts still running, compacted whenever some stop
    ids = np.arange(n_init)
    centers = final.copy()
    labels = np.full((n_init, x.shape[0]), -1, dtype=np.intp)
    sums = np.zeros((n_init, k, x.shape[1]))  # float64, kept up to date by the rows that move
    stale = np.ones(n_init, dtype=bool)  # sums that no longer match the labels: summed again from zero
    for _ in range(max_iter):
        new_labels, _ = _assign(x1, centers)
        sums[stale] = 0.0
        sums += _moved_sums(x, np.where(stale[:, None], -1, labels), new_labels, k)
        counts = np.stack([np.bincount(row, minlength=k) for row in new_labels]).astype(np.float64)
        live = sums
        stale[:] = False
        if (counts == 0).any():
            live = sums.copy()
            stale = _relocate_empty(x, live, counts, new_labels, _assign(x1, centers, distances=True)[1])
        new_centers = (live / counts[:, :, None]).astype(np.float32)
        shift = ((new_centers - centers) ** 2).sum(axis=(1, 2), dtype=np.float64)
        done = (new_labels == labels).all(axis=1) | (shift <= threshold)
        centers, labels = new_centers, new_labels
        n_iter[ids] += 1
        if done.any():
            final[ids[done]] = centers[done]
            going = ~done
            ids, centers, labels, sums, stale = ids[going], centers[going], labels[going], sums[going], stale[going]
            if ids.size == 0:
                break
    else:
        final[ids] = centers
    labels, nearest = _assign(x1, final, distances=True)
    return labels, nearest.sum(axis=1, dtype=np.float64), n_iter


def kmeans_restarts(unit: np.ndarray, k: int, n_init: int, seed: int, distances: np.ndarray | None = None,
                    max_iter: int = MAX_ITER, tol: float = TOL) -> KMeansFit:
    """The lowest-inertia of `n_init` k-means++ seeded Lloyd runs of k-means on L2-normalised rows, all run side by
    side. `distances`: the rows' cosine distance matrix, used for the seeding when given.
    The random numbers come from numpy's Generator seeded with (seed, k): one k's result does not depend on the
    others fitted beside it."""
    x = np.ascontiguousarray(unit, dtype=np.float32)
    seeds = kmeans_plusplus(x, k, n_init, np.random.default_rng([seed, k]), distances)
    labels, inertia, n_iter = lloyd(x, x[seeds], max_iter, tol)
    best = int(np.argmin(inertia))
    return KMeansFit(labels=labels[best], inertia=float(inertia[best]), n_iter=n_iter)


def _distance_blocks(distances: np.ndarray | None, unit: np.ndarray | None, n_cols: int
                     ) -> Iterator[tuple[slice, np.ndarray]]:
    """Row blocks of the cosine distance matrix: slices of `distances`, or made from `unit` block by block (the same
    arithmetic as runner.analysis.clustering.cosine_distance_matrix)."""
    if distances is not None:
        for rows in _row_blocks(distances.shape[0], max(n_cols, distances.shape[0])):
            yield rows, distances[rows]
        return
    unit32 = np.ascontiguousarray(unit, dtype=np.float32)
    n = unit32.shape[0]
    for rows in _row_blocks(n, n):
        block = 1.0 - (unit32[rows] @ unit32.T).astype(np.float64)
        np.clip(block, 0.0, 2.0, out=block)
        block[np.arange(rows.stop - rows.start), np.arange(rows.start, rows.stop)] = 0.0
        yield rows, block


def silhouette_scores(labelings: Mapping, distances: np.ndarray | None = None, unit: np.ndarray | None = None
                      ) -> dict:
    """Mean silhouette coefficient of each labeling (key -> (N,) cluster ids), None for one with fewer than two
    clusters; scikit-learn's `silhouette_score` definition (a row alone in its cluster scores 0).

    Needs the N x N cosine `distances`, or `unit` (L2-normalised rows) to make them block by block."""
    keys = list(labelings)
    codes, offsets, sizes, counts = [], [], [], []
    total = 0
    for key in keys:
        _, code = np.unique(np.asarray(labelings[key]), return_inverse=True)
        code = code.ravel()
        codes.append(code)
        offsets.append(total)
        sizes.append(int(code.max()) + 1)
        counts.append(np.bincount(code))
        total += sizes[-1]
    n = len(codes[0]) if codes else 0
    one_hot = np.zeros((n, total))
    for code, offset in zip(codes, offsets, strict=True):
        one_hot[np.arange(n), offset + code] = 1.0
    sums = np.empty((n, total))  # each row's summed distance to every cluster of every labeling
    for rows, block in _distance_blocks(distances, unit, total):
        sums[rows] = block @ one_hot
    out = {}
    for key, code, offset, size, count in zip(keys, codes, offsets, sizes, counts, strict=True):
        if size < 2:
            out[key] = None
            continue
        to_clusters = sums[:, offset:offset + size]
        own = count[code]
        with np.errstate(divide="ignore", invalid="ignore"):
            intra = to_clusters[np.arange(n), code] / (own - 1)
            mean_to = to_clusters / count
        mean_to[np.arange(n), code] = np.inf
        inter = mean_to.min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (inter - intra) / np.maximum(intra, inter)
        s = np.nan_to_num(np.where(own > 1, s, 0.0))
        out[key] = float(np.mean(s))
    return out
