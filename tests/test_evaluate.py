"""End to end on the synthetic demo data: runner eval -> a valid result, the cache, resume after SIGKILL, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support import child_pids, make_registry_root, run_in_process, still_alive, tiny_task

# Before the other files (tests/conftest.py): ~14 CPU-s of evaluations, on one worker.
RUN_EARLY = True

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory):
    return make_registry_root(tmp_path_factory.mktemp("reg"), {"effusion-tiny": tiny_task()})


@pytest.fixture
def registry(registry_root):
    from registry.cards import clear_cache, load_registry

    clear_cache()
    return load_registry(registry_root)


def run(registry, tmp_path, demo_data_dir, encoder="random-cnn", cache=None, **kw):
    """run_evaluation of effusion-tiny; decoding in this process unless `workers` says otherwise (two decode
    processes cost ~0.5 CPU-s to start, and the bytes do not depend on it: cold_run uses them, the resume test
    compares a 1-worker run with a run here)."""
    from runner.evaluate import EvalOptions, run_evaluation

    options = EvalOptions(device="cpu", workers=kw.pop("workers", 0), cache_dir=cache or tmp_path / "cache",
                          progress=False, **kw)
    return run_evaluation("effusion-tiny", encoder, demo_data_dir, tmp_path / "out", options, registry=registry)


@pytest.fixture(scope="module")
def cold_run(registry_root, tmp_path_factory, demo_data_dir):
    """(folder, what run_evaluation returned): random-cnn on effusion-tiny from an empty cache, once for the module.
    Read-only: a test that goes on from its embeddings copies FOLDER/cache (warm_cache)."""
    from registry.cards import clear_cache, load_registry

    clear_cache()
    folder = tmp_path_factory.mktemp("cold-run")
    return folder, run(load_registry(registry_root), folder, demo_data_dir, workers=2)  # two decode processes


def warm_cache(cold_run, tmp_path) -> Path:
    """A copy of the cold run's cache (every embedding of effusion-tiny x random-cnn) as tmp_path/cache."""
    return Path(shutil.copytree(cold_run[0] / "cache", tmp_path / "cache"))


def test_end_to_end_result_validates_and_separates_effusion(registry, cold_run):
    from runner.results.result import read_result, validate_result

    folder, done = cold_run
    result = read_result(done.result_path)
    assert validate_result(result) == []
    assert done.result_path == folder / "out" / "effusion-tiny" / "random-cnn" / "result.json"
    assert (folder / "out" / "effusion-tiny" / "manifest.json").is_file()
    assert result["provenance"] == "reproduced" and result["synthetic"] is True
    from runner.results.provenance import code_provenance

    assert result["code"] == code_provenance()  # the code that ran (issue 27 item 5)
    assert result["task"]["sha256"] == registry.tasks["effusion-tiny"].sha256
    assert result["encoder"]["sha256"] == registry.encoders["random-cnn"].sha256
    assert result["metrics"]["auroc"]["mean"] > 0.65  # the demo data draws effusion visibly (n = 140)
    assert len(result["folds"]) == 5 and result["metrics"]["auroc"]["ci_method"] == "t-interval"
    at_embedding = [e for e in result["counts"]["exclusions"] if e["reason"].startswith("at embedding: ")]
    used = result["counts"]["positives"] + result["counts"]["negatives"]
    assert used + len(at_embedding) == result["manifest"]["n_images"]
    assert {"sample", "embed", "classify", "metrics", "total"} <= set(result["timings_s"])
    predictions = pd.read_parquet(done.result_path.parent / "predictions.parquet")
    assert list(predictions.columns) == ["image_id", "patient_id", "label", "fold", "prob"]
    assert len(predictions) == used and predictions["prob"].between(0, 1).all()
    text = done.result_path.read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_second_run_computes_no_embedding_and_gives_the_same_result(registry, tmp_path, demo_data_dir, cold_run):
    first = cold_run[1]
    assert first.n_computed > 0 and first.cache_hits == 0
    second = run(registry, tmp_path, demo_data_dir, cache=warm_cache(cold_run, tmp_path), recompute=True)
    assert second.n_computed == 0 and not second.reused
    # every embedding is a hit; the only misses are files that failed to decode (remembered, not retried)
    failed = [e for e in second.result["counts"]["exclusions"] if e["reason"].startswith("at embedding: ")]
    assert second.cache_misses == len(failed) and second.cache_hits == first.cache_misses - len(failed)
    assert second.result["metrics"] == first.result["metrics"]


def test_a_rerun_keeps_its_result_only_while_every_input_matches(registry, tmp_path, demo_data_dir, monkeypatch,
                                                                  cold_run):
    """runner.results.reuse: the same inputs keep the result file as it is; any changed input, a tampered file or
    --recompute computes it again, and what is computed again equals the first computation."""
    import runner.results.result
    import runner.results.reuse

    warm_cache(cold_run, tmp_path)  # tmp_path/cache, where run() looks: the embeddings are not what this is about
    first = run(registry, tmp_path, demo_data_dir)
    assert not first.reused and len(first.result["inputs_sha256"]) == 64
    result_path, predictions_path = first.result_path, first.result_path.parent / "predictions.parquet"
    written = result_path.read_bytes(), predictions_path.read_bytes()

    def again(**kw):
        done = run(registry, tmp_path, demo_data_dir, **kw)
        assert done.result["metrics"] == first.result["metrics"]
        return done

    kept = again()
    assert kept.reused and (result_path.read_bytes(), predictions_path.read_bytes()) == written
    assert kept.n_computed == 0 and kept.cache_hits > 0  # the embeddings were still looked up to fingerprint them
    assert not again(recompute=True).reused
    # a recomputed file differs only in its timings and creation time; it is kept by the next run
    assert again().reused

    predictions = pd.read_parquet(predictions_path)
    predictions.loc[0, "prob"] = 1 - predictions.loc[0, "prob"]  # a tampered predictions file
    predictions.to_parquet(predictions_path, index=False)
    assert not again().reused and pd.read_parquet(predictions_path).loc[0, "prob"] != predictions.loc[0, "prob"]

    stale = json.loads(result_path.read_text())
    stale["inputs_sha256"] = "0" * 64  # a result computed from other inputs
    result_path.write_text(json.dumps(stale))
    assert not again().reused
    assert not run(registry, tmp_path, demo_data_dir, analyses=["subgroups"]).reused  # other analyses asked for
    assert not again().reused  # and back: the subgroups run's result had other inputs

    monkeypatch.setattr(runner.results.reuse, "code_sha256", lambda: "other code")
    assert not again().reused
    assert again().reused
    monkeypatch.setattr(runner.results.reuse, "package_versions", lambda: {"lightgbm": "0.0"})
    assert not again().reused


def test_a_fully_cached_run_never_builds_the_model(registry, tmp_path, demo_data_dir, monkeypatch, cold_run):
    """Warm runs skip loading weights (seconds to minutes for real encoders): the model is built only to embed."""
    from registry import plugins

    warm_cache(cold_run, tmp_path)  # tmp_path/cache, where run() looks
    adapter = plugins.load("adapter", "random-cnn")
    built = []
    original_init = adapter.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(adapter, "__init__", counting_init)
    second = run(registry, tmp_path, demo_data_dir)
    assert second.n_computed == 0 and built == []
    third = run(registry, tmp_path, demo_data_dir, cache=tmp_path / "cold-cache")
    assert third.n_computed > 0 and built == [1]  # a cold cache builds it, once
    assert third.result["metrics"] == second.result["metrics"]


def test_behaviour_edits_invalidate_the_cache_and_descriptive_edits_do_not(registry_root, tmp_path, demo_data_dir):
    from registry.cards import clear_cache, load_registry

    root = make_registry_root(tmp_path / "reg", {"effusion-tiny": tiny_task()})
    clear_cache()
    first = run(load_registry(root), tmp_path, demo_data_dir, encoder="pixels")
    assert first.n_computed > 0
    card = root / "encoders" / "pixels.yaml"
    card.write_text(card.read_text().replace("interpolation: area", "interpolation: bilinear"))
    clear_cache()
    second = run(load_registry(root), tmp_path, demo_data_dir, encoder="pixels")
    assert second.n_computed == first.n_computed and second.cache_hits == 0
    # A descriptive edit (title) changes the card's sha256 but not its behaviour hash: every embedding is reused.
    card.write_text(card.read_text().replace("title: Raw pixels (32x32)", "title: Raw pixels, renamed"))
    clear_cache()
    third = run(load_registry(root), tmp_path, demo_data_dir, encoder="pixels")
    assert third.n_computed == 0
    assert third.result["encoder"]["sha256"] != second.result["encoder"]["sha256"]
    assert third.result["encoder"]["behaviour_sha256"] == second.result["encoder"]["behaviour_sha256"]
    assert third.result["metrics"] == second.result["metrics"]


def test_stability_analysis_embeds_augmented_views(registry, tmp_path, demo_data_dir):
    done = run(registry, tmp_path, demo_data_dir, encoder="radiomics", analyses=["stability"])
    stability = done.result["analyses"]["stability"]
    assert stability.get("status") not in ("skipped", "failed"), stability
    again = run(registry, tmp_path, demo_data_dir, encoder="radiomics", analyses=["stability"])
    assert again.n_computed == 0


def test_killed_run_resumes_and_gives_identical_results(registry_root, tmp_path, demo_data_dir):
    """SIGKILL a real `runner eval` once some cache shards exist; the rerun reuses them and matches a clean run."""
    env = {**os.environ, "CXR_REGISTRY_ROOT": str(registry_root), "CXR_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "runner.cli.main", "eval", "--task", "effusion-tiny", "--encoder", "radiomics",
           "--data-root", str(demo_data_dir), "--out", str(tmp_path / "out"), "--device", "cpu",
           "--batch-size", "4", "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    shards = []
    while time.time() < deadline and proc.poll() is None:
        shards = list((tmp_path / "cache").glob("*/shard-*.keys.json"))
        if len(shards) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"runner eval ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    workers = child_pids(proc.pid)
    assert workers, "runner eval --workers 1 should have a decode worker"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # its decode workers die with it instead of waiting on their queue forever
    assert not still_alive(workers), "orphaned decode workers"
    committed = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*/shard-*.keys.json")}
    assert committed
    assert not (tmp_path / "out" / "effusion-tiny" / "radiomics" / "result.json").exists()

    # the resume runs in this process (only the killed run needs one of its own; a start costs ~1.4 CPU-s)
    resumed = run_in_process(cmd[3:], {k: env[k] for k in ("CXR_REGISTRY_ROOT", "CXR_CACHE_DIR")})
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    # the shards finished before the kill were reused, not recomputed (a recomputed shard is rewritten)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in committed.items())
    from registry.cards import clear_cache, load_registry

    clear_cache()
    clean = run(load_registry(registry_root), tmp_path / "clean", demo_data_dir, encoder="radiomics",
                cache=tmp_path / "clean-cache")
    result = json.loads((tmp_path / "out" / "effusion-tiny" / "radiomics" / "result.json").read_text())
    assert result["metrics"] == clean.result["metrics"]
    assert result["manifest"]["sha256"] == clean.result["manifest"]["sha256"]
    resumed_pred = pd.read_parquet(tmp_path / "out" / "effusion-tiny" / "radiomics" / "predictions.parquet")
    clean_pred = pd.read_parquet(clean.result_path.parent / "predictions.parquet")
    pd.testing.assert_frame_equal(resumed_pred, clean_pred)
    assert clean.n_computed == clean.result["manifest"]["n_images"]  # the clean run embedded everything itself


def test_cli_bad_ids_exit_2_with_a_suggestion(registry_root, tmp_path):
    env = {**os.environ, "CXR_REGISTRY_ROOT": str(registry_root)}
    bad = subprocess.run([sys.executable, "-m", "runner.cli.main", "eval", "--task", "efusion-tiny", "--encoder",
                          "random-cnn", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")],
                         check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "effusion-tiny" in bad.stderr and "Traceback" not in bad.stderr
    # the same entry point's exit code shown once above; the other bad id in this process (saves a ~0.7 CPU-s start)
    bad_enc = run_in_process(["eval", "--task", "effusion-tiny", "--encoder", "random_cnn", "--data-root", tmp_path,
                              "--out", tmp_path / "o"], {"CXR_REGISTRY_ROOT": str(registry_root)})
    assert bad_enc.returncode == 2 and "random-cnn" in bad_enc.stderr and "Traceback" not in bad_enc.stderr


def test_runner_eval_embeds_through_the_one_entry_point_with_a_lazy_encoder(registry, tmp_path, demo_data_dir,
                                                                             monkeypatch):
    """The call `runner bench` measures (tests/test_architecture.py) is the call eval makes."""
    import runner.embed.embedding
    import runner.embed.for_task
    from runner.encoders import LazyEncoder

    assert runner.embed.for_task.embed_manifest is runner.embed.embedding.embed_manifest
    calls = []
    real = runner.embed.embedding.embed_manifest

    def recording(*args, **kwargs):
        calls.append((isinstance(args[3], LazyEncoder), kwargs.get("backend")))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner.embed.for_task, "embed_manifest", recording)
    done = run(registry, tmp_path, demo_data_dir, encoder="pixels")
    assert calls == [(True, "auto")]
    assert done.result["throughput"]["stage"].endswith("[cpu]") or done.n_computed == 0
