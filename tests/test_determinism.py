"""Determinism on CPU: two identical runs give byte-identical manifests, built-in encoder embeddings, predictions and
metrics (timings, created_at and the environment block aside). docs/reliability.md lists the seeds and settings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support import TASK_ID, VOLATILE, make_registry

BUILTIN_ENCODERS = ("pixels", "random-cnn", "radiomics")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from registry.cards import load_registry

    return load_registry(make_registry(tmp_path_factory.mktemp("det") / "registry"))


@pytest.fixture(scope="module")
def two_runs(registry, demo_data_dir, tmp_path_factory):
    """The whole pipeline twice, each with its own run folder and empty cache."""
    from runner.evaluate import EvalOptions, run_evaluation

    outs = []
    for i in range(2):
        root = tmp_path_factory.mktemp(f"run{i}")
        options = EvalOptions(device="cpu", workers=0, analyses=[], cache_dir=root / "cache", progress=False)
        run_evaluation(TASK_ID, "pixels", demo_data_dir, root / "out", options, registry)
        outs.append(root / "out" / TASK_ID)
    return outs


def test_manifests_are_byte_identical(two_runs):
    a, b = two_runs
    assert (a / "manifest.parquet").read_bytes() == (b / "manifest.parquet").read_bytes()
    assert (a / "exclusions.csv").read_bytes() == (b / "exclusions.csv").read_bytes()
    meta_a, meta_b = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert meta_a.pop("created_at") and meta_b.pop("created_at")
    assert meta_a == meta_b


def test_predictions_and_metrics_are_identical(two_runs):
    a, b = (d / "pixels" for d in two_runs)
    assert (a / "predictions.parquet").read_bytes() == (b / "predictions.parquet").read_bytes()
    result_a, result_b = (json.loads((d / "result.json").read_text()) for d in (a, b))
    for key in VOLATILE:
        result_a.pop(key, None), result_b.pop(key, None)
    assert result_a == result_b
    assert result_a["metrics"]["auroc"]["mean"] is not None  # a real number was computed, not two equal nulls


@pytest.mark.parametrize("encoder_id", BUILTIN_ENCODERS)
def test_builtin_embeddings_are_byte_identical(encoder_id, registry, two_runs, demo_data_dir, tmp_path):
    """Each built-in encoder, built afresh and run twice on the manifest (cold caches): the same bytes."""
    from runner.embed.cache import EmbeddingCache
    from runner.embed.embedding import embed_manifest
    from runner.encoders import load_encoder
    from runner.sample.manifest import read_manifest

    frame = read_manifest(two_runs[0]).frame.iloc[:24]
    card = registry.encoders[encoder_id]
    arrays = []
    for i, workers in enumerate((0, 2) if encoder_id == "pixels" else (0, 0)):  # worker count must not matter either
        encoder = load_encoder(card.data, device="cpu")
        cache = EmbeddingCache(card.sha256, encoder.contract, root=tmp_path / f"cache{i}")
        out = embed_manifest(frame, demo_data_dir, "demo-cxr", encoder, cache, workers=workers, progress=False)
        assert out.n_computed == len(frame)  # really computed, not read from a shared cache
        arrays.append(out)
    assert arrays[0].image_ids == arrays[1].image_ids
    assert arrays[0].original.shape == (len(arrays[0].image_ids), card.data["embedding"]["dim"])
    assert arrays[0].original.tobytes() == arrays[1].original.tobytes()
    assert np.isfinite(arrays[0].original).all()
