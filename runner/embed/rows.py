"""What every embedding backend shares: cache keys, cache lookup, recorded failures, one cache shard per
computed chunk, exclusions, and assembly in manifest order (`embed_rows_with`); a backend is a `Compute`.

Only images (and augmented views) missing from the cache are computed. Each finished chunk is written to the cache as
one shard straight away, so a run that is killed resumes at the first chunk it had not finished. An image that cannot
be read or decoded becomes a recorded exclusion (image id, path, reason), never a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from registry.specs import AugmentationsSpec
from runner.data.tables import OUTSIDE_ROOT, RootGuard
from runner.embed.augment import settings_tag, view_ids
from runner.embed.cache import EmbeddingCache, ImageIdentity
from runner.encoders.base import Encoder, EncoderError
from runner.runtime.progress import LogProgress

ORIGINAL = "original"

TRANSIENT = "transient:"  # reason prefix of runner.data.imaging.failure_reason for errors that say nothing about the file


@dataclass
class Embeddings:
    """Embeddings of the manifest rows that could be embedded, in manifest order."""

    image_ids: list[str]
    original: np.ndarray  # (n, dim) float32
    augmented: dict[str, np.ndarray] = field(default_factory=dict)  # view id -> (n, dim), same rows
    exclusions: list[dict] = field(default_factory=list)  # {image_id, path, reason}
    n_computed: int = 0  # images decoded and embedded by this call (the rest came from the cache)
    seconds: float = 0.0
    backend: str = ""  # the plan that computed them: cpu | device | ray ("" when nothing was computed)
    images_per_s: float | None = None  # over computed images; None when everything came from the cache


def _progress_bar(enabled: bool | str):
    """A rich progress bar showing images/s (disabled: prints nothing; "log": periodic lines on stderr)."""
    if enabled == "log":

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


def embed_rows_with(
    compute: Compute, manifest: pd.DataFrame, data_root: Path, dataset_id: str, encoder: Encoder,
    cache: EmbeddingCache, *, augment: AugmentationsSpec | None = None, progress: bool = True,
) -> Embeddings:
    """What every backend shares (this module's worker pool, the device fast path, Ray): cache keys, cache lookup,
    recorded failures, one cache shard per computed chunk, exclusions and assembly in manifest order."""
    start = time.perf_counter()
    data_root = Path(data_root)

    views = [ORIGINAL]
    if augment is not None:

        views += list(view_ids(augment))
    exclusions: list[dict] = []
    rows: list[Row] = []
    guard = RootGuard(data_root)
    for image_id, rel_path in zip(manifest["image_id"].astype(str), manifest["path"].astype(str)):
        try:
            if guard.outside(rel_path):  # a link out of the data root: not read, whatever it points at
                exclusions.append({"image_id": image_id, "path": rel_path, "reason": OUTSIDE_ROOT})
                continue
            identity = ImageIdentity.of_file(dataset_id, data_root, rel_path)
        except (OSError, ValueError) as exc:  # ValueError: a path the OS cannot take (a NUL byte in the metadata)
            exclusions.append({"image_id": image_id, "path": rel_path, "reason": _missing_reason(exc)})
            continue
        # The original's key never depends on augmentation settings, so it is shared with runs that do not augment.
        rows.append((image_id, rel_path, {
            v: identity.key(augmentation=f"{v}|" + ("" if v == ORIGINAL else settings_tag(augment))) for v in views
        }))

    found = cache.lookup([k for _, _, keys in rows for k in keys.values()], dim=encoder.dim)
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
                check_shape(array, len(keys), encoder)
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


def check_shape(vectors: np.ndarray, n: int, encoder: Encoder) -> None:
    if vectors.shape != (n, encoder.dim):

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
