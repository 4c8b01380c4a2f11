"""CXR Foundation adapter against signature-compatible TensorFlow SavedModels built here (the real ones are gated)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest

from registry.cards import load_card
from runner.encoders import EncoderError, load_encoder
from runner.encoders.cxr_foundation import (
    decode_png16,
    example_bytes,
    import_tensorflow,
    png16_bytes,
    to_uint16,
)

try:  # through the adapter's import, which keeps TensorFlow and triton (torch) in one process
    tf = import_tensorflow()
except ImportError:
    pytest.skip("CXR Foundation needs the `tf` extra (pip install -e '.[tf]'); tensorflow is not importable",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
OFFSET = 1e-6  # feature_maps_0[..., k] = image mean + k * OFFSET, k the flat index


class _ElixrC(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="input_example")])
    def serve(self, input_example):
        parsed = tf.io.parse_single_example(input_example[0], {
            "image/encoded": tf.io.FixedLenFeature([], tf.string), "image/format": tf.io.FixedLenFeature([], tf.string)})
        tf.debugging.assert_equal(parsed["image/format"], tf.constant("png"))
        pixels = tf.io.decode_png(parsed["image/encoded"], channels=1, dtype=tf.uint16)
        mean = tf.reduce_mean(tf.cast(pixels, tf.float32)) / 65535.0
        ramp = tf.reshape(tf.range(8 * 8 * 1376, dtype=tf.float32) * OFFSET, [1, 8, 8, 1376])
        return {"feature_maps_0": mean + ramp}


class _QFormer(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1376], tf.float32, name="image_feature"),
                                  tf.TensorSpec([None, 1, 128], tf.int32, name="ids"),
                                  tf.TensorSpec([None, 1, 128], tf.float32, name="paddings")])
    def serve(self, image_feature, ids, paddings):
        pooled = tf.reduce_mean(image_feature, axis=[1, 2])  # (B, 1376)
        text = tf.cast(tf.reduce_sum(ids), tf.float32) + tf.reduce_sum(paddings)  # 0 for the empty text
        token = tf.range(32, dtype=tf.float32)[None, :, None]
        # ELIXR-B's text side: here the sum of the ids that are not padding, plus the output position
        kept = tf.reduce_sum(tf.cast(ids, tf.float32) * (1.0 - paddings), axis=[1, 2])  # (B,)
        return {"img_emb": pooled[:, None, :768] + token + text,
                "all_contrastive_img_emb": pooled[:, None, :128] - token + text,
                "contrastive_txt_emb": kept[:, None, None] + tf.range(128, dtype=tf.float32)[None, None, :]}


class _ElixrCBatched(tf.Module):
    """The same features as _ElixrC for every Example of a batch (images of different sizes: one map_fn step each)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="input_example")])
    def serve(self, input_example):
        parsed = tf.io.parse_example(input_example, {
            "image/encoded": tf.io.FixedLenFeature([], tf.string), "image/format": tf.io.FixedLenFeature([], tf.string)})
        tf.debugging.assert_equal(parsed["image/format"], tf.constant("png"))

        def mean_of(png):
            return tf.reduce_mean(tf.cast(tf.io.decode_png(png, channels=1, dtype=tf.uint16), tf.float32)) / 65535.0

        means = tf.map_fn(mean_of, parsed["image/encoded"], fn_output_signature=tf.float32)
        ramp = tf.reshape(tf.range(8 * 8 * 1376, dtype=tf.float32) * OFFSET, [1, 8, 8, 1376])
        return {"feature_maps_0": means[:, None, None, None] + ramp}


class _ElixrCFixedBatch(_ElixrC):
    """A signature traced for batch 1 only."""

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string, name="input_example")])
    def serve(self, input_example):
        return _ElixrC.serve.python_function(self, input_example)


def _save_snapshot(root, image_module):
    for name, module in (("elixr-c-v2-pooled", image_module), ("pax-elixr-b-text", _QFormer())):
        tf.saved_model.save(module, str(root / name), signatures={"serving_default": module.serve})
    return root


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """ELIXR-C that reads item 0 of its batch only (declares [None] but is a batch-1 graph): the fallback case."""
    return _save_snapshot(tmp_path_factory.mktemp("cxr-foundation"), _ElixrC())


@pytest.fixture(scope="module")
def batched_snapshot(tmp_path_factory):
    return _save_snapshot(tmp_path_factory.mktemp("cxr-foundation-batched"), _ElixrCBatched())


def _card(**embedding):
    card = copy.deepcopy(load_card(ROOT / "encoders" / "cxr-foundation.yaml").data)
    card["embedding"].update(embedding)
    return card


def _expected_img_emb(image01):
    u16 = to_uint16(image01)
    mean = u16.astype(np.float64).mean() / 65535.0
    per_channel = mean + (31.5 * 1376 + np.arange(768)) * OFFSET  # mean over the 64 positions of the ramp
    return per_channel + 15.5  # mean of the 32 token offsets


def _image(seed, h=64, w=48):
    return np.random.default_rng(seed).uniform(0.1, 0.9, (h, w)).astype(np.float32)


def test_png16_and_example_round_trip_bit_exact():
    pixels = np.random.default_rng(0).integers(0, 65536, (37, 53), dtype=np.uint16)
    pixels[0, 0], pixels[0, 1] = 0, 65535
    png = png16_bytes(pixels)
    np.testing.assert_array_equal(decode_png16(png), pixels)
    parsed = tf.train.Example.FromString(example_bytes(png)).features.feature
    assert parsed["image/format"].bytes_list.value == [b"png"]
    assert parsed["image/encoded"].bytes_list.value[0] == png
    decoded = tf.io.decode_png(parsed["image/encoded"].bytes_list.value[0], dtype=tf.uint16).numpy()[..., 0]
    np.testing.assert_array_equal(decoded, pixels)  # TensorFlow reads back the same 16-bit values


@pytest.mark.parametrize("shape", [(1, 1), (64, 80), (3, 700), (511, 2)])
def test_png_is_stored_uncompressed_and_decodes_identically(shape):
    import zlib

    pixels = np.random.default_rng(shape[1]).integers(0, 65536, shape, dtype=np.uint16)
    pixels.flat[0], pixels.flat[-1] = 0, 65535
    png = png16_bytes(pixels)
    np.testing.assert_array_equal(decode_png16(png), pixels)  # Pillow
    np.testing.assert_array_equal(tf.io.decode_png(png, dtype=tf.uint16).numpy()[..., 0], pixels)  # TensorFlow
    idat = png.index(b"IDAT")
    stream = png[idat + 4:idat + 4 + int.from_bytes(png[idat - 4:idat], "big")]
    assert stream[:2] == b"\x78\x01"  # zlib header of a level-0 stream
    raw_len = shape[0] * (1 + shape[1] * 2)  # one filter byte per row + 16-bit samples
    assert len(zlib.decompress(stream)) == raw_len and len(stream) > raw_len  # stored, not deflated


def test_png_of_bad_arrays_is_a_clear_error():
    with pytest.raises(EncoderError, match="2-D uint16"):
        png16_bytes(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(EncoderError, match="empty image"):
        png16_bytes(np.zeros((0, 4), dtype=np.uint16))


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 70_000, 3_000_000])
def test_example_bytes_equal_tensorflow_serialisation(size):
    png = bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8))
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
    }
    reference = tf.train.Example(features=tf.train.Features(feature=feature))
    ours = example_bytes(png)
    assert ours == reference.SerializeToString(deterministic=True)
    assert tf.train.Example.FromString(ours) == reference


def test_prepare_imports_no_tensorflow(tmp_path):
    # decode workers run `prepare` on a prepare-only instance; TensorFlow must stay out of them
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from registry.cards import load_card\n"
        "from runner.encoders.cxr_foundation import CXRFoundationEncoder\n"
        f"card = load_card({str(ROOT / 'encoders' / 'cxr-foundation.yaml')!r}).data\n"
        "enc = CXRFoundationEncoder.prepare_only(card)\n"
        "out = enc.prepare(np.random.default_rng(0).uniform(size=(32, 32)).astype(np.float32))\n"
        "assert out.dtype == object and len(bytes(out[()])) > 2048\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch', 'keras')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_uint16_rescale_uses_the_full_range():
    u16 = to_uint16(np.array([[0.2, 0.4], [0.6, 0.2]], dtype=np.float32))
    assert u16.min() == 0 and u16.max() == 65535 and u16.dtype == np.uint16
    assert not to_uint16(np.full((3, 3), 0.5)).any()


def test_adapter_runs_the_signatures_and_mean_pools(snapshot):
    enc = load_encoder(_card(), device="cpu", weights_dir=snapshot)
    images = [_image(1), _image(2, 40, 70)]  # different sizes: kept at native resolution, stacked as objects
    batch = np.stack([enc.prepare(im) for im in images])
    assert batch.shape == (2,) and batch.dtype == object
    out = enc.embed(batch)
    assert out.shape == (2, 768) and out.dtype == np.float32
    for row, im in zip(out, images):
        np.testing.assert_allclose(row, _expected_img_emb(im), rtol=0, atol=1e-4)
    assert not np.allclose(out[0], out[1])


def test_contrastive_output_option(snapshot):
    enc = load_encoder(_card(output="all_contrastive_img_emb", dim=128), device="cpu", weights_dir=snapshot)
    out = enc.embed(np.stack([enc.prepare(_image(3))]))
    assert out.shape == (1, 128)


def test_wrong_output_name_and_dim_are_clear_errors(snapshot):
    enc = load_encoder(_card(output="nope"), device="cpu", weights_dir=snapshot)
    with pytest.raises(EncoderError, match="'nope' not found"):
        enc.embed(np.stack([enc.prepare(_image(4))]))
    enc = load_encoder(_card(dim=512), device="cpu", weights_dir=snapshot)
    with pytest.raises(EncoderError, match="card says dim 512"):
        enc.embed(np.stack([enc.prepare(_image(4))]))


def test_missing_savedmodel_is_a_weights_error(tmp_path):
    from runner.encoders import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="elixr-c-v2-pooled"):
        load_encoder(_card(), device="cpu", weights_dir=tmp_path)


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "MR2_UNCR.dcm"])
def test_dicoms_reach_the_png_without_the_reference_window_crash(name):
    # RG1_UNCR: the real MONOCHROME1 chest CR. MR2_UNCR: Rescale Slope 3.77 + a VOI window, the combination on which
    # Google's client calls np.iinfo(float64) and crashes; runner.data.imaging windows in float instead.
    from pydicom.data import get_testdata_file

    from runner.data.imaging import load_image
    from runner.encoders.base import Encoder
    from runner.encoders.cxr_foundation import CXRFoundationEncoder

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not in the installed pydicom test data")
    enc = CXRFoundationEncoder.__new__(CXRFoundationEncoder)  # prepare-only, as runner.embed.cpu_pool builds it in workers
    Encoder.__init__(enc, _card(), device="cpu")
    image = load_image(path)
    example = tf.train.Example.FromString(bytes(enc.prepare(image)[()]))
    decoded = decode_png16(example.features.feature["image/encoded"].bytes_list.value[0])
    assert decoded.shape == image.shape and decoded.min() == 0 and decoded.max() == 65535
    np.testing.assert_array_equal(decoded, to_uint16(image))


def test_batched_calls_equal_per_image_calls(batched_snapshot, caplog):
    enc = load_encoder(_card(), device="cpu", weights_dir=batched_snapshot)
    images = [_image(10 + i, 40 + 3 * i, 70 - 2 * i) for i in range(5)]
    batch = np.stack([enc.prepare(im) for im in images])
    with caplog.at_level("WARNING", logger="runner.encoders.cxr_foundation"):
        batched = enc.embed(batch)
    assert enc._batched is True and not caplog.records
    per_image = np.concatenate([enc.embed(batch[i:i + 1]) for i in range(len(images))])
    np.testing.assert_array_equal(batched, per_image)
    for row, im in zip(batched, images):
        np.testing.assert_allclose(row, _expected_img_emb(im), rtol=0, atol=1e-4)


def test_a_batch_one_graph_falls_back_with_one_line(snapshot, caplog):
    enc = load_encoder(_card(), device="cpu", weights_dir=snapshot)
    images = [_image(20 + i) for i in range(3)]
    batch = np.stack([enc.prepare(im) for im in images])
    with caplog.at_level("WARNING", logger="runner.encoders.cxr_foundation"):
        out = enc.embed(batch)
        enc.embed(batch)
    assert enc._batched is False
    assert [r.getMessage() for r in caplog.records] == [
        "CXR Foundation: batched call unusable (1 outputs for 3 inputs); falling back to one model call per image"]
    for row, im in zip(out, images):
        np.testing.assert_allclose(row, _expected_img_emb(im), rtol=0, atol=1e-4)


def test_a_signature_without_batch_dimension_is_called_per_image(tmp_path, caplog):
    root = _save_snapshot(tmp_path, _ElixrCFixedBatch())
    with caplog.at_level("INFO", logger="runner.encoders.cxr_foundation"):
        enc = load_encoder(_card(), device="cpu", weights_dir=root)
    assert enc._batched is False
    assert any("no batch dimension" in r.getMessage() for r in caplog.records)
    images = [_image(30), _image(31, 50, 50)]
    out = enc.embed(np.stack([enc.prepare(im) for im in images]))
    for row, im in zip(out, images):
        np.testing.assert_allclose(row, _expected_img_emb(im), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------- text tower (zero-shot)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "pleural", "effusion", "no", "fluid", "##s"]


def test_the_text_tower_tokenises_as_googles_client_and_reads_contrastive_txt_emb(snapshot):
    """Lower-cased WordPiece ids, [SEP] dropped to 0 with padding 1, paddings = 1 - mask (Google's client); the
    QFormer here returns the sum of the ids it is told are not padding, so the ids it got are checked."""
    (snapshot / "bert_en_uncased_preprocess" / "assets").mkdir(parents=True, exist_ok=True)
    (snapshot / "bert_en_uncased_preprocess" / "assets" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    card = copy.deepcopy(load_card(ROOT / "encoders" / "cxr-foundation-contrastive.yaml").data)
    encoder = load_encoder(card, device="cpu", weights_dir=snapshot)
    got = encoder.embed_text(["Pleural Effusions", "no fluid"])
    cls, pleural, effusion, s, no, fluid = (VOCAB.index(t) for t in ("[CLS]", "pleural", "effusion", "##s", "no",
                                                                      "fluid"))
    assert got.shape == (2, 128) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0], [cls + pleural + effusion + s, cls + no + fluid])  # [SEP] left out
    np.testing.assert_allclose(got[0, 1:] - got[0, :-1], 1.0)


def test_a_missing_bert_vocabulary_is_one_line_naming_it(snapshot, tmp_path):
    empty = tmp_path / "snapshot"
    shutil.copytree(snapshot / "elixr-c-v2-pooled", empty / "elixr-c-v2-pooled")
    shutil.copytree(snapshot / "pax-elixr-b-text", empty / "pax-elixr-b-text")
    card = copy.deepcopy(load_card(ROOT / "encoders" / "cxr-foundation-contrastive.yaml").data)
    encoder = load_encoder(card, device="cpu", weights_dir=empty)
    with pytest.raises(EncoderError, match="tokenizer file bert_en_uncased_preprocess/assets/vocab.txt not found") \
            as caught:
        encoder.embed_text(["effusion"])
    assert "\n" not in str(caught.value)
