"""An embeddings bundle: the embeddings a run's classifier was trained and tested on, filed so that the registry can
refit the classifier itself (leaderboard.filing.regenerate) and an auditor can re-embed a sample (`runner audit`).

`runner eval --save-embeddings` writes OUT/<task>/<encoder>/embeddings.npz: the image ids in design order, the
original embeddings and each augmented view exactly as the classifier saw them (float32), and a JSON header naming
what they belong to (task and encoder behaviour hashes, manifest sha256). float32, not float16: LightGBM bins the
features per fold, and float16 rounding moved the bin edges enough to change F1 by 0.03 on a 300-image demo task,
so a refit from float16 could not reproduce the run; from float32 it gives the run's predictions bit for bit.
A zero-shot task's bundle also holds its prompts' text embeddings ("text:<label>:positive|negative", one row per
prompt, the image embeddings' width), so the registry recomputes its scores without the model.
Written atomically, read with `allow_pickle=False` (a bundle is untrusted input): every array is checked for shape,
dtype and finiteness before use.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from registry.errors import RegistryError
from runner.runtime.atomic import atomic_write

FORMAT = 1  # float32 arrays
NAME = "embeddings.npz"  # in the run folder, beside result.json
MAX_ROWS = 1_000_000
MAX_DIM = 65_536
VIEW_PREFIX = "view:"
TEXT_PREFIX = "text:"
MAX_PROMPTS = 1000


class BundleError(RegistryError):
    """An embeddings bundle that cannot be used; str() says which file and why."""

    exit_code = 2


@dataclass
class Bundle:
    image_ids: list[str]
    original: np.ndarray  # (n, dim) float32
    augmented: dict[str, np.ndarray] = field(default_factory=dict)  # view id -> (n, dim) float32
    header: dict = field(default_factory=dict)  # format, task/encoder behaviour sha256, manifest sha256, weights
    texts: dict[str, np.ndarray] = field(default_factory=dict)  # "<label>:<side>" -> (prompts, dim) float32

    @property
    def dim(self) -> int:
        return int(self.original.shape[1])


def bundle_header(task, encoder_card, manifest, weights_sha256: dict) -> dict:
    """What a bundle belongs to: the task and encoder behaviour and the manifest it embeds (each checked by
    leaderboard.filing.regenerate.bundle_problems), and the weight files' sha256 that made the embeddings."""
    return {"task_id": task.id, "task_behaviour_sha256": task.behaviour_sha256, "encoder_id": encoder_card.id,
            "encoder_behaviour_sha256": encoder_card.behaviour_sha256, "manifest_sha256": manifest.meta["sha256"],
            "weights_sha256": weights_sha256}


def write_bundle(path: Path, image_ids: list[str], original: np.ndarray, augmented: dict[str, np.ndarray],
                 header: dict, texts: dict[str, np.ndarray] | None = None) -> Path:
    """Write a bundle atomically; returns its path. `texts`: a zero-shot task's prompt embeddings."""
    arrays = {"image_ids": np.asarray([str(i) for i in image_ids], dtype=np.str_),
              "original": np.asarray(original, dtype=np.float32),
              "header": np.asarray(json.dumps({**header, "format": FORMAT}, sort_keys=True))}
    arrays.update({VIEW_PREFIX + view: np.asarray(x, dtype=np.float32) for view, x in sorted(augmented.items())})
    arrays.update({TEXT_PREFIX + key: np.asarray(x, dtype=np.float32) for key, x in sorted((texts or {}).items())})

    def write(handle):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        handle.write(buffer.getvalue())

    return atomic_write(Path(path), write)


def read_bundle(path: Path) -> Bundle:
    """Read and check a bundle (BundleError on anything malformed)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            missing = {"image_ids", "original", "header"} - names
            if missing:
                raise BundleError(f"{path}: not an embeddings bundle (no {', '.join(sorted(missing))})")
            header = json.loads(str(data["header"]))
            ids = data["image_ids"]
            original = data["original"]
            views = {name[len(VIEW_PREFIX):]: data[name] for name in sorted(names) if name.startswith(VIEW_PREFIX)}
            texts = {name[len(TEXT_PREFIX):]: data[name] for name in sorted(names) if name.startswith(TEXT_PREFIX)}
    except BundleError:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:  # zip, npy and JSON errors alike
        raise BundleError(f"{path}: unreadable embeddings bundle ({str(exc).splitlines()[0] if str(exc) else exc})") \
            from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BundleError(f"{path}: bundle format {header.get('format') if isinstance(header, dict) else header!r}; "
                          f"this version reads format {FORMAT}")
    if ids.ndim != 1 or ids.dtype.kind != "U" or not 0 < len(ids) <= MAX_ROWS:
        raise BundleError(f"{path}: image_ids must be 1 to {MAX_ROWS:,} strings")
    if len(set(ids.tolist())) != len(ids):
        raise BundleError(f"{path}: image_ids repeat an image")
    for name, array in [("original", original), *views.items()]:
        if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != len(ids) \
                or not 0 < array.shape[1] <= MAX_DIM or array.shape != original.shape:
            raise BundleError(f"{path}: {name} must be float32 of shape ({len(ids)}, dim), like the originals; "
                              f"it is {array.dtype} {array.shape}")
        if not np.isfinite(array).all():
            raise BundleError(f"{path}: {name} holds NaN or Infinity")
    for key, array in texts.items():
        if array.dtype != np.float32 or array.ndim != 2 or not 0 < array.shape[0] <= MAX_PROMPTS \
                or array.shape[1] != original.shape[1]:
            raise BundleError(f"{path}: text embeddings {key!r} must be float32 of shape (1 to {MAX_PROMPTS} prompts, "
                              f"{original.shape[1]}); they are {array.dtype} {array.shape}")
        if not np.isfinite(array).all():
            raise BundleError(f"{path}: text embeddings {key!r} hold NaN or Infinity")
    return Bundle(ids.tolist(), original, views, header, texts)
