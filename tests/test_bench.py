"""`runner bench` end to end at a tiny size: every figure present, JSON valid (no NaN), the page cache dropped and
checked, eval's defaults recorded, CXR Foundation benched through its test SavedModel, bad input exits 2."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

# find_spec, not importorskip: importing torch at collection costs every xdist worker, also those that run no bench
pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")

# Before the other files (tests/conftest.py): the benchmark script's child processes run one by one.
RUN_EARLY = True

try:  # the CXR Foundation test SavedModel: reuse that module's fixture (it skips itself without TensorFlow)
    from test_encoders_cxr_foundation import _card as cxr_foundation_card
    from test_encoders_cxr_foundation import snapshot  # noqa: F401  (a fixture, used by name)
except pytest.skip.Exception:
    cxr_foundation_card = None


def _numbers(obj):
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _numbers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _numbers(value)
    elif isinstance(obj, float):
        yield obj


def _json_ready(result: dict) -> None:
    json.loads(json.dumps(result, allow_nan=False))  # raises on NaN / Infinity
    assert all(math.isfinite(x) for x in _numbers(result))


def test_bench_runs_and_reports_every_figure(tmp_path):
    from registry.cards import load_registry
    from runner.embed.bench import BenchConfig, markdown_table, run_bench

    card = load_registry().encoders["random-cnn"]
    cfg = BenchConfig(encoder_card=card.data, encoder_sha256=card.sha256, n=3, size=96, dicom_size=(80, 72),
                      device="cpu", workers=0, batch_size=2, naive_limit=2, formats=("png", "dicom"),
                      inputs=tmp_path / "in")
    result = run_bench(cfg)
    _json_ready(result)
    assert result["workers"] == 0 and result["workers_from"] == "--workers"
    assert result["pipeline"]["backend"] == "cpu" and result["encoder"]["precision"] == card.data["precision"]
    for fmt in ("png", "dicom"):
        r = result["results"][fmt]
        assert r["pipeline"]["images"] == 3 and r["naive"]["images"] == 2 and r["pipeline"]["backend"] == "cpu"
        for rate in (r["naive"], r["pipeline"], r["forward"], r["stages"]["read"], r["stages"]["preprocess"]):
            assert rate["images_per_s"] > 0
        assert r["ratios"]["pipeline_over_naive"] == pytest.approx(
            r["pipeline"]["images_per_s"] / r["naive"]["images_per_s"], rel=1e-2)
        assert r["warm_cache"]["recomputed"] == 0 and r["warm_cache"]["identical"]
        whole = r["whole_command"]
        assert whole["computed"] == [3, 0] and whole["cold_s"] > 0 and whole["warm_s"] > 0
        assert whole["ratio"] == pytest.approx(whole["cold_s"] / whole["warm_s"], rel=1e-2)
        assert set(r["page_cache"]) == {"naive", "pipeline", "read", "whole_command_cold"}
        assert all(c["dropped"] and c["resident_after_pct"] < 5 for c in r["page_cache"].values()), r["page_cache"]
        assert "rss_by_n" not in r
    dicoms = sorted((tmp_path / "in" / "dicom-80x72").glob("*.dcm"))
    assert len(dicoms) == 3 and len(list((tmp_path / "in" / "png-96x96").glob("*.png"))) == 3
    import pydicom

    ds = pydicom.dcmread(dicoms[0])
    assert (ds.Rows, ds.Columns, ds.BitsStored, ds.PhotometricInterpretation) == (80, 72, 15, "MONOCHROME1")
    table = markdown_table(result)
    assert "| png (cpu backend) |" in table and "| dicom (cpu backend) |" in table
    assert "whole command cold/warm" in table and "dropped (verified" in table


def test_workers_default_is_eval_s_and_memory_probes(tmp_path, monkeypatch):
    """workers None -> runner.embed.plan.default_workers(plan), resolved once and reported (to the probes too)."""
    import runner.embed.bench
    import runner.embed.plan
    from registry.cards import load_registry
    from runner.embed.bench import BenchConfig, run_bench

    assert runner.embed.bench.default_workers is runner.embed.plan.default_workers
    monkeypatch.setattr(runner.embed.bench, "default_workers", lambda plan: 1)
    card = load_registry().encoders["pixels"]
    cfg = BenchConfig(encoder_card=card.data, encoder_sha256=card.sha256, n=2, size=64, dicom_size=(48, 40),
                      device="cpu", naive_limit=1, formats=("dicom",), whole_command=False, drop_cache=False,
                      rss_sizes=(2, 4), inputs=tmp_path / "in")
    result = run_bench(cfg)
    assert result["workers"] == 1 and result["workers_from"] == "runner.embed.plan.default_workers"
    assert result["results"]["dicom"]["stages"]["read"]["workers"] == 1
    r = result["results"]["dicom"]
    assert r["page_cache"]["naive"]["note"] == "not dropped (--keep-page-cache)" and "whole_command" not in r
    assert [p["n"] for p in r["rss_by_n"]] == [2, 4] and all(p["embedded"] == p["n"] for p in r["rss_by_n"])


def test_page_cache_eviction_is_verified(tmp_path):
    from runner.embed.bench import evict_from_page_cache, resident_fraction

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (1 << 20))
    path.read_bytes()
    assert resident_fraction([str(path)]) > 0.9  # just written and read: in the page cache
    out = evict_from_page_cache([str(path)])
    assert out["dropped"] and out["resident_after_pct"] < 5, out
    assert resident_fraction([str(path)]) < 0.05


@pytest.mark.skipif(cxr_foundation_card is None, reason="CXR Foundation needs TensorFlow")
def test_bench_runs_cxr_foundation_on_its_test_savedmodel(tmp_path, snapshot):
    """An adapter with its own prepare: timed through naive, the CPU pool and warm; forward and stages are null."""
    from runner.embed.bench import BenchConfig, markdown_table, run_bench

    cfg = BenchConfig(encoder_card=cxr_foundation_card(), encoder_sha256="0" * 64, n=2, size=64, dicom_size=(48, 40),
                      device="cpu", workers=0, naive_limit=2, formats=("dicom",), weights_dir=snapshot,
                      inputs=tmp_path / "in")
    result = run_bench(cfg)
    _json_ready(result)
    assert result["pipeline"]["backend"] == "cpu"
    for r in result["results"].values():
        assert r["naive"]["images_per_s"] > 0 and r["pipeline"]["images_per_s"] > 0
        assert r["forward"] is None and r["stages"] is None and r["ratios"]["pipeline_over_forward"] is None
        assert "prepares its own inputs" in r["not_applicable"]
        assert r["warm_cache"]["recomputed"] == 0 and r["whole_command"]["computed"] == [2, 0]
    assert "not applicable" in markdown_table(result)


def test_bench_cli_rejects_bad_input(tmp_path):
    from typer.testing import CliRunner

    from runner.cli.main import app

    runner = CliRunner()
    for args in (["bench"], ["bench", "--encoder", "random-cnn", "--formats", "gif"],
                 ["bench", "--encoder", "random-cnn", "--dicom-size", "big"],
                 ["bench", "--encoder", "no-such-encoder"]):
        done = runner.invoke(app, args)
        assert done.exit_code == 2, (args, done.output)
        assert "Traceback" not in done.output


def test_the_image_writers_end_with_a_bench_killed_with_sigkill(tmp_path):
    """`runner bench` writes its synthetic inputs in a process pool; a bench killed with SIGKILL cannot end those
    processes, so Linux does (runner.runtime.signals `start_owned_worker`) instead of leaving them writing."""
    import subprocess
    import sys
    import textwrap

    from tests.support import REPO, children_after_sigkill

    ready = tmp_path / "writing"
    script = tmp_path / "bench_inputs.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        import runner.embed.bench as bench

        def slow_write(job):  # a write that takes long: the bench is killed while its pool is busy
            Path({str(ready)!r}).touch()
            time.sleep(600)

        bench._write_one = slow_write
        bench.make_bench_inputs(Path({str(tmp_path / "inputs")!r}), 4, formats=("png",), workers=2)
    """))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writers, alive = children_after_sigkill(run, ready)
    assert len(writers) == 2
    assert not alive, "the bench's image writers outlived the bench killed with SIGKILL"
