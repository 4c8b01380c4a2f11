"""benchmarks/device_check.sh as a dry run on the CPU (DEVICE=cpu): every step runs, every table and JSON appears
(runner doctor, CXR Foundation's stand-in SavedModels through runner encoders check and runner eval, the benches,
runner eval of the demo task).

Marked slow: CI runs it with `-m slow`; locally `pytest -m slow tests/test_device_check.py`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# find_spec, not importorskip: every test here is slow, and importing torch and timm at collection cost each xdist
# worker ~3 CPU-s in the normal run, which deselects them
pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(name) is None for name in ("torch", "timm")),
                                reason="needs torch and timm (the two proxy cards use the timm adapter)")

REPO = Path(__file__).resolve().parents[1]
BENCHES = ("bench-densenet121", "bench-vit-b14-518")  # the MedImageInsight tower: on CUDA only (minutes on a CPU)


@pytest.mark.slow  # ~5 min on the 2-core dev machine: doctor, TensorFlow twice, two models built twice each
def test_device_check_dry_run_writes_every_table(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "OUT": str(tmp_path), "PYTHON": sys.executable,
           "PYTHONPATH": str(REPO)}
    env.pop("N", None)
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "device_check.sh")], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "device-check.md").read_text()
    assert "device_check:" not in report, report  # no step failed or was skipped
    assert "medimageinsight-random): not benched in the dry run" in report
    for name in BENCHES:
        result = json.loads((tmp_path / f"bench-cpu-{name}.json").read_text())
        assert result["device"] == "cpu" and set(result["results"]) == {"png", "dicom"}
        assert all(r["warm_cache"]["recomputed"] == 0 for r in result["results"].values())
        assert f"### {name}" in report and "| dicom (" in (tmp_path / f"bench-cpu-{name}.md").read_text()
    densenet = json.loads((tmp_path / "bench-cpu-bench-densenet121.json").read_text())
    assert densenet["encoder"]["precision"]["bf16"] is False  # the proxy runs what xrv-densenet121's card runs
    runs = json.loads((tmp_path / "eval-cpu-demo.json").read_text())["runs"]
    assert [(r["task"], r["encoder"], r["status"]) for r in runs] == [("effusion-dryrun", "random-cnn", "ok")]
    assert "### runner eval" in report and "| effusion-dryrun | random-cnn | ok |" in report
    # issue 26, item 8: runner doctor and CXR Foundation (stand-in SavedModels) through the device path
    doctor = json.loads((tmp_path / "doctor-cpu.json").read_text())
    assert doctor["torch"]["installed"] and "### runner doctor" in report and "| torch | " in report
    if importlib.util.find_spec("tensorflow") is None:
        assert "CXR Foundation: not run here: TensorFlow is not installed" in report
        return
    cxr = json.loads((tmp_path / "cxr-eval-cpu.json").read_text())["runs"]
    assert [(r["encoder"], r["status"]) for r in cxr] == [("cxr-foundation", "ok"), ("random-cnn", "ok")]
    assert "### CXR Foundation on the device path" in report
    assert "| cxr-foundation | ok | tensorflow: cpu |" in report and "| random-cnn | ok | torch: cpu |" in report
    assert "ran on      cpu (tensorflow)" in (tmp_path / "cxr-check-cpu.txt").read_text()
