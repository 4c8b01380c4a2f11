"""The fast path (read on CPU, preprocess on the device) gives the CPU path's images; run here on torch's CPU device.

Tolerance, in units of the [0, 1] image (the normalised output's difference divided by the normalisation's gain):
  * float and 16-bit contracts: max abs diff <= 1e-5. Both paths apply Pillow's own resampling weights; what remains is
    float32 vs float64 LUT arithmetic and summation order (seen: <= 3e-7).
  * 8-bit contracts: Pillow resizes in uint8 with 22-bit fixed-point weights and rounds the intermediate image; the device
    computes the same filter in float32 and rounds alike, so a pixel whose exact value lies within ~1e-6 of a .5 boundary
    can round the other way: at most one grey level (1/255) on at most 0.5% of pixels (seen: <= 0.25% on the small
    windowed synthetic images, <= 0.02% on the real 1955x1841 CR).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from runner.data.imaging import load_image, to_encoder_input
from runner.embed.device.preprocess import DevicePreprocessor, resize_weights
from runner.embed.device.read import read_raw
from tests.support import stored_pixels, write_dicom

CONTRACTS = {
    "area-zscore-float": {"size": 48, "channels": 1, "interpolation": "area", "normalize": "zscore", "bit_depth": "float"},
    "bilinear-xrv-float": {"size": 40, "channels": 1, "interpolation": "bilinear", "normalize": "xrv",
                           "bit_depth": "float"},
    "bicubic-meanstd-8bit": {"size": 56, "channels": 3, "interpolation": "bicubic", "bit_depth": 8,
                             "normalize": {"mean": [0.5307] * 3, "std": [0.2583] * 3}},
    "bicubic-imagenet-16bit": {"size": [36, 44], "channels": 3, "interpolation": "bicubic", "normalize": "imagenet",
                               "bit_depth": 16},
    "nearest-none-upsample": {"size": 150, "channels": 1, "interpolation": "nearest", "normalize": "none",
                              "bit_depth": "float"},
}


def _gain(contract: dict, reference: np.ndarray, image: np.ndarray) -> float:
    """How much one unit of the [0, 1] image moves the normalised output."""
    normalize = contract["normalize"]
    if normalize == "xrv":
        return 2048.0
    if normalize == "imagenet":
        return 1 / 0.224  # smallest ImageNet std
    if isinstance(normalize, dict):
        return 1 / min(normalize["std"])
    if normalize == "zscore":
        return 1 / max(float(to_encoder_input(image, {**contract, "normalize": "none"}).std()), 1e-6)
    return 1.0


def assert_same_images(path, contract: dict) -> None:
    image = load_image(path)
    expected = to_encoder_input(image, contract)
    got = DevicePreprocessor(contract, "cpu")([read_raw(path)])[0].numpy()
    assert got.shape == expected.shape
    diff = np.abs(got - expected) / _gain(contract, expected, image)
    if contract["bit_depth"] == 8:
        assert diff.max() <= 1 / 255 + 1e-5
        assert (diff > 1e-5).mean() <= 5e-3
    else:
        assert diff.max() <= 1e-5


SYNTHETIC = {
    "mono2-plain-u16": ({}, np.uint16, 100, 4000),
    "mono1-rescale-window": ({"photometric": "MONOCHROME1", "bits_stored": 12, "RescaleSlope": 0.684, "RescaleIntercept": 200,
                                  "WindowCenter": 1200, "WindowWidth": 1800}, np.uint16, 50, 4000),
    "mono2-negative-intercept-narrow-window": ({"RescaleSlope": 2.0, "RescaleIntercept": -1024, "WindowCenter": 2500,
                                                    "WindowWidth": 2000}, np.uint16, 0, 4095),
    "linear-exact-window": ({"WindowCenter": [900, 100], "WindowWidth": [700, 50], "VOILUTFunction": "LINEAR_EXACT"},
                            np.uint16, 0, 2000),
    "sigmoid-window": ({"WindowCenter": 1000, "WindowWidth": 900, "VOILUTFunction": "SIGMOID"}, np.uint16, 0, 2000),
    "signed-int16-mono1": ({"photometric": "MONOCHROME1", "RescaleSlope": 1.0, "RescaleIntercept": -100}, np.int16,
                           -3000, 3000),
    "uint8": ({}, np.uint8, 10, 240),
}


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fastpath")
    files = {}
    for i, (name, (tags, dtype, lo, hi)) in enumerate(SYNTHETIC.items()):
        files[name] = folder / f"{name}.dcm"
        write_dicom(files[name], stored_pixels((61 + i, 77 - i), dtype, lo, hi, seed=i), **dict(tags))
    from PIL import Image

    files["png-8bit"] = folder / "eight.png"
    Image.fromarray(stored_pixels((70, 50), np.uint8, 0, 255)).save(files["png-8bit"])
    files["png-16bit"] = folder / "sixteen.png"
    Image.fromarray(stored_pixels((50, 66), np.uint16, 0, 60000)).save(files["png-16bit"])
    return files


@pytest.mark.parametrize("contract", list(CONTRACTS), ids=list(CONTRACTS))
@pytest.mark.parametrize("name", [*SYNTHETIC, "png-8bit", "png-16bit"])
def test_fastpath_equals_cpu_path_on_synthetic_files(synthetic_files, name, contract):
    raw = read_raw(synthetic_files[name])
    assert raw.pixels.dtype != np.float32 and raw.pixels.dtype != np.float64  # the fast read, not the fallback
    assert_same_images(synthetic_files[name], CONTRACTS[contract])


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KR.dcm"])
@pytest.mark.parametrize("contract", ["bicubic-meanstd-8bit", "bilinear-xrv-float"])
def test_fastpath_equals_cpu_path_on_real_chest_cr(name, contract):
    data = pytest.importorskip("pydicom.data")
    path = data.get_testdata_file(name)
    raw = read_raw(path)
    assert raw.pixels.dtype == np.uint16 and raw.invert and raw.window[:2] == (15000.0, 30000.0)
    assert_same_images(path, CONTRACTS[contract])


def test_batched_preprocessing_equals_one_at_a_time(synthetic_files):
    """Mixed shapes and dtypes in one batch: each image comes out as if alone."""
    contract = CONTRACTS["bicubic-imagenet-16bit"]
    pre = DevicePreprocessor(contract, "cpu")
    raws = [read_raw(p) for p in synthetic_files.values()]
    batch = pre(raws).numpy()
    for i, raw in enumerate(raws):
        np.testing.assert_allclose(batch[i], pre([raw])[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("interpolation", ["area", "bilinear", "bicubic", "nearest"])
def test_resize_weights_are_pillows(interpolation):
    from PIL import Image

    from runner.data.imaging import _quantise_and_resize

    image = np.random.default_rng(1).random((37, 76)).astype(np.float32)  # 76 -> 150: an exact .0 centre
    for out in ((11, 19), (37, 76), (80, 90), (150, 150)):
        expected = _quantise_and_resize(image, "float", out, interpolation)
        got = resize_weights(37, out[0], interpolation) @ image @ resize_weights(76, out[1], interpolation).T
        np.testing.assert_allclose(np.clip(got, 0, 1), expected, atol=2e-6)
    assert Image  # Pillow is the reference implementation


def test_fast_manifest_equals_local_backend_with_exclusions(demo_data_dir, tmp_path):
    """Same ids, same exclusion reasons (corrupt files, a missing one), same embeddings, same cache keys."""
    from registry.cards import load_registry
    from runner.embed.cache import EmbeddingCache
    from runner.embed.embedding import embed_manifest
    from runner.encoders import load_encoder

    meta = pd.read_csv(demo_data_dir / "metadata.csv")
    corrupt = {c["path"] for c in pd.read_json(demo_data_dir / "demo_data.json", typ="series")["corrupt"]}
    manifest = pd.concat([meta[meta["path"].isin(corrupt)], meta.head(20)]).drop_duplicates("image_id")
    manifest = pd.concat([manifest, pd.DataFrame({"image_id": ["ghost"], "path": ["files/none.dcm"]})])
    card = load_registry().encoders["random-cnn"]
    encoder = load_encoder(card.data, device="cpu")

    def run(fn, name, workers):
        cache = EmbeddingCache(card.sha256, encoder.contract, root=tmp_path / name)
        return fn(manifest, demo_data_dir, "demo", encoder, cache, workers=workers, batch_size=8, progress=False), cache

    (local, _), (fast, fast_cache) = run(embed_manifest, "local", 0), run(functools.partial(embed_manifest, backend="device"), "fast", 1)
    assert len(corrupt) >= 2 and len(fast.exclusions) == len(corrupt) + 1
    assert fast.exclusions == local.exclusions
    assert fast.image_ids == local.image_ids and len(fast.image_ids) == len(manifest) - len(fast.exclusions)
    np.testing.assert_allclose(fast.original, local.original, atol=1e-4)
    assert fast_cache.written == len(fast.image_ids)
    again = embed_manifest(manifest, demo_data_dir, "demo", encoder,
                           EmbeddingCache(card.sha256, encoder.contract, root=tmp_path / "fast"), workers=0,
                           progress=False)
    # the fast path's cache entries, failures included, serve the local backend (same keys): nothing is decoded again
    assert again.n_computed == 0 and again.exclusions == fast.exclusions
    np.testing.assert_array_equal(again.original, fast.original)
    (fast_again, _) = run(functools.partial(embed_manifest, backend="device"), "fast", 1)
    assert fast_again.n_computed == 0 and fast_again.exclusions == fast.exclusions


@pytest.mark.parametrize("contract", ["bicubic-meanstd-8bit", "bilinear-xrv-float", "bicubic-imagenet-16bit"])
def test_lookup_table_route_equals_the_elementwise_route(synthetic_files, contract):
    """Integer pixels go through one lookup table per image (the CUDA route); the same stored values as float32 take
    the elementwise chain. Same float32 operations per value, so the same images (up to exp's last bit on the sigmoid window)."""
    from runner.embed.device.batches import group_raws

    pre = DevicePreprocessor(CONTRACTS[contract], "cpu")
    pre.lookup_tables = True  # the CUDA default, forced here
    for name, path in synthetic_files.items():
        raw = read_raw(path)
        assert raw.pixels.dtype.kind in "ui", name  # every synthetic file takes the direct (integer) read
        (group,) = group_raws([raw])
        as_float = group_raws([raw])[0]
        as_float.pixels = torch.from_numpy(raw.pixels.astype(np.float32))[None]
        as_float.unsigned16 = False
        lut = pre.from_groups([group], 1)
        elementwise = pre.from_groups([as_float], 1)
        np.testing.assert_allclose(lut.numpy(), elementwise.numpy(), atol=1e-5 if "sigmoid" in name else 1e-6,
                                   err_msg=name)
