"""Manifest -> embeddings: the one entry point every caller (`runner eval`, `runner bench`, the analyses) uses.

Entry: `embed_manifest(manifest, data_root, dataset_id, encoder, cache, ..., pipeline=, backend=) -> Embeddings`.
`plan_embedding` decides, in this one place, which backend computes the missing embeddings:
  cpu-pool  decode + prepare in worker processes, embed in batches (this module)
  device    read on CPU workers, preprocess + forward on the encoder's device (runner.fastpath; automatic on CUDA)
  ray       a Ray Data actor pool (runner.ray_backend; `--backend ray`)
Whatever the backend, `embed_rows_with` does the rest the same way: cache keys, lookup, recorded failures, shards.

Only images (and augmented views) missing from the cache are decoded. Work goes out in chunks of one batch; a bounded
number of chunks is in flight, so memory does not grow with the manifest. Each finished batch is written to the cache
as one shard straight away, so a run that is killed resumes at the first batch it had not finished.
An image that cannot be read or decoded here becomes a recorded exclusion (image id, path, reason), never a crash.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from registry.specs import AugmentationsSpec
from runner.cache import EmbeddingCache, ImageIdentity
from runner.encoders.base import Encoder, adapter_class

ORIGINAL = "original"
PIPELINES = ("auto", "cpu", "fast")
BACKENDS = ("local", "ray")
TRANSIENT = "transient:"  # reason prefix of runner.imaging.failure_reason for errors that say nothing about the file


@dataclass
class Embeddings:
    """Embeddings of the manifest rows that could be embedded, in manifest order."""

    image_ids: list[str]
    original: np.ndarray  # (n, dim) float32
    augmented: dict[str, np.ndarray] = field(default_factory=dict)  # view id -> (n, dim), same rows
    exclusions: list[dict] = field(default_factory=list)  # {image_id, path, reason}
    n_computed: int = 0  # images decoded and embedded by this call (the rest came from the cache)
    seconds: float = 0.0
    backend: str = ""  # the plan that computed them: cpu-pool | device | ray ("" when nothing was computed)
    images_per_s: float | None = None  # over computed images; None when everything came from the cache


# ---------------------------------------------------------------------------------------------------------------
# worker side: decode + prepare (pure functions of the file and the encoder card)

_worker_encoder: Encoder | None = None
_worker_augment: AugmentationsSpec | None = None


def init_worker(encoder_cls: type[Encoder], card: dict, augment: AugmentationsSpec | None) -> None:
    """In a decode worker process: quiet on Ctrl-C, ends with the run, then the prepare-only encoder."""
    from runner.signals import quiet_worker

    quiet_worker()
    _die_with_parent()
    _set_prepare_only(encoder_cls, card, augment)


def _set_prepare_only(encoder_cls: type[Encoder], card: dict, augment: AugmentationsSpec | None) -> None:
    """Build a prepare-only instance: `prepare` depends on the card alone, so no weights are loaded in workers.
    The in-process path (workers 0) calls this alone: the run's own process keeps its signal handlers."""
    global _worker_encoder, _worker_augment
    _worker_encoder, _worker_augment = encoder_cls.prepare_only(card), augment


def _die_with_parent() -> None:
    """Ask Linux to end this worker when the run that started it dies.

    A run killed with SIGKILL cannot shut its pool down, and its workers would otherwise wait on their queue forever.
    Elsewhere (no prctl) this is a no-op; the run's own exit still stops them.
    """
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _prepare_one(path: str, rel_path: str) -> dict[str, np.ndarray] | str:
    """{view id: prepared input} for one file, or the exclusion reason when it cannot be decoded."""
    from runner.imaging import ImageDecodeError, failure_reason, load_image

    try:
        image = load_image(path)
    except (ImageDecodeError, OSError, MemoryError) as exc:  # MemoryError: this image fails, not the run
        return failure_reason(exc)
    views = {ORIGINAL: image}
    if _worker_augment is not None:
        from runner.augment import augmented_views

        seed = view_seed(_worker_augment.seed, rel_path)
        views.update({v.aug_id: v.image for v in augmented_views(image, _worker_augment, seed=seed)})
    return {view: _worker_encoder.prepare(img) for view, img in views.items()}


def prepare_chunk(paths: list[tuple[str, str]]) -> list[dict[str, np.ndarray] | str]:
    return [_prepare_one(path, rel_path) for path, rel_path in paths]


def view_seed(base_seed: int, rel_path: str) -> int:
    """Each image gets its own augmentation draws (not the same angle for all), fixed by the seed and its path."""
    digest = hashlib.sha256(f"{base_seed}:{rel_path}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


# ---------------------------------------------------------------------------------------------------------------
# main process


def _progress_bar(enabled: bool | str):
    """A rich progress bar showing images/s (disabled: prints nothing; "log": periodic lines on stderr)."""
    if enabled == "log":
        from runner.progress import LogProgress

        return LogProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TimeRemainingColumn
    from rich.text import Text

    class ImagesPerSecond(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.1f} images/s" if task.speed else "")

    return Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), ImagesPerSecond(),
        TimeRemainingColumn(), disable=not enabled,
    )


# A Compute turns the rows still to embed into (chunk of rows, one result per row) pairs, in row order; a result is
# the row's embedding (its original view), a {view id: embedding} dict, or the reason it could not be embedded.
Row = tuple[str, str, dict[str, str]]  # (image_id, path relative to the data root, {view id: cache key})
Compute = Callable[[list[Row]], Iterator[tuple[list[Row], list]]]


@dataclass(frozen=True)
class EmbedPlan:
    """Which backend computes the embeddings a run still needs, and why."""

    backend: str  # cpu-pool | device | ray
    actor_pipeline: str  # ray only: what each actor runs (cpu | fast)
    reason: str


def supports_device_preprocessing(encoder_cls: type[Encoder]) -> bool:
    """The device path reproduces the card's preprocessing contract; adapters with their own `prepare` (PNG bytes
    for CXR Foundation, ...) keep theirs. Decided from the adapter class, so a lazily built encoder counts too."""
    return encoder_cls.prepare is Encoder.prepare


def plan_embedding(encoder_cls: type[Encoder], device: str, pipeline: str = "auto", backend: str = "local",
                   augment: AugmentationsSpec | None = None) -> EmbedPlan:
    """The one place the backend is chosen. `pipeline` auto -> the device path on CUDA (the CPU would starve the GPU),
    the CPU pool elsewhere; augmented views are drawn on the CPU image, so they always take the CPU pool."""
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline {pipeline!r}; expected one of {', '.join(PIPELINES)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    wanted = ("fast" if str(device).startswith("cuda") else "cpu") if pipeline == "auto" else pipeline
    fits_device = supports_device_preprocessing(encoder_cls)
    if augment is not None:
        return EmbedPlan("cpu-pool", "cpu", "augmented views are drawn on the CPU image")
    if backend == "ray":
        return EmbedPlan("ray", wanted if fits_device else "cpu", "--backend ray")
    if wanted == "fast" and fits_device:
        return EmbedPlan("device", "fast", f"preprocessing on {device}")
    if wanted == "fast":
        return EmbedPlan("cpu-pool", "cpu", f"{encoder_cls.__name__} prepares its own inputs")
    return EmbedPlan("cpu-pool", "cpu", "CPU pipeline")


def available_cores() -> int:
    """CPU cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def default_workers(plan: EmbedPlan, cores: int | None = None) -> int:
    """Decode processes when the user names none (the one place this default lives).

    Device path: every core but two (the main process feeds the GPU and a pin/copy thread runs beside it), at least 1:
    a 1024² PNG costs ~5 ms of CPU to decode, so two readers would cap a GPU near 400 img/s. CPU pool: one per core
    (the main process mostly waits on them while the encoder's own threads run)."""
    cores = available_cores() if cores is None else cores
    if plan.backend == "device" or plan.actor_pipeline == "fast":
        return max(cores - 2, 1)
    return cores


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
    pipeline: str = "auto",
    backend: str = "local",
) -> Embeddings:
    """Embed every manifest row (and its augmented views when `augment`, the task card's augmentations, is given).

    Each image's views are drawn with `view_seed(augment.seed, path)` and come back in `Embeddings.augmented`
    keyed by runner.augment.view_ids(augment). The backend is `plan_embedding`'s choice; `workers` None ->
    `default_workers(plan)`.
    """
    plan = plan_embedding(adapter_class(encoder), str(encoder.device), pipeline, backend, augment)
    workers = default_workers(plan) if workers is None else int(workers)
    batch_size = int(batch_size or encoder.card["batch_size"])
    if plan.backend == "device":
        from runner.fastpath import fast_compute

        compute = fast_compute(Path(data_root), encoder, workers, batch_size)
    elif plan.backend == "ray":
        from runner.ray_backend import ray_compute

        compute = ray_compute(Path(data_root), encoder, workers, batch_size, plan.actor_pipeline)
    else:
        compute = pool_compute(Path(data_root), encoder, augment, workers, batch_size)
    embedded = embed_rows_with(compute, manifest, data_root, dataset_id, encoder, cache, augment=augment,
                               progress=progress)
    embedded.backend = plan.backend if embedded.n_computed else ""
    return embedded


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
                _check_shape(vectors, len(inputs), encoder)
            results, used = [], 0
            for item in prepared:  # back to one {view: vector} per row, in the order the views were prepared
                if isinstance(item, str):
                    results.append(item)
                else:
                    results.append(dict(zip(item, vectors[used : used + len(item)])))
                    used += len(item)
            yield chunk, results

    return compute


def embed_rows_with(
    compute: Compute, manifest: pd.DataFrame, data_root: Path, dataset_id: str, encoder: Encoder,
    cache: EmbeddingCache, *, augment: AugmentationsSpec | None = None, progress: bool = True,
) -> Embeddings:
    """What every backend shares (this module's worker pool, the device fast path, Ray): cache keys, cache lookup,
    recorded failures, one cache shard per computed chunk, exclusions and assembly in manifest order."""
    start = time.perf_counter()
    data_root = Path(data_root)
    from runner.augment import settings_tag

    views = [ORIGINAL]
    if augment is not None:
        from runner.augment import view_ids

        views += list(view_ids(augment))
    exclusions: list[dict] = []
    rows: list[Row] = []
    for image_id, rel_path in zip(manifest["image_id"].astype(str), manifest["path"].astype(str)):
        try:
            identity = ImageIdentity.of_file(dataset_id, data_root, rel_path)
        except (OSError, ValueError) as exc:  # ValueError: a path the OS cannot take (a NUL byte in the metadata)
            exclusions.append({"image_id": image_id, "path": rel_path, "reason": _missing_reason(exc)})
            continue
        # The original's key never depends on augmentation settings, so it is shared with runs that do not augment.
        rows.append((image_id, rel_path, {
            v: identity.key(augmentation=f"{v}|" + ("" if v == ORIGINAL else settings_tag(augment))) for v in views
        }))

    found = cache.lookup([k for _, _, keys in rows for k in keys.values()])
    failed = recorded_failures(cache, [(i, p, keys[ORIGINAL]) for i, p, keys in rows], found, exclusions)
    todo = [r for r in rows if r[0] not in failed and any(k not in found for k in r[2].values())]

    n_computed = 0
    compute_start = time.perf_counter()
    with _progress_bar(progress if todo else False) as bar:
        task = bar.add_task(f"embedding with {encoder.id}", total=len(todo))
        for chunk, results in compute(todo):
            keys, vectors, new_failures = [], [], {}
            for (image_id, rel_path, view_keys), result in zip(chunk, results):
                if isinstance(result, str):
                    failed[image_id] = result
                    exclusions.append({"image_id": image_id, "path": rel_path, "reason": result})
                    if not result.startswith(TRANSIENT):  # the same bytes may read fine next time: not remembered
                        new_failures[view_keys[ORIGINAL]] = result
                    continue
                by_view = result if isinstance(result, dict) else {ORIGINAL: result}
                for view, key in view_keys.items():
                    keys.append(key)
                    vectors.append(by_view[view])
            if vectors:
                array = np.stack(vectors).astype(np.float32, copy=False)
                _check_shape(array, len(keys), encoder)
                keys, array = _drop_non_finite(keys, array, chunk, failed, exclusions)
                if keys:
                    cache.put(keys, array)
                    found.update(zip(keys, array))
            cache.put_failures(new_failures)
            n_computed += len(chunk)
            bar.advance(task, len(chunk))

    kept = [r for r in rows if r[0] not in failed]
    order = {image_id: i for i, image_id in enumerate(manifest["image_id"].astype(str))}
    exclusions.sort(key=lambda e: order.get(e["image_id"], -1))

    def stack(view: str) -> np.ndarray:
        if not kept:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        return np.stack([np.asarray(found[keys[view]], dtype=np.float32) for _, _, keys in kept])

    compute_seconds = time.perf_counter() - compute_start
    return Embeddings(
        image_ids=[r[0] for r in kept],
        original=stack(ORIGINAL),
        augmented={v: stack(v) for v in views if v != ORIGINAL},
        exclusions=exclusions,
        n_computed=n_computed,
        seconds=time.perf_counter() - start,
        images_per_s=(n_computed / compute_seconds) if n_computed and compute_seconds > 0 else None,
    )


def recorded_failures(cache: EmbeddingCache, rows, found: dict, exclusions: list[dict]) -> dict[str, str]:
    """{image_id: reason} for rows (image_id, path, original-view key) that an earlier run on the same bytes could
    not decode; each is added to `exclusions`, so it is excluded again without being decoded again."""
    failed: dict[str, str] = {}
    for image_id, rel_path, key in rows:
        reason = cache.failure(key)
        if reason is not None and key not in found:
            failed[image_id] = reason
            exclusions.append({"image_id": image_id, "path": rel_path, "reason": reason})
    return failed


def _missing_reason(exc: OSError | ValueError) -> str:
    if isinstance(exc, ValueError):
        return "invalid-path"
    return "missing-file" if isinstance(exc, FileNotFoundError) else f"unreadable: {exc.strerror or type(exc).__name__}"


def _check_shape(vectors: np.ndarray, n: int, encoder: Encoder) -> None:
    if vectors.shape != (n, encoder.dim):
        from runner.encoders.base import EncoderError

        raise EncoderError(
            f"encoder {encoder.id!r} returned embeddings of shape {vectors.shape}; its card says ({n}, {encoder.dim})"
        )


def _drop_non_finite(keys, vectors, chunk, failed, exclusions):
    """An embedding with NaN/Infinity excludes its image (all its views), recorded with a reason."""
    bad_rows = ~np.isfinite(vectors).all(axis=1)
    if not bad_rows.any():
        return keys, vectors
    bad_keys = {k for k, b in zip(keys, bad_rows) if b}
    for image_id, rel_path, view_keys in chunk:
        if image_id not in failed and bad_keys & set(view_keys.values()):
            failed[image_id] = "non-finite-embedding"
            exclusions.append({"image_id": image_id, "path": rel_path, "reason": "non-finite-embedding"})
    dropped = {k for image_id, _, vk in chunk if image_id in failed for k in vk.values()}
    keep = [i for i, k in enumerate(keys) if k not in dropped]
    return [keys[i] for i in keep], vectors[keep]


def _prepared_chunks(todo, data_root: Path, encoder: Encoder, augment, workers: int, batch_size: int):
    """Yield (chunk of rows, prepared items) in order; at most 2 chunks per worker are in flight."""
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    if not chunks:
        return
    paths = [[(str(data_root / rel), rel) for _, rel, _ in chunk] for chunk in chunks]
    init_args = (adapter_class(encoder), encoder.card, augment)
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
