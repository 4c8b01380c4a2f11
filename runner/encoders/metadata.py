"""The `metadata` baseline: a control "encoder" that reads no pixels, only the acquisition/demographic columns the
dataset card declares (`metadata_features`, frozen in the manifest as `meta_<name>` columns).

Why it exists: under the paper's sampling, view position (AP/PA), age, sex and follow-up number alone predict several
labels well above chance (edema positives are mostly AP films). Its AUROC is the *shortcut floor* of a task: how much
of an encoder's number is available without looking at the image. It goes through the same manifest, folds,
classifier and metrics as any encoder (runner.evaluate calls `metadata_embeddings` instead of the image loop).

Entries: `feature_matrix(frame, encoder_card)` -> (X float32 (n, d) with NaN for missing, column names);
`metadata_embeddings(frame, encoder_card, dataset_id)` -> runner.embed.rows.Embeddings. Categorical features are one-hot
over the values present in the manifest (sorted, so the columns are the same on every run); a missing categorical
value is NaN in each of its columns and a missing number is NaN, which LightGBM routes as missing.
The encoder card's `model.features` lists the feature names it uses (e.g. [view] for the view-only floor); without
it, every feature the manifest carries is used.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from runner.data.tables import METADATA_PREFIX
from runner.embed.rows import Embeddings
from runner.encoders.base import Encoder, EncoderError


class MetadataNotAvailable(EncoderError):
    """The manifest lacks a metadata feature the card needs (the data set declares none, or its table lacks it)."""


def wanted_features(encoder_card: dict) -> list[str] | None:
    """The feature names the card selects; None: every feature the manifest carries."""
    features = (encoder_card.get("model") or {}).get("features")
    return None if features is None else [str(f) for f in features]


def feature_matrix(frame: pd.DataFrame, encoder_card: dict, dataset_id: str = "?") -> tuple[np.ndarray, list[str]]:
    """Manifest rows -> (features (n, d) float32, NaN = missing; the feature column names)."""
    present = [c[len(METADATA_PREFIX):] for c in frame.columns if str(c).startswith(METADATA_PREFIX)]
    wanted = wanted_features(encoder_card)
    where = (f"registry/datasets/{dataset_id}.yaml `metadata_features` (each becomes manifest column "
             f"{METADATA_PREFIX}<name>; a manifest sampled before the card declared them must be sampled again)")
    if not present and not wanted:
        raise MetadataNotAvailable(f"metadata baseline not available for dataset {dataset_id!r}: its manifest carries "
                                   f"no metadata features; declare them in {where}")
    missing = [name for name in (wanted or []) if name not in present]
    if missing:
        raise MetadataNotAvailable(
            f"metadata baseline {encoder_card.get('id', '?')!r} not available for dataset {dataset_id!r}: the manifest "
            f"has no feature {missing[0]!r} (it has: {', '.join(present) or 'none'}); see {where}")
    columns, names = [], []
    for name in wanted or present:
        values = frame[METADATA_PREFIX + name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            columns.append(values.to_numpy(dtype=np.float64))
            names.append(name)
            continue
        text = values.astype(object).where(values.notna(), None)
        levels = sorted({str(v) for v in text if v is not None})
        absent = text.isna().to_numpy()
        for level in levels:
            one_hot = (text.astype(str) == level).to_numpy(dtype=np.float64)
            one_hot[absent] = np.nan
            columns.append(one_hot)
            names.append(f"{name}={level}")
    if not columns:
        raise MetadataNotAvailable(f"metadata baseline not available for dataset {dataset_id!r}: its features "
                                   f"({', '.join(wanted or present)}) have no value in any sampled image")
    return np.column_stack(columns).astype(np.float32), names


def metadata_embeddings(frame: pd.DataFrame, encoder_card: dict, dataset_id: str):
    """The manifest's metadata features as the `Embeddings` of every row (no file is opened, nothing is cached)."""

    started = time.perf_counter()
    x, names = feature_matrix(frame, encoder_card, dataset_id)
    seconds = time.perf_counter() - started
    embedded = Embeddings(frame["image_id"].astype(str).tolist(), x, {}, [], n_computed=len(frame), seconds=seconds,
                          images_per_s=len(frame) / seconds if seconds > 0 else None)
    embedded.feature_names = names  # recorded in the result (analyses.metadata_features)
    return embedded


class MetadataEncoder(Encoder):
    """Registered so that the card loads like any encoder's; `runner eval` never calls prepare/embed for it."""

    reads_pixels = False

    @property
    def dim(self) -> int:
        raise EncoderError("the metadata baseline's width depends on the data set's features (one-hot); "
                           "it has no fixed embedding size")

    @property
    def contract(self) -> dict:
        return {"metadata_features": wanted_features(self.card)}  # keys the (unused) embedding cache namespace

    def prepare(self, image: np.ndarray) -> np.ndarray:
        raise EncoderError("the metadata baseline reads no pixels: `runner eval` takes its features from the manifest")

    def embed(self, batch: np.ndarray) -> np.ndarray:
        raise EncoderError("the metadata baseline reads no pixels: `runner eval` takes its features from the manifest")


def reads_pixels(encoder_card: dict) -> bool:
    """False for the metadata baseline (by adapter name, so no adapter module has to be imported to know)."""
    return encoder_card.get("adapter") != "metadata"
