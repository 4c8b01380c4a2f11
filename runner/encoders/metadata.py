"""The `metadata` baseline: a control "encoder" that reads no pixels, only the acquisition/demographic columns the
dataset card declares (`metadata_features`, frozen in the manifest as `meta_<name>` columns).

Why it exists: under the paper's sampling, view position (AP/PA), age, sex and follow-up number alone predict several
labels well above chance (edema positives are mostly AP films). Its AUROC is the *shortcut floor* of a task: how much
of an encoder's number is available without looking at the image. It goes through the same manifest, folds,
classifier and metrics as any encoder (runner.evaluate calls `metadata_embeddings` instead of the image loop).

Entries: `feature_matrix(frame, encoder_card, dataset_id, declared)` -> (X float32 (n, d) with NaN for missing, column
names); `metadata_embeddings(frame, encoder_card, dataset_id, declared)` -> runner.embed.rows.Embeddings, where
`declared` is the dataset card's `metadata_features` (each with its `kind`). Categorical features are one-hot
over the values present in the manifest (sorted, so the columns are the same on every run); a missing categorical
value is NaN in each of its columns and a missing number is NaN, which LightGBM routes as missing.
The encoder card's `model.kinds` selects features by the kind the dataset card gives each (acquisition, demographic,
label-source; the schema default: acquisition + demographic, so a label-provenance column such as PadChest's
MethodLabel never enters the shortcut floor, and a `kinds: [label-source]` card is the separate label-source floor);
`model.features` narrows them further by name (e.g. [view] for the view-only floor).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from registry.schemas import fill_defaults
from runner.data.tables import METADATA_PREFIX
from runner.embed.rows import Embeddings
from runner.encoders.base import Encoder, EncoderError


class MetadataNotAvailable(EncoderError):
    """The manifest lacks a metadata feature the card needs (the data set declares none, or its table lacks it)."""


def model_options(encoder_card: dict) -> dict:
    """The card's `model` block with the schema's defaults (encoder.schema.json $defs/metadata_model) filled in."""
    return fill_defaults("encoder", dict(encoder_card.get("model") or {}), "metadata_model")


def wanted_features(encoder_card: dict) -> list[str] | None:
    """The feature names the card selects; None: every feature of its kinds."""
    features = model_options(encoder_card).get("features")
    return None if features is None else [str(f) for f in features]


def wanted_kinds(encoder_card: dict) -> list[str]:
    """The feature kinds the card uses (`model.kinds`)."""
    return [str(k) for k in model_options(encoder_card)["kinds"]]


def feature_matrix(frame: pd.DataFrame, encoder_card: dict, dataset_id: str = "?",
                   declared: list[dict] | None = None) -> tuple[np.ndarray, list[str]]:
    """Manifest rows -> (features (n, d) float32, NaN = missing; the feature column names). `declared`: the dataset
    card's `metadata_features`, whose `kind` decides which manifest columns the card's `model.kinds` admits."""
    kind_of = {str(f["name"]): f.get("kind") for f in declared or []}
    kinds = wanted_kinds(encoder_card)
    carried = [c[len(METADATA_PREFIX):] for c in frame.columns if str(c).startswith(METADATA_PREFIX)]
    present = [name for name in carried if kind_of.get(name) in kinds]
    where = (f"registry/datasets/{dataset_id}.yaml `metadata_features` (each becomes manifest column "
             f"{METADATA_PREFIX}<name>; a manifest sampled before the card declared them must be sampled again)")
    if carried and not present:
        raise MetadataNotAvailable(
            f"metadata baseline {encoder_card.get('id', '?')!r} not available for dataset {dataset_id!r}: none of its "
            f"features ({', '.join(carried)}) is of the kind(s) {', '.join(kinds)} it uses; see {where}")
    wanted = wanted_features(encoder_card)
    if wanted is not None:
        of_other_kind = [name for name in wanted if name in carried and name not in present]
        if of_other_kind:
            raise MetadataNotAvailable(
                f"metadata baseline {encoder_card.get('id', '?')!r}: feature {of_other_kind[0]!r} of dataset "
                f"{dataset_id!r} is of kind {kind_of.get(of_other_kind[0])!r}, not one of the card's model.kinds "
                f"({', '.join(kinds)})")
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


def metadata_embeddings(frame: pd.DataFrame, encoder_card: dict, dataset_id: str, declared: list[dict] | None):
    """The manifest's metadata features as the `Embeddings` of every row (no file is opened, nothing is cached).
    declared: the dataset card's `metadata_features` (their kinds)."""

    started = time.perf_counter()
    x, names = feature_matrix(frame, encoder_card, dataset_id, declared)
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
