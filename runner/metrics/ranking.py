"""Ranking metrics of image->image retrieval, per query, with binary relevance: precision@k, recall@k (a hit in the
top k), average precision and nDCG@k. The gallery is ranked by decreasing similarity; ties keep the gallery's order
(a stable sort), so a ranking is reproducible bit for bit.

Definitions (checked against scikit-learn's average_precision_score and ndcg_score on tie-free scores in
tests/test_task_types.py):
  precision@k = relevant among the top k / k            recall@k (hit rate) = 1 if any of the top k is relevant
  AP = mean over the relevant items of the precision at their rank (non-interpolated; over the whole gallery)
  nDCG@k = sum_{i<k} rel_i / log2(i + 2), divided by the same sum for the ideal ranking
A query without any relevant gallery item has no value (None).
"""

from __future__ import annotations

import numpy as np


def rankings(similarity: np.ndarray) -> np.ndarray:
    """(queries, gallery) similarities -> each query's gallery indices, most similar first (stable for ties)."""
    return np.argsort(-similarity, axis=1, kind="stable")


def query_metrics(relevant: np.ndarray, ks: tuple[int, ...], ndcg_k: int = 10) -> dict[str, np.ndarray]:
    """Per query, from `relevant` (queries, gallery) booleans already in ranked order: precision_at_<k>,
    recall_at_<k>, ap and ndcg_at_<ndcg_k>; NaN for a query with no relevant item."""
    relevant = np.asarray(relevant, dtype=bool)
    n_relevant = relevant.sum(axis=1)
    has = n_relevant > 0
    hits = np.cumsum(relevant, axis=1)
    ranks = np.arange(1, relevant.shape[1] + 1)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        top = min(k, relevant.shape[1])
        out[f"precision_at_{k}"] = np.where(has, hits[:, top - 1] / k, np.nan)
        out[f"recall_at_{k}"] = np.where(has, (hits[:, top - 1] > 0).astype(float), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["ap"] = np.where(has, (relevant * (hits / ranks)).sum(axis=1) / n_relevant, np.nan)
    top = min(ndcg_k, relevant.shape[1])
    discount = 1.0 / np.log2(np.arange(2, top + 2))
    dcg = (relevant[:, :top] * discount).sum(axis=1)
    ideal = np.array([discount[:min(int(n), top)].sum() for n in n_relevant])
    with np.errstate(invalid="ignore", divide="ignore"):
        out[f"ndcg_at_{ndcg_k}"] = np.where(has, dcg / np.where(ideal > 0, ideal, 1.0), np.nan)
    return out
