"""The Ray backend (local Ray, 2 CPUs) gives the local backend's embeddings, exclusions and cache entries."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest

# find_spec, not importorskip: importing ray at collection cost every xdist worker ~0.3 CPU-s for this one test
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")

# Before the other files (tests/conftest.py): on a busy machine Ray's actor processes take minutes to start (mostly
# waiting, not computing); early, that wait overlaps the other files instead of ending the session.
RUN_EARLY = True


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from runner.embed.ray_pool import ensure_ray

    started = not ray.is_initialized()
    yield ensure_ray(2)
    if started:
        ray.shutdown()


def test_ray_backend_equals_local_backend(local_ray, demo_data_dir, tmp_path, monkeypatch):
    from registry.cards import load_registry
    from runner.embed.cache import EmbeddingCache
    from runner.embed.embedding import embed_manifest
    from runner.encoders import load_encoder

    meta = pd.read_csv(demo_data_dir / "metadata.csv")
    corrupt = {c["path"] for c in pd.read_json(demo_data_dir / "demo_data.json", typ="series")["corrupt"]}
    manifest = pd.concat([meta.head(12), meta[meta["path"].isin(corrupt)].head(2)]).drop_duplicates("image_id")
    card = load_registry().encoders["random-cnn"]
    encoder = load_encoder(card.data, device="cpu")

    def cache(name):
        return EmbeddingCache(card.sha256, encoder.contract, root=tmp_path / name)

    local = embed_manifest(manifest, demo_data_dir, "demo", encoder, cache("local"), workers=0, batch_size=4,
                           progress=False)
    remote = embed_manifest(manifest, demo_data_dir, "demo", encoder, cache("ray"), batch_size=4, progress=False,
                            backend="ray")
    assert remote.image_ids == local.image_ids and len(remote.image_ids) == len(manifest) - 2
    assert remote.exclusions == local.exclusions and len(remote.exclusions) == 2
    np.testing.assert_allclose(remote.original, local.original, rtol=0, atol=1e-6)
    # Same cache keys: the local backend finds everything Ray wrote, its recorded decode failures included.
    again = embed_manifest(manifest, demo_data_dir, "demo", encoder, cache("ray"), workers=0, progress=False)
    assert again.n_computed == 0 and again.exclusions == remote.exclusions
    np.testing.assert_array_equal(again.original, remote.original)
    # A local Ray's workers run at this process's priority, not Ray's default niceness 15 (runner.embed.ray_pool).
    # (a lambda: Ray sends it by value; the workers cannot import this test module)
    niceness = local_ray.get(local_ray.remote(lambda: __import__("os").nice(0)).remote())
    assert niceness == os.nice(0)
