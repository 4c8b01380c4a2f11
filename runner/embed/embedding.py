"""Manifest -> embeddings: the one entry point every caller (`runner eval`, `runner bench`, the analyses) uses.

Entry: `embed_manifest(manifest, data_root, dataset_id, encoder, cache, ..., backend=) -> Embeddings`.
`runner.embed.plan.plan_embedding` decides, in that one place, which backend computes the missing embeddings
(`--backend auto|cpu|device|ray`): the CPU pool (runner.embed.cpu_pool), the device path (runner.embed.device) or a
Ray actor pool (runner.embed.ray_pool). Whatever the backend, `runner.embed.rows.embed_rows_with` does the rest the
same way: cache keys, lookup, recorded failures, one cache shard per chunk, exclusions, assembly in manifest order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from registry.specs import AugmentationsSpec
from runner.embed.cache import EmbeddingCache
from runner.embed.cpu_pool import pool_compute
from runner.embed.device.embedder import fast_compute
from runner.embed.plan import default_workers, plan_embedding
from runner.embed.ray_pool import ray_compute
from runner.embed.rows import embed_rows_with
from runner.encoders.base import Encoder, adapter_class

if TYPE_CHECKING:
    from runner.embed.rows import Embeddings


def embed_manifest(
    manifest: pd.DataFrame,
    data_root: Path,
    dataset_id: str,
    encoder: Encoder,
    cache: EmbeddingCache,
    *,
    augment: AugmentationsSpec | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    backend: str = "auto",
) -> Embeddings:
    """Embed every manifest row (and its augmented views when `augment`, the task card's augmentations, is given).

    Each image's views are drawn with `view_seed(augment.seed, path)` and come back in `Embeddings.augmented`
    keyed by runner.embed.augment.view_ids(augment). The backend is `plan_embedding`'s choice; `workers` None ->
    `default_workers(plan)`.
    """
    plan = plan_embedding(adapter_class(encoder), str(encoder.device), backend, augment)
    workers = default_workers(plan) if workers is None else int(workers)
    batch_size = int(batch_size or encoder.card["batch_size"])
    if plan.backend == "device":
        compute = fast_compute(Path(data_root), encoder, workers, batch_size)
    elif plan.backend == "ray":
        compute = ray_compute(Path(data_root), encoder, workers, batch_size, plan.actor_backend)
    else:
        compute = pool_compute(Path(data_root), encoder, augment, workers, batch_size)
    embedded = embed_rows_with(compute, manifest, data_root, dataset_id, encoder, cache, augment=augment,
                               progress=progress)
    embedded.backend = plan.backend if embedded.n_computed else ""
    return embedded
