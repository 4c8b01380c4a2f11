"""The built-in encoders: shapes match their cards, random-cnn is seeded, cards and code cannot drift apart."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from runner.encoders import EncoderError, load_encoder


@pytest.fixture(scope="module")
def cards():
    from registry.cards import load_registry

    reg = load_registry()
    return {name: reg.encoders[name].data for name in ("pixels", "random-cnn", "radiomics")}


def images(n=3, size=96, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    return [np.clip(0.3 + 0.4 * xx * yy + 0.1 * rng.random((size, size)), 0, 1).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("name", ["pixels", "random-cnn", "radiomics"])
def test_embeddings_have_the_cards_shape_and_are_finite(cards, name):
    enc = load_encoder(cards[name], device="cpu")
    batch = np.stack([enc.prepare(img) for img in images()])
    out = enc.embed(batch)
    assert out.shape == (3, cards[name]["embedding"]["dim"]) and out.dtype == np.float32
    assert np.isfinite(out).all()
    flat = np.full((96, 96), 0.5, dtype=np.float32)  # a constant image: no texture, zero std
    assert np.isfinite(enc.embed(enc.prepare(flat)[None])).all()


def test_pixels_is_the_resized_image(cards):
    enc = load_encoder(cards["pixels"], device="cpu")
    img = images(1)[0]
    prepared = enc.prepare(img)
    np.testing.assert_array_equal(enc.embed(prepared[None])[0], prepared.ravel())


def test_random_cnn_is_fixed_by_its_seed(cards):
    import torch

    batch = np.stack([load_encoder(cards["random-cnn"], device="cpu").prepare(img) for img in images()])
    torch.manual_seed(123)  # the global RNG must not matter
    a = load_encoder(cards["random-cnn"], device="cpu").embed(batch)
    torch.manual_seed(999)
    b = load_encoder(cards["random-cnn"], device="cpu").embed(batch)
    np.testing.assert_array_equal(a, b)
    other = copy.deepcopy(cards["random-cnn"])
    other["seed"] = 1
    assert not np.allclose(a, load_encoder(other, device="cpu").embed(batch))


@pytest.mark.parametrize("name", ["pixels", "random-cnn", "radiomics"])
def test_a_card_whose_dim_disagrees_with_the_adapter_is_refused(cards, name):
    bad = copy.deepcopy(cards[name])
    bad["embedding"]["dim"] += 1
    with pytest.raises(EncoderError, match="embedding.dim"):
        load_encoder(bad, device="cpu")


def test_radiomics_sees_brightness(cards):
    enc = load_encoder(cards["radiomics"], device="cpu")
    img = images(1)[0]
    brighter = np.clip(img + 0.2, 0, 1)
    a, b = enc.embed(np.stack([enc.prepare(img), enc.prepare(brighter)]))
    assert b[0] > a[0]  # feature 0 is the mean intensity
