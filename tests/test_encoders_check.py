"""`runner encoders check`: fingerprints, the reference image, exit codes."""

from __future__ import annotations

import re

import numpy as np
from typer.testing import CliRunner

from runner.cli.commands.encoders import fingerprint, reference_image
from runner.cli.main import app


def test_fingerprint_is_stable_under_tiny_noise_and_sign_of_zero():
    v = np.array([0.1, -0.0, 0.25, 3.0], dtype=np.float32)
    a, b = fingerprint(v), fingerprint(np.array([0.10000001, 0.0, 0.25000001, 3.0]))
    assert a.sha12 == b.sha12 and len(a.sha12) == 12
    assert fingerprint(v + np.array([0, 0, 0.001, 0])).sha12 != a.sha12
    assert abs(a.l2 - float(np.linalg.norm(v))) < 1e-6 and a.max == 3.0


def test_reference_image_is_the_real_chest_cr():
    name, image = reference_image()
    assert "RG1_UNCR.dcm" in name and image.shape == (1955, 1841)
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1


def test_check_prints_size_fingerprint_contract_and_speed(tmp_path):
    from PIL import Image

    png = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50), dtype=np.uint8)).save(png)
    result = CliRunner().invoke(app, ["encoders", "check", "pixels", "--image", str(png), "--image", str(png)])
    assert result.exit_code == 0, result.output
    assert "1024-d" in result.output and "'size': 32" in result.output and "images/s" in result.output
    prints = re.findall(r"fingerprint ([0-9a-f]{12})", result.output)
    assert len(prints) == 2 and prints[0] == prints[1]


def test_missing_weights_is_one_line_and_exit_1(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["encoders", "check", "medimageinsight", "--weights-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "missing weights: 2024.09.27/vision_model/medimageinsigt-v1.0.0.pt" in result.output
    assert "Traceback" not in result.output


def test_unknown_encoder_and_unreadable_image_exit_2(tmp_path):
    assert CliRunner().invoke(app, ["encoders", "check", "no-such-encoder"]).exit_code == 2
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["encoders", "check", "pixels", "--image", str(bad)])
    assert result.exit_code == 2 and "cannot read image" in result.output


def test_check_names_the_device_the_framework_ran_on():
    result = CliRunner().invoke(app, ["encoders", "check", "random-cnn", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "ran on      cpu (torch)" in result.output
    numpy_only = CliRunner().invoke(app, ["encoders", "check", "pixels"])
    assert numpy_only.exit_code == 0 and "ran on" not in numpy_only.output
