"""`sampling.verify: header`: header + pixel-length check without decoding, against the decoder's verdicts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runner.data.imaging import ImageDecodeError, load_image, verify_header
from runner.sample.sampler import check_file


def _reason(fn, path):
    try:
        fn(path)
    except ImageDecodeError as exc:
        return exc.reason
    return ""


def test_header_check_agrees_with_the_decoder_on_the_demo_corruptions(demo_data_dir):
    corrupt = json.loads((demo_data_dir / "demo_data.json").read_text())["corrupt"]
    assert corrupt
    for item in corrupt:
        path = demo_data_dir / item["path"]
        assert _reason(verify_header, path) == _reason(load_image, path) == item["kind"], item
    for path in sorted((demo_data_dir / "files").rglob("*.dcm"))[:20]:  # healthy files pass both
        if path.relative_to(demo_data_dir).as_posix() not in {c["path"] for c in corrupt}:
            assert _reason(verify_header, path) == _reason(load_image, path) == ""


@pytest.fixture
def real_cr(tmp_path):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm")  # the real 1955 x 1841 chest CR
    if path is None:
        pytest.skip("RG1_UNCR.dcm is not in the installed pydicom test data")
    return shutil.copy(path, tmp_path / "cr.dcm")


def test_real_cr_passes_and_a_truncated_copy_fails(real_cr, tmp_path):
    verify_header(real_cr)
    data = Path(real_cr).read_bytes()
    # the file ends with 138 bytes of DataSetTrailingPadding after PixelData: cutting into it only is harmless
    for cut, expected in ((1, ""), (138, ""), (139, "truncated"), (1000, "truncated"), (len(data) // 2, "truncated")):
        short = tmp_path / f"short{cut}.dcm"
        short.write_bytes(data[:-cut])
        assert _reason(verify_header, short) == _reason(load_image, short) == expected, cut
    assert check_file(str(tmp_path), "short1000.dcm", "header", None)[0] == "truncated"
    assert check_file(str(tmp_path), "cr.dcm", "header", None)[0] == ""


def test_pixel_length_must_match_the_declared_geometry(real_cr, tmp_path):
    import pydicom

    ds = pydicom.dcmread(real_cr)
    ds.Rows = ds.Rows + 1  # one more row than the pixel data holds
    lying = tmp_path / "lying.dcm"
    ds.save_as(lying)
    assert _reason(verify_header, lying) == "truncated"
    ds = pydicom.dcmread(real_cr)
    ds.PhotometricInterpretation = "RGB"
    rgb = tmp_path / "rgb.dcm"
    ds.save_as(rgb)
    assert _reason(verify_header, rgb) == _reason(load_image, rgb) == "not-grayscale"


def test_png_header_check(tmp_path):
    import numpy as np
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(good)
    verify_header(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:20])
    assert _reason(verify_header, bad) == "bad-header"
