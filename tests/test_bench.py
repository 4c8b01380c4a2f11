"""`runner bench` end to end at a tiny size: every figure present, JSON valid (no NaN), bad input exits 2."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")


def _numbers(obj):
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _numbers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _numbers(value)
    elif isinstance(obj, float):
        yield obj


def test_bench_runs_and_reports_every_figure(tmp_path):
    from registry.cards import load_registry
    from runner.bench import BenchConfig, markdown_table, run_bench

    card = load_registry().encoders["random-cnn"]
    cfg = BenchConfig(encoder_card=card.data, encoder_sha256=card.sha256, n=3, size=96, device="cpu", workers=0,
                      batch_size=2, naive_limit=2, rss_sizes=(2, 4), formats=("png", "dicom"), inputs=tmp_path / "in")
    result = run_bench(cfg)
    json.loads(json.dumps(result, allow_nan=False))  # raises on NaN / Infinity
    assert all(math.isfinite(x) for x in _numbers(result))
    for fmt in ("png", "dicom"):
        r = result["results"][fmt]
        assert r["pipeline"]["images"] == 3 and r["naive"]["images"] == 2 and r["pipeline"]["pipeline"] == "cpu-pool"
        for rate in (r["naive"], r["pipeline"], r["forward"], r["stages"]["read"], r["stages"]["preprocess"]):
            assert rate["images_per_s"] > 0
        assert r["ratios"]["pipeline_over_naive"] == pytest.approx(
            r["pipeline"]["images_per_s"] / r["naive"]["images_per_s"], rel=1e-2)
        assert r["warm_cache"]["recomputed"] == 0 and r["warm_cache"]["identical"]
        assert [p["n"] for p in r["rss_by_n"]] == [2, 4] and all(p["embedded"] == p["n"] for p in r["rss_by_n"])
    assert len(list((tmp_path / "in" / "dicom").glob("*.dcm"))) == 3
    table = markdown_table(result)
    assert "| png (cpu-pool pipeline) |" in table and "| dicom (cpu-pool pipeline) |" in table


def test_bench_cli_rejects_bad_input(tmp_path):
    from typer.testing import CliRunner

    from runner.cli import app

    runner = CliRunner()
    for args in (["bench"], ["bench", "--encoder", "random-cnn", "--formats", "gif"],
                 ["bench", "--encoder", "no-such-encoder"]):
        done = runner.invoke(app, args)
        assert done.exit_code == 2, (args, done.output)
        assert "Traceback" not in done.output
