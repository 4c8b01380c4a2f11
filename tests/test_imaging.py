"""runner.data.imaging: DICOM/PNG decoding to [0, 1] MONOCHROME2, decode errors, and the encoder preprocessing contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from runner.data.imaging import ImageDecodeError, load_image, read_view_position, to_encoder_input

CR_WITH_RESCALE = "6154"  # pydicom wheel: 16x16 CR, MONOCHROME1, RescaleSlope 0.684 / Intercept 200, WC/WW


@pytest.fixture(scope="module")
def rg1_uncompressed():
    return load_image(get_testdata_file("RG1_UNCR.dcm"))


def test_real_chest_cr_uncompressed_and_j2k_lossless_decode_identically(rg1_uncompressed):
    j2k = load_image(get_testdata_file("RG1_J2KR.dcm"))
    assert rg1_uncompressed.shape == (1955, 1841)
    assert rg1_uncompressed.dtype == np.float32 and j2k.dtype == np.float32
    assert np.array_equal(rg1_uncompressed, j2k)
    assert rg1_uncompressed.min() == 0.0 and rg1_uncompressed.max() == 1.0


def test_real_chest_cr_monochrome1_is_inverted_lungs_dark(rg1_uncompressed):
    image = rg1_uncompressed
    right_lung = image[400:1000, 360:680].mean()  # regions chosen by viewing the decoded image
    left_lung = image[400:1000, 1160:1480].mean()
    mediastinum = image[600:1400, 860:980].mean()
    assert mediastinum > right_lung + 0.2
    assert mediastinum > left_lung + 0.2


def test_cr_with_rescale_and_window_loads_as_float():
    # This file makes Google's reference window() call np.iinfo on a float array; here it must just work.
    path = get_testdata_file(CR_WITH_RESCALE)
    ds = pydicom.dcmread(path)
    assert "RescaleSlope" in ds and "WindowCenter" in ds and ds.PhotometricInterpretation == "MONOCHROME1"
    image = load_image(path)
    assert image.shape == (16, 16) and image.dtype == np.float32
    assert np.isfinite(image).all() and image.min() == 0.0 and image.max() == 1.0
    # MONOCHROME1: the highest stored value must come out darkest.
    assert image.ravel()[np.argmax(ds.pixel_array)] == pytest.approx(0.0)


def test_read_view_position():
    assert read_view_position(get_testdata_file("RG1_UNCR.dcm")) == "PA"
    assert read_view_position(get_testdata_file(CR_WITH_RESCALE)) == "LL"


def _copy_cr(tmp_path, name="img.dcm", **changes):
    ds = pydicom.dcmread(get_testdata_file(CR_WITH_RESCALE))
    for key, value in changes.items():
        setattr(ds, key, value)
    path = tmp_path / name
    ds.save_as(path)
    return path, ds


def _reason(path):
    with pytest.raises(ImageDecodeError) as info:
        load_image(path)
    assert str(path) in str(info.value)  # the human message names the file
    return info.value.reason


def test_missing_and_empty_and_non_dicom_files(tmp_path):
    assert _reason(tmp_path / "nope.dcm") == "missing-file"
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert _reason(tmp_path / "empty.dcm") == "zero-bytes"
    (tmp_path / "text.dcm").write_bytes(b"this is a text file, not a DICOM file " * 10)
    assert _reason(tmp_path / "text.dcm") == "not-dicom"
    assert _reason(tmp_path) == "not-a-file"


def test_truncated_uncompressed_and_j2k(tmp_path):
    path, _ = _copy_cr(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    assert _reason(path) == "truncated"
    j2k = get_testdata_file("RG1_J2KR.dcm")
    cut = tmp_path / "j2k_cut.dcm"
    cut.write_bytes(Path(j2k).read_bytes()[:200_000])
    assert _reason(cut) == "truncated"


def test_missing_pixel_data(tmp_path):
    path, ds = _copy_cr(tmp_path)
    del ds.PixelData
    ds.save_as(path)
    assert _reason(path) == "no-pixel-data"


def test_pixel_data_shorter_than_header_says(tmp_path):
    path, _ = _copy_cr(tmp_path, Rows=32)
    assert _reason(path) == "pixel-data-short"


def test_multi_frame_colour_and_unsupported_transfer_syntax(tmp_path):
    assert _reason(_copy_cr(tmp_path, "mf.dcm", NumberOfFrames=2)[0]) == "multi-frame"
    assert _reason(_copy_cr(tmp_path, "rgb.dcm", PhotometricInterpretation="RGB", SamplesPerPixel=3)[0]) == "not-grayscale"
    path, ds = _copy_cr(tmp_path, "mpeg.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no image decoder exists
    ds.PixelData = encapsulate([ds.PixelData])
    ds.save_as(path)
    assert _reason(path) == "unsupported-transfer-syntax"


def test_png_8_bit_and_rgba(tmp_path):
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(values).save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png")
    assert image.dtype == np.float32
    np.testing.assert_allclose(image, values / 255.0, atol=1e-7)
    Image.fromarray(np.dstack([values] * 3 + [np.full_like(values, 255)])).save(tmp_path / "rgba.png")
    np.testing.assert_allclose(load_image(tmp_path / "rgba.png"), values / 255.0, atol=1 / 255)
    assert read_view_position(tmp_path / "g.png") == ""


def test_png_16_bit_keeps_full_range(tmp_path):
    values = (np.arange(64 * 64, dtype=np.uint32) * 16).astype(np.uint16).reshape(64, 64)  # 0 .. 65520
    Image.fromarray(values).save(tmp_path / "g16.png")
    image = load_image(tmp_path / "g16.png")
    np.testing.assert_allclose(image, values / 65535.0, atol=1e-7)
    assert len(np.unique(image)) == 64 * 64  # no collapse to 256 levels
    assert image.max() == pytest.approx(65520 / 65535)


def test_bad_png_files(tmp_path):
    Image.fromarray(np.zeros((64, 64), np.uint8) + 7).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    assert _reason(tmp_path / "cut.png") in ("truncated", "decode-failed")
    (tmp_path / "fake.png").write_bytes(b"not a png at all")
    assert _reason(tmp_path / "fake.png") == "not-image"


# --------------------------------------------------------------------------------------- to_encoder_input


def _ramp(h=40, w=30):
    return np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w)


def test_encoder_input_shapes_and_channels():
    assert to_encoder_input(_ramp(), {"size": 16}).shape == (1, 16, 16)
    assert to_encoder_input(_ramp(), {"size": [20, 12], "channels": 3}).shape == (3, 20, 12)
    out = to_encoder_input(_ramp(), {"channels": 3})
    assert out.shape == (3, 40, 30) and out.dtype == np.float32
    assert np.array_equal(out[0], out[2])


def test_normalisations():
    image = _ramp()
    none = to_encoder_input(image, {"normalize": "none"})
    assert none.min() == 0.0 and none.max() == 1.0
    xrv = to_encoder_input(image, {"normalize": "xrv"})
    assert xrv.min() == pytest.approx(-1024) and xrv.max() == pytest.approx(1024)
    z = to_encoder_input(image, {"normalize": "zscore"})
    assert abs(z.mean()) < 1e-5 and z.std() == pytest.approx(1.0, abs=1e-4)
    imagenet = to_encoder_input(image, {"channels": 3, "normalize": "imagenet"})
    np.testing.assert_allclose(imagenet[1], (image - 0.456) / 0.224, atol=1e-5)
    clip = to_encoder_input(image, {"channels": 3, "normalize": "clip"})
    np.testing.assert_allclose(clip[0], (image - 0.48145466) / 0.26862954, atol=1e-5)
    explicit = to_encoder_input(image, {"normalize": {"mean": [0.5], "std": [0.25]}})
    np.testing.assert_allclose(explicit[0], (image - 0.5) / 0.25, atol=1e-6)
    flat = to_encoder_input(np.full((8, 8), 0.3, np.float32), {"normalize": "zscore"})
    assert np.isfinite(flat).all()


def test_contract_errors_are_value_errors():
    for bad in ({"normalize": "bogus"}, {"interpolation": "lanczos9"}, {"channels": 2}, {"size": 0},
                {"bit_depth": 12}, {"sizes": 3}, {"channels": 1, "normalize": "imagenet"}):
        with pytest.raises(ValueError):
            to_encoder_input(_ramp(), bad)


def test_bit_depth_quantisation():
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    eight = to_encoder_input(image, {"bit_depth": 8})
    np.testing.assert_allclose(eight[0] * 255, np.round(eight[0] * 255), atol=1e-4)
    sixteen = to_encoder_input(image, {"bit_depth": 16})
    assert len(np.unique(sixteen)) > 256
    np.testing.assert_allclose(sixteen[0], image, atol=1 / 65535)


def test_downsampling_is_antialiased():
    checker = (np.indices((256, 256)).sum(axis=0) % 2).astype(np.float32)  # finest possible stripes
    for interpolation in ("bilinear", "bicubic", "area"):
        small = to_encoder_input(checker, {"size": 32, "interpolation": interpolation})
        assert np.abs(small - 0.5).max() < 0.05, interpolation  # aliasing would leave 0s and 1s


def test_eight_bit_bicubic_imagenet_matches_torchvision_reference():
    # The MedImageInsight reference transform: 8-bit RGB PIL -> Resize((480, 480), bicubic) -> ToTensor -> Normalize.
    tv = pytest.importorskip("torchvision.transforms")
    image = np.random.default_rng(1).random((300, 260)).astype(np.float32)
    reference = tv.Compose([
        tv.Resize((96, 96), interpolation=tv.InterpolationMode.BICUBIC),
        tv.ToTensor(),
        tv.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])(Image.fromarray(np.round(image * 255).astype(np.uint8)).convert("RGB")).numpy()
    ours = to_encoder_input(image, {"size": 96, "interpolation": "bicubic", "channels": 3, "bit_depth": 8,
                                    "normalize": "imagenet"})
    np.testing.assert_allclose(ours, reference, atol=1e-5)
