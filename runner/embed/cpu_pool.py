"""The CPU backend: decode + prepare in worker processes, embed each chunk in batches in the run's process.

Entry: `pool_compute(data_root, encoder, augment, workers, batch_size) -> Compute`. Work goes out in chunks of one
batch; at most two chunks per worker are in flight, so memory does not grow with the manifest.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from registry.specs import AugmentationsSpec
from runner.data.imaging import ImageDecodeError, failure_reason, load_image
from runner.embed.augment import augmented_views
from runner.embed.rows import ORIGINAL, check_shape
from runner.encoders.base import Encoder, adapter_class
from runner.runtime.signals import start_owned_worker
from runner.runtime.workers import bounded_workers

if TYPE_CHECKING:
    from runner.embed.rows import Compute, Row


_worker_encoder: Encoder | None = None

_worker_augment: AugmentationsSpec | None = None


def init_worker(encoder_cls: type[Encoder], card: dict, augment: AugmentationsSpec | None) -> None:
    """In a decode worker process: quiet on Ctrl-C, ends with the run, then the prepare-only encoder."""

    start_owned_worker()
    _set_prepare_only(encoder_cls, card, augment)


def _set_prepare_only(encoder_cls: type[Encoder], card: dict, augment: AugmentationsSpec | None) -> None:
    """Build a prepare-only instance: `prepare` depends on the card alone, so no weights are loaded in workers.
    The in-process path (workers 0) calls this alone: the run's own process keeps its signal handlers."""
    global _worker_encoder, _worker_augment
    _worker_encoder, _worker_augment = encoder_cls.prepare_only(card), augment


def _prepare_one(path: str, rel_path: str) -> dict[str, np.ndarray] | str:
    """{view id: prepared input} for one file, or the exclusion reason when it cannot be decoded."""

    try:
        image = load_image(path)
    except (ImageDecodeError, OSError, MemoryError) as exc:  # MemoryError: this image fails, not the run
        return failure_reason(exc)
    views = {ORIGINAL: image}
    if _worker_augment is not None:

        seed = view_seed(_worker_augment.seed, rel_path)
        views.update({v.aug_id: v.image for v in augmented_views(image, _worker_augment, seed=seed)})
    return {view: _worker_encoder.prepare(img) for view, img in views.items()}


def prepare_chunk(paths: list[tuple[str, str]]) -> list[dict[str, np.ndarray] | str]:
    return [_prepare_one(path, rel_path) for path, rel_path in paths]


def view_seed(base_seed: int, rel_path: str) -> int:
    """Each image gets its own augmentation draws (not the same angle for all), fixed by the seed and its path."""
    digest = hashlib.sha256(f"{base_seed}:{rel_path}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def pool_compute(data_root: Path, encoder: Encoder, augment: AugmentationsSpec | None, workers: int,
                 batch_size: int) -> Compute:
    """The CPU pool as a `Compute`: decode + prepare in worker processes, embed each chunk in batches."""

    def compute(todo: list[Row]):
        for chunk, prepared in _prepared_chunks(todo, data_root, encoder, augment, workers, batch_size):
            inputs = [view for item in prepared if not isinstance(item, str) for view in item.values()]
            vectors = np.zeros((0, encoder.dim), dtype=np.float32)
            if inputs:
                vectors = np.concatenate(
                    [encoder.embed(np.stack(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)]
                ).astype(np.float32)
                check_shape(vectors, len(inputs), encoder)
            results, used = [], 0
            for item in prepared:  # back to one {view: vector} per row, in the order the views were prepared
                if isinstance(item, str):
                    results.append(item)
                else:
                    results.append(dict(zip(item, vectors[used : used + len(item)])))
                    used += len(item)
            yield chunk, results

    return compute


def _prepared_chunks(todo, data_root: Path, encoder: Encoder, augment, workers: int, batch_size: int):
    """Yield (chunk of rows, prepared items) in order; at most 2 chunks per worker are in flight."""
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    if not chunks:
        return
    paths = [[(str(data_root / rel), rel) for _, rel, _ in chunk] for chunk in chunks]
    init_args = (adapter_class(encoder), encoder.card, augment)
    workers = bounded_workers(workers, len(chunks))  # never more processes than chunks
    if workers <= 0:  # in-process (debugging, tiny jobs)
        _set_prepare_only(*init_args)
        for chunk, chunk_paths in zip(chunks, paths):
            yield chunk, prepare_chunk(chunk_paths)
        return
    # fork: workers start in milliseconds and only run numpy/pydicom code, never torch.
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                             initargs=init_args) as pool:
        in_flight: list[Future] = []
        next_chunk = 0
        for i in range(len(chunks)):
            while next_chunk < len(chunks) and len(in_flight) < 2 * workers:
                in_flight.append(pool.submit(prepare_chunk, paths[next_chunk]))
                next_chunk += 1
            yield chunks[i], in_flight.pop(0).result()
