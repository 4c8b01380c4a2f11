"""Embeddings of one task's manifest for a run: `open_encoder`, `open_cache`, then `embed_task` per manifest.

`embed_task` is `runner.embed.embedding.embed_manifest` for an image encoder and the manifest's metadata columns for
the metadata baseline (runner.encoders.metadata: no pixel is read); either way the errors a user can act on become
one EmbeddingError line (exit 2: bad input or an optional extra missing; exit 1: the encoder failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from registry.errors import RegistryError
from registry.specs import AugmentationsSpec
from runner.embed.cache import EmbeddingCache, default_cache_dir
from runner.embed.embedding import embed_manifest
from runner.embed.made_by import encoder_inputs
from runner.embed.rows import Embeddings
from runner.encoders import EncoderError, adapter_class, load_encoder
from runner.encoders.metadata import MetadataNotAvailable, metadata_embeddings, reads_pixels
from runner.encoders.weights import FileHashes


class EmbeddingError(RegistryError):
    """The task's images cannot be embedded as asked; str() is the one-line message."""


@dataclass(frozen=True)
class EmbedSettings:
    """How a run embeds (the `runner eval` options that decide it)."""

    device: str = "auto"  # auto | cpu | cuda[:N]
    workers: int | None = None  # decode worker processes (None: runner.embed.plan.default_workers)
    batch_size: int | None = None  # default: the encoder card's
    backend: str = "auto"  # auto | cpu | device | ray (runner.embed.plan)
    progress: bool | str = True  # True: a progress bar; "log": a line on stderr every few seconds
    cache_dir: Path | None = None  # default: $CXR_CACHE_DIR or ~/.cache/cxr-registry
    weights_dir: Path | None = None  # --weights-dir: where the encoder's weight files are
    trust_custom_code: bool = False
    not_before_ns: int = 0  # --re-embed: cached embeddings written before this time are not read (computed again)


def open_encoder(encoder_card, settings: EmbedSettings):
    """The encoder, built lazily: when every embedding is already cached, the model (and its weights) never loads."""
    try:
        return load_encoder(encoder_card.data, device=settings.device, trust_custom_code=settings.trust_custom_code,
                            weights_dir=settings.weights_dir, lazy=True)
    except EncoderError as exc:
        raise EmbeddingError(str(exc), exit_code=2) from None


def open_cache(encoder_card, encoder, settings: EmbedSettings) -> EmbeddingCache:
    """Keyed by the encoder card's behaviour hash (a title or licence edit never misses the cache) and by what made
    the embeddings: the weight files' sha256, custom code, package versions (runner.embed.made_by)."""
    root = settings.cache_dir or default_cache_dir()
    try:
        made_by = encoder_inputs(encoder_card.data, adapter_class(encoder), settings.weights_dir, FileHashes(root))
    except EncoderError as exc:
        raise EmbeddingError(str(exc), exit_code=2) from None
    return EmbeddingCache(encoder_card.behaviour_sha256, encoder.contract, root=root, made_by=made_by,
                          not_before_ns=settings.not_before_ns)


def embed_task(encoder, encoder_card, dataset_id: str, data_root: Path, frame: pd.DataFrame, cache: EmbeddingCache,
               augment: AugmentationsSpec | None, settings: EmbedSettings,
               metadata_features: list[dict] | None = None) -> Embeddings:
    """Embeddings of a manifest's rows (and augmented views when `augment`), in manifest order. metadata_features:
    the dataset card's (their kinds select what the metadata baseline uses)."""
    if not reads_pixels(encoder_card.data):  # the metadata baseline: features from the manifest, no image is read
        try:
            return metadata_embeddings(frame, encoder_card.data, dataset_id, metadata_features)
        except MetadataNotAvailable as exc:
            raise EmbeddingError(str(exc), exit_code=2) from None
    try:
        embedded = embed_manifest(frame, data_root, dataset_id, encoder, cache, augment=augment,
                                  workers=settings.workers, batch_size=settings.batch_size,
                                  progress=settings.progress, backend=settings.backend)
    except ValueError as exc:  # an unknown --backend
        raise EmbeddingError(str(exc), exit_code=2) from None
    except ImportError as exc:
        raise EmbeddingError(f"--backend {settings.backend} needs an optional extra (pip install -e .[ray]): {exc}",
                             exit_code=2) from None
    except EncoderError as exc:
        raise EmbeddingError(f"{encoder_card.id}: {exc}", exit_code=1) from None
    for aug_id, views in embedded.augmented.items():  # each view row must belong to the same image as its original
        if views.shape != embedded.original.shape:
            raise EmbeddingError(f"{encoder_card.id}: augmented view {aug_id!r} has {views.shape} rows/dims, the "
                                 f"originals {embedded.original.shape}", exit_code=1)
    return embedded
