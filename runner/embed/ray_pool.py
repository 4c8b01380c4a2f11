"""Scale-out: embed a manifest with Ray Data (`runner eval --backend ray`), into the same cache as the local backend.

Entry: `ray_compute(...)`, a `Compute` that runner.embed.embedding.embed_manifest uses when its plan says `ray`
(`runner eval --backend ray`; the choice is made in runner.embed.plan.plan_embedding). Only images missing from the cache go
to Ray; the driver writes each returned batch to
the cache as one shard (one writer, the same keys), so everything after embedding is unchanged.

The manifest rows become a Ray dataset (`from_items`); `map_batches` runs an actor pool whose actors each build the
encoder once: one GPU per actor when the cluster has GPUs (and the fast read-on-CPU / preprocess-on-GPU path), otherwise
a fractional CPU per actor (num_cpus=0.5) — with whole CPUs, two actors on a 2-CPU machine take every CPU and the read
tasks that feed them never run (a deadlock seen here). On CPU the actors run exactly the local backend's per-image
preparation (runner.embed.cpu_pool), so the embeddings equal the local backend's.

Cluster: $RAY_ADDRESS (or an already initialised Ray) is used as is; otherwise a local Ray with `workers` CPUs (at
least 2) starts. The cluster's workers must have this project installed (e.g. `pip install -e .[ray]`, or a
runtime_env), since actors import runner.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from runner.embed.cpu_pool import init_worker, prepare_chunk
from runner.embed.device.batches import RawReader, collate_raw
from runner.embed.device.embedder import DeviceEmbedder, results_in_order
from runner.encoders import load_encoder
from runner.encoders.base import Encoder


def ensure_ray(num_cpus: int = 2):
    """Connect to $RAY_ADDRESS or start a small local Ray (no dashboard, worker logs kept off the console, workers at
    this process's priority: LOCAL_RAY_SYSTEM_CONFIG)."""
    import ray

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        else:
            ray.init(num_cpus=max(int(num_cpus), 2), include_dashboard=False, log_to_driver=False,
                     _system_config=LOCAL_RAY_SYSTEM_CONFIG)
    return ray


# Ray starts its worker processes at niceness 15 (its `worker_niceness` setting), below the runner itself and the local
# backend's decode processes. On a machine shared with other CPU-bound work that starves them: beside two busy loops
# and the test suite the two embedding actors of 14 images stayed pending for 4.4 minutes while using a few CPU-s
# (docs/benchmarks.md). A local Ray this process starts runs its workers at the same priority as the local backend; a
# cluster at $RAY_ADDRESS keeps its own settings.
LOCAL_RAY_SYSTEM_CONFIG = {"worker_niceness": 0}


class EmbedActor:
    """One per actor: builds the encoder once, then embeds batches of {"row", "path"} into {"row", "vector", "reason"}."""

    def __init__(self, card: dict, actor_backend: str, batch_size: int | None):

        self.encoder = load_encoder(card, device="auto")
        fast = actor_backend == "device"  # the driver's plan_embedding chose it for this adapter
        self.embedder = DeviceEmbedder(self.encoder, batch_size) if fast else None
        if not fast:  # the local backend's own preparation code, in this actor process

            init_worker(type(self.encoder), card, None)

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        results = self._fast(paths) if self.embedder is not None else self._cpu(paths)
        vectors = np.zeros((len(paths), self.encoder.dim), dtype=np.float32)
        reasons = []
        for i, result in enumerate(results):
            if isinstance(result, str):
                reasons.append(result)
            else:
                vectors[i] = result
                reasons.append("")
        return {"row": np.asarray(batch["row"]), "vector": vectors, "reason": np.asarray(reasons, dtype=object)}

    def _cpu(self, paths: list[str]) -> list:

        prepared = prepare_chunk([(p, p) for p in paths])
        ok = [item["original"] for item in prepared if not isinstance(item, str)]
        vectors = iter(self.encoder.embed(np.stack(ok)) if ok else ())
        return [item if isinstance(item, str) else next(vectors) for item in prepared]

    def _fast(self, paths: list[str]) -> list:

        reader = RawReader(paths)
        batch = collate_raw([reader[i] for i in range(len(paths))])
        ((batch, vectors),) = list(self.embedder.run([batch]))
        return results_in_order(batch, vectors)


def ray_compute(data_root: Path, encoder: Encoder, workers: int, batch_size: int | None, actor_backend: str):
    """A `Compute` (see runner.embed.rows.embed_rows_with) that runs the todo rows through a Ray actor pool."""

    def compute(todo):
        if not todo:
            return
        ray = ensure_ray(workers)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        size = int(batch_size or encoder.card["batch_size"])
        items = [{"row": i, "path": str(Path(data_root) / rel)} for i, (_, rel, _) in enumerate(todo)]
        actors = max(1, min(gpus or 2, len(items)))
        out = ray.data.from_items(items).map_batches(
            EmbedActor, fn_constructor_kwargs={"card": encoder.card, "actor_backend": actor_backend,
                                                      "batch_size": batch_size},
            batch_size=size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if gpus else 0, num_cpus=None if gpus else 0.5,
        )
        for batch in out.iter_batches(batch_size=size, batch_format="numpy"):
            rows = [int(r) for r in batch["row"]]
            results = [reason or vector for reason, vector in zip(batch["reason"], np.asarray(batch["vector"]))]
            yield [todo[r] for r in rows], results

    return compute
