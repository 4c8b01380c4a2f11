"""CXR Foundation adapter against signature-compatible TensorFlow SavedModels built here (the real ones are gated)."""

from __future__ import annotations

import copy
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from registry.cards import load_card
from runner.encoders import EncoderError, load_encoder
from runner.encoders.cxr_foundation import (
    decode_png16,
    example_bytes,
    png16_bytes,
    to_uint16,
)
from tests.support import Deferred

if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("CXR Foundation needs the `tf` extra (pip install -e '.[tf]'); tensorflow is not importable",
                allow_module_level=True)


def _import_models():
    # Through the adapter's import, which keeps TensorFlow and triton (torch) in one process. Deferred to the first
    # test that uses it: importing TensorFlow costs ~7 CPU-s, and every pytest-xdist worker collects this module.
    import cxr_foundation_models

    return cxr_foundation_models


models = Deferred(_import_models)
tf = Deferred(lambda: _import_models().tf)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """ELIXR-C that reads item 0 of its batch only (declares [None] but is a batch-1 graph): the fallback case."""
    return models.save_snapshot(tmp_path_factory.mktemp("cxr-foundation"), models.ElixrC())


@pytest.fixture(scope="module")
def batched_snapshot(tmp_path_factory):
    return models.save_snapshot(tmp_path_factory.mktemp("cxr-foundation-batched"), models.ElixrCBatched())


def _card(name="cxr-foundation-native", **embedding):
    """The native-resolution card (images keep their size, so the expected values are easy to state)."""
    card = copy.deepcopy(load_card(ROOT / "encoders" / f"{name}.yaml").data)
    card["embedding"].update(embedding)
    return card


def _expected_img_emb(image01):
    return models.expected_img_emb(to_uint16(image01))


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
    root = models.save_snapshot(tmp_path, models.ElixrCFixedBatch())
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


# --------------------------------------------------------------------------------------------------------------------
# the paper's 1024 x 1024 card and the native-resolution card


def _decoded_png(encoder, image) -> np.ndarray:
    example = tf.train.Example.FromString(bytes(encoder.prepare(image)[()]))
    return decode_png16(example.features.feature["image/encoded"].bytes_list.value[0])


def test_paper_card_resizes_to_1024_and_the_native_card_keeps_the_size():
    from registry.cards import load_registry
    from runner.data.imaging import to_encoder_input
    from runner.encoders.cxr_foundation import CXRFoundationEncoder

    image = _image(5, 300, 200)
    paper = CXRFoundationEncoder.prepare_only(_card("cxr-foundation"))
    native = CXRFoundationEncoder.prepare_only(_card())
    assert _decoded_png(native, image).shape == (300, 200)
    resized = to_encoder_input(image, {"size": 1024, "channels": 1, "interpolation": "bilinear", "bit_depth": 16,
                                       "normalize": "none"})[0]
    np.testing.assert_array_equal(_decoded_png(paper, image), to_uint16(resized))  # 1024 x 1024, then 16 bits
    reg = load_registry()
    assert reg.encoders["cxr-foundation"].spec.preprocess.size == (1024, 1024)
    assert reg.encoders["cxr-foundation"].behaviour_sha256 != reg.encoders["cxr-foundation-native"].behaviour_sha256


# --------------------------------------------------------------------------------------------------------------------
# Google's client, step by step (Google-Health/cxr-foundation, python/data_processing: _apply_pydicom_prep and
# _process_xray_image_array_to_tf_example), written out here from its description


def _client_pixels(ds) -> np.ndarray:
    """The 16-bit image the client puts in its PNG, for a DICOM it can read.

    1. modality LUT (pydicom's apply_modality_lut);
    2. when the DICOM has WindowCenter/WindowWidth: clip to [center - width/2, center - 1 + width/2] and map that
       linearly onto [0, largest value of the array's integer type], cast back to that type;
    3. MONOCHROME1: subtract every pixel from the image's maximum;
    4. shift to an unsigned type: int16 minus its minimum; a float image minus its minimum (scaled down to 65535 if
       larger), as uint16;
    5. not uint8: map [min, max] linearly onto [0, 65535] and cast (truncating) to uint16.
    """
    from pydicom.pixels import apply_modality_lut

    pixels = apply_modality_lut(ds.pixel_array, ds)
    if "WindowWidth" in ds and "WindowCenter" in ds:
        low = float(ds.WindowCenter) - float(ds.WindowWidth) / 2
        high = float(ds.WindowCenter) - 1 + float(ds.WindowWidth) / 2
        top = np.iinfo(pixels.dtype).max
        pixels = np.interp(pixels.clip(low, high), (low, high), (0, top)).astype(pixels.dtype)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        pixels = pixels.max() - pixels
    if pixels.dtype == np.int16:
        pixels = (pixels.astype(np.int32) - pixels.min()).astype(np.uint16)
    elif pixels.dtype.kind == "f":
        pixels = pixels - pixels.min()
        if pixels.max() > 65535:
            pixels = np.minimum(pixels * (65535 / pixels.max()), 65535)
        pixels = pixels.astype(np.uint16)
    return np.interp(pixels, (pixels.min(), pixels.max()), (0, 65535)).astype(np.uint16)


def _dicom_cases(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    cases = {}
    for name in ("RG1_UNCR.dcm", "CT_small.dcm"):  # MONOCHROME1 CR with a window; signed CT with a rescale
        path = get_testdata_file(name)
        if path is not None:
            cases[name] = path
    if "RG1_UNCR.dcm" in cases:  # a narrow window that clips at both ends, MONOCHROME2
        ds = pydicom.dcmread(cases["RG1_UNCR.dcm"])
        ds.WindowCenter, ds.WindowWidth, ds.PhotometricInterpretation = 12000, 8000, "MONOCHROME2"
        ds.save_as(tmp_path / "narrow-window.dcm")
        cases["narrow-window"] = tmp_path / "narrow-window.dcm"
    if not cases:
        pytest.skip("pydicom-data's test DICOMs are not installed")
    return cases


def test_png_and_example_follow_googles_client_for_the_same_dicom(tmp_path):
    import struct

    import pydicom

    from runner.data.imaging import load_image
    from runner.encoders.cxr_foundation import CXRFoundationEncoder

    native = CXRFoundationEncoder.prepare_only(_card())
    for name, path in _dicom_cases(tmp_path).items():
        client = _client_pixels(pydicom.dcmread(path))
        example = tf.train.Example.FromString(bytes(native.prepare(load_image(path))[()]))
        features = example.features.feature
        assert set(features) == {"image/encoded", "image/format"}, name
        assert features["image/format"].bytes_list.value == [b"png"], name
        png = features["image/encoded"].bytes_list.value[0]
        width, height, depth, colour = struct.unpack(">IIBB", png[16:26])  # IHDR
        assert (height, width, depth, colour) == (*client.shape, 16, 0), name  # 16-bit greyscale, same size
        ours = decode_png16(png).astype(np.int64)
        assert ours.min() == 0 and ours.max() == 65535, name
        # The same image up to quantisation: the client rounds the window to integer levels and truncates its
        # rescale; this adapter windows in float and rounds (measured: at most 1 level of 65535 on these three).
        diff = np.abs(ours - client)
        assert diff.max() <= 2 and diff.mean() < 1.0, (name, diff.max(), diff.mean())


# --------------------------------------------------------------------------------------------------------------------
# the batched-call check at GPU tolerance, tensorflow_text, the device TensorFlow really uses


def test_gpu_sized_batch_noise_keeps_the_batched_path(tmp_path, caplog):
    from runner.encoders.cxr_foundation import BATCH_CHECK_RTOL, relative_difference

    enc = load_encoder(_card(), device="cpu", weights_dir=models.save_snapshot(tmp_path, models.ElixrCNoisy()))
    batch = np.stack([enc.prepare(_image(40 + i)) for i in range(4)])
    with caplog.at_level("WARNING", logger="runner.encoders.cxr_foundation"):
        batched = enc.embed(batch)
    assert enc._batched is True and not caplog.records
    single = enc.embed(batch[-1:])
    # ~1e-3 apart (GPU-like): the old 1e-5 check would have fallen back to one call per image for good
    assert 1e-5 < relative_difference(batched[-1], single[0]) < BATCH_CHECK_RTOL


def test_a_graph_that_mixes_items_falls_back_with_one_line_naming_the_difference(tmp_path, caplog):
    enc = load_encoder(_card(), device="cpu", weights_dir=models.save_snapshot(tmp_path, models.ElixrCFirstItem()))
    images = [np.full((40, 40), 0.1, np.float32), _image(50)]
    images[0][0, 0] = 0.9  # a dark image beside a mid-grey one: different means, different features
    batch = np.stack([enc.prepare(im) for im in images])
    with caplog.at_level("WARNING", logger="runner.encoders.cxr_foundation"):
        out = enc.embed(batch)
    assert enc._batched is False
    [record] = caplog.records
    assert "batched output differs from a per-image call by" in record.getMessage()
    assert "more than 1e-02" in record.getMessage()
    for row, im in zip(out, images):  # the per-image fallback is right
        np.testing.assert_allclose(row, _expected_img_emb(im), rtol=0, atol=1e-4)


def test_tensorflow_text_is_imported_before_loading():
    import sys

    pytest.importorskip("tensorflow_text")
    from runner.encoders.tf_runtime import import_tensorflow

    import_tensorflow()
    assert "tensorflow_text" in sys.modules


def test_unregistered_op_without_tensorflow_text_says_what_to_install(monkeypatch, tmp_path):
    import runner.encoders.cxr_foundation as adapter

    class FakeSavedModel:
        @staticmethod
        def load(path):
            raise ValueError("Op type not registered 'SentencepieceOp' in binary running on this host.\nmore")

    class FakeTF:
        saved_model = FakeSavedModel

    enc = adapter.CXRFoundationEncoder.prepare_only(_card())
    monkeypatch.setattr(adapter, "has_tensorflow_text", lambda: False)
    with pytest.raises(EncoderError, match="Op type not registered .*install tensorflow-text"):
        enc._load(FakeTF, tmp_path)
    monkeypatch.setattr(adapter, "has_tensorflow_text", lambda: True)
    with pytest.raises(EncoderError) as err:
        enc._load(FakeTF, tmp_path)
    assert "install tensorflow-text" not in str(err.value)


def test_the_result_names_the_device_tensorflow_used(batched_snapshot):
    enc = load_encoder(_card(), device="cpu", weights_dir=batched_snapshot)
    assert enc.devices_used() == {"tensorflow": "cpu"} and enc.tf_device.scope == "/CPU:0"


def test_device_cuda_without_a_gpu_tensorflow_sees_is_one_clear_line(batched_snapshot):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees a GPU here")
    with pytest.raises(EncoderError) as err:
        load_encoder(_card(), device="cuda", weights_dir=batched_snapshot)
    message = str(err.value)
    assert "\n" not in message and f"TensorFlow {tf.version.VERSION} sees no GPU" in message
    assert "--device cpu" in message and "runner doctor" in message
