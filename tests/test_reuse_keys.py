"""Every reuse is keyed by what made it (issue 25 item 6), end to end through `runner eval` on the demo data: a changed
weight file or custom module gives new embeddings and new numbers (with or without --recompute), the result records
the weights' sha256, --re-embed computes every embedding again, and a cache shard with its rows reversed is
quarantined and recomputed instead of scoring AUROC 0.5."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import make_registry_root, tiny_task

REPO = Path(__file__).resolve().parents[1]
PROJECTION_CARD = """\
id: projection
title: Random projection of the pixels (a custom test encoder)
adapter: custom
entrypoint: "projection_encoder:build"
weights: {files: [projection.txt]}
preprocess: {size: 16, channels: 1, interpolation: area, normalize: none, bit_depth: float}
embedding: {dim: 8, pooling: none}
batch_size: 64
control: true
training_datasets: []
"""
# the "weights": a seed for the projection matrix; the "code": what is projected
PROJECTION_MODULE = """
import numpy as np


def build(card, device, weights):
    seed = int(open(weights.path()).read())
    matrix = np.random.default_rng(seed).normal(size=(256, 8)).astype(np.float32)
    return lambda batch: (np.asarray(batch, dtype=np.float32).reshape(len(batch), -1){transform}) @ matrix
"""


@pytest.fixture
def custom_setup(tmp_path, monkeypatch):
    from registry.cards import clear_cache, load_registry

    root = make_registry_root(tmp_path / "reg", {"effusion-tiny": tiny_task()})
    (root / "encoders" / "projection.yaml").write_text(PROJECTION_CARD)
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "projection_encoder.py").write_text(PROJECTION_MODULE.format(transform=""))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "projection.txt").write_text("1")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    clear_cache()
    return load_registry(root)


def _run(registry, tmp_path, demo_data_dir, encoder, **kw):
    from runner.evaluate import EvalOptions, run_evaluation

    options = EvalOptions(device="cpu", workers=0, cache_dir=tmp_path / "cache", progress=False, analyses=[],
                          trust_custom_code=True, weights_dir=tmp_path / "w", **kw)
    return run_evaluation("effusion-tiny", encoder, demo_data_dir, tmp_path / "out", options, registry=registry)


def test_a_changed_weight_file_gives_new_embeddings_and_numbers(custom_setup, tmp_path, demo_data_dir):
    """The review: two checkpoints under one card (no sha256 pin) gave identical numbers; the second run embedded
    nothing, even with --recompute, and inputs_sha256 was the same."""
    def run(**kw):
        return _run(custom_setup, tmp_path, demo_data_dir, "projection", **kw)

    first = run()
    assert first.n_computed > 0
    assert run().reused  # nothing changed: kept

    (tmp_path / "w" / "projection.txt").write_text("2")  # another checkpoint at the same path
    other = run(recompute=True)
    assert other.n_computed == first.n_computed, "the embeddings of the old weights were read"
    assert other.result["metrics"] != first.result["metrics"]
    assert other.result["inputs_sha256"] != first.result["inputs_sha256"]
    # the result says which weights made its embeddings (the registry files `environment` as the run reports it)
    made = [r.result["environment"]["encoder_inputs"] for r in (first, other)]
    assert made[0]["weights_sha256"] == {"projection.txt": hashlib.sha256(b"1").hexdigest()}
    assert made[1]["weights_sha256"] == {"projection.txt": hashlib.sha256(b"2").hexdigest()}
    assert made[0]["sha256"] != made[1]["sha256"]
    assert json.loads(other.result_path.read_text())["environment"]["encoder_inputs"] == made[1]

    again = run(re_embed=True)  # --re-embed: every image embedded again; the same embeddings keep the result
    assert again.n_computed == first.n_computed and again.cache_hits == 0 and again.reused


def test_a_changed_custom_module_gives_new_embeddings_and_numbers(custom_setup, tmp_path, demo_data_dir):
    """The review: an `adapter: custom` code change was "reused: same inputs"."""
    def run(**kw):
        return _run(custom_setup, tmp_path, demo_data_dir, "projection", **kw)

    first = run()
    module = tmp_path / "mods" / "projection_encoder.py"
    module.write_text(PROJECTION_MODULE.format(transform=" ** 2"))  # the custom code changed, nothing else
    other = run()
    assert not other.reused and other.n_computed == first.n_computed
    assert other.result["metrics"] != first.result["metrics"]
    made = other.result["environment"]["encoder_inputs"]
    assert made["code_sha256"] == {"projection_encoder": hashlib.sha256(module.read_bytes()).hexdigest()}
    assert made["code_sha256"] != first.result["environment"]["encoder_inputs"]["code_sha256"]


@pytest.fixture(scope="module")
def pixels_run(tmp_path_factory, demo_data_dir):
    """(registry, folder, what run_evaluation returned): pixels on effusion-tiny from an empty cache, once for the
    module. Read-only: a test that changes the cache works on a copy (`copied_cache`)."""
    from registry.cards import clear_cache, load_registry

    folder = tmp_path_factory.mktemp("pixels-run")
    root = make_registry_root(folder / "reg", {"effusion-tiny": tiny_task()})
    clear_cache()
    registry = load_registry(root)
    return registry, folder, _run(registry, folder, demo_data_dir, "pixels")


def copied_cache(pixels_run, tmp_path) -> Path:
    """A copy of the pixels run's cache (every embedding of effusion-tiny x pixels) as tmp_path/cache."""
    return Path(shutil.copytree(pixels_run[1] / "cache", tmp_path / "cache"))


def test_a_reversed_cache_shard_is_quarantined_not_scored(pixels_run, tmp_path, demo_data_dir, capfd):
    """The review: a shard with its rows reversed (a valid file) gave AUROC 0.843 -> 0.508, exit 0, no warning."""
    registry, _, first = pixels_run
    assert first.n_computed > 0  # the cache below holds what this run computed
    shards = sorted(copied_cache(pixels_run, tmp_path).glob("*/shard-*.npy"))
    assert shards
    for shard in shards:
        np.save(shard, np.load(shard)[::-1].copy())
    capfd.readouterr()
    again = _run(registry, tmp_path, demo_data_dir, "pixels", recompute=True)
    err = capfd.readouterr().err
    assert again.result["metrics"] == first.result["metrics"]
    assert again.n_computed > 0 and err.count("is corrupt") == len(shards) and "checksum mismatch" in err


def test_cli_re_embed_computes_every_embedding_again(pixels_run, tmp_path, demo_data_dir):
    root = make_registry_root(tmp_path / "reg", {"effusion-tiny": tiny_task()})
    copied_cache(pixels_run, tmp_path)  # every embedding, as a first `runner eval` leaves them
    env = {**os.environ, "CXR_REGISTRY_ROOT": str(root), "CXR_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "runner.cli.main", "eval", "--task", "effusion-tiny", "--encoder", "pixels",
               "--data-root", str(demo_data_dir), "--out", str(tmp_path / "out"), "--device", "cpu",
               "--workers", "0", "--analyses", "none", "--recompute"]
    result = tmp_path / "out" / "effusion-tiny" / "pixels" / "result.json"

    def eval_(*extra):
        done = subprocess.run(command + list(extra), env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(result.read_text())

    keys_files = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*/shard-*.keys.json")}
    cached = eval_()
    assert cached["throughput"]["stage"] == "embed (all embeddings came from the cache)"
    again = eval_("--re-embed")
    assert again["throughput"]["stage"].startswith("embed [")  # computed, not read from the cache
    assert all(p.stat().st_mtime_ns != mtime for p, mtime in keys_files.items())  # the shards were written anew
    assert again["metrics"] == cached["metrics"]
