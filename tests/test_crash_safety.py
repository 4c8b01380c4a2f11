"""Crash safety: `runner eval` killed with SIGKILL at seeded random points resumes to the uninterrupted result,
no cache entry is ever corrupt, and two runs filling one cache at the same time both finish with the same result.

The run is small (a test-only task card with 30/30 images of the synthetic demo set, batch size 1 so every image is
its own cache shard) and uses the `pixels` encoder, so a run starts and embeds in seconds; the slow variant repeats
it with `random-cnn` (torch), a 60/60 task and 20 kill points.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support import (
    LARGE_TASK_ID,
    TASK_ID,
    VOLATILE,
    child_pids,
    make_registry_root,
    run_in_process,
    still_alive,
    task_card,
)

# Before the other files (tests/conftest.py): ten kills and resumes, one by one.
RUN_EARLY = True

REPO = Path(__file__).resolve().parents[1]


def eval_args(encoder: str, data_root: Path, out: Path, task: str = TASK_ID) -> list[str]:
    return ["eval", "--task", task, "--encoder", encoder, "--data-root", str(data_root), "--out", str(out),
            "--device", "cpu", "--analyses", "none", "--workers", "0", "--batch-size", "1"]


def eval_command(encoder: str, data_root: Path, out: Path, task: str = TASK_ID) -> list[str]:
    return [sys.executable, "-c", "from runner.cli.main import app; app()", *eval_args(encoder, data_root, out, task)]


def eval_in_process(registry: Path, cache: Path, *args) -> subprocess.CompletedProcess:
    """`runner eval` run to its end in this process (tests.support.run_in_process): the runs that are not killed
    need no process of their own, and each start costs ~1.4 CPU-s of imports. Killed runs stay real processes."""
    return run_in_process(eval_args(*args), {"CXR_REGISTRY_ROOT": str(registry), "CXR_CACHE_DIR": str(cache)})


def eval_env(registry: Path, cache: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "CXR_REGISTRY_ROOT": str(registry), "CXR_CACHE_DIR": str(cache),
            "OMP_NUM_THREADS": "1"}


def committed_shards(cache: Path) -> int:
    return sum(1 for _ in cache.glob("*/shard-*.keys.json"))


def read_cache(cache: Path) -> dict[str, np.ndarray]:
    """Every committed entry (key -> vector), checking that no shard is corrupt on the way."""
    entries: dict[str, np.ndarray] = {}
    for keys_file in sorted(cache.glob("*/shard-*.keys.json")):
        meta = json.loads(keys_file.read_text(encoding="utf-8"))  # {format, keys, sha256 (the shard's checksum), ...}
        keys = meta.get("keys") if isinstance(meta, dict) else None
        assert isinstance(keys, list) and keys and all(isinstance(k, str) and len(k) == 64 for k in keys), keys_file
        assert isinstance(meta.get("sha256"), str) and meta["sha256"][:32] in keys_file.name, keys_file
        array = np.load(keys_file.with_name(keys_file.name.replace(".keys.json", ".npy")), allow_pickle=False)
        assert array.dtype == np.float32 and array.ndim == 2 and array.shape[0] == len(keys), keys_file
        assert np.isfinite(array).all(), keys_file
        for key, row in zip(keys, array):
            if key in entries:  # the same image embedded twice (a shard rewritten after a kill) must agree
                assert entries[key].tobytes() == row.tobytes(), key
            entries[key] = row
    for orphan in cache.glob("*/shard-*.npy"):  # an .npy whose keys file never landed: whole, and never indexed
        assert np.load(orphan, allow_pickle=False).ndim == 2, orphan
    return entries


def comparable(result_path: Path) -> dict:
    result = json.loads(result_path.read_text(encoding="utf-8"))
    return {k: v for k, v in result.items() if k not in VOLATILE}


def assert_same_run(out_a: Path, out_b: Path, encoder: str, task: str = TASK_ID) -> None:
    run_a, run_b = out_a / task / encoder, out_b / task / encoder
    assert comparable(run_a / "result.json") == comparable(run_b / "result.json")
    pd.testing.assert_frame_equal(pd.read_parquet(run_a / "predictions.parquet"),
                                  pd.read_parquet(run_b / "predictions.parquet"), check_exact=True)
    assert (out_a / task / "manifest.parquet").read_bytes() == (out_b / task / "manifest.parquet").read_bytes()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_data_dir):
    root = tmp_path_factory.mktemp("crash")
    # only the cards these runs use: each of the ~15 `runner eval` processes loads (and validates) every card
    registry = make_registry_root(root / "registry", {TASK_ID: task_card(TASK_ID, 30),
                                                      LARGE_TASK_ID: task_card(LARGE_TASK_ID, 60)})
    return {"root": root, "registry": registry, "data": demo_data_dir}


def baseline(setup, encoder: str, task: str = TASK_ID) -> tuple[Path, Path]:
    """One uninterrupted run (cache, out), made once per encoder and task, in this process."""
    out, cache = setup["root"] / f"base-{task}-{encoder}-out", setup["root"] / f"base-{task}-{encoder}-cache"
    if not (out / task / encoder / "result.json").is_file():
        proc = eval_in_process(setup["registry"], cache, encoder, setup["data"], out, task)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return out, cache


def kill_and_resume(setup, encoder: str, kills: int, seed: int, tag: str, task: str = TASK_ID) -> list[str]:
    """SIGKILL `runner eval` at `kills` seeded random points, resuming each time; then let it finish.

    Kill points: the first after a random delay while starting or sampling (at the latest when the first new shard
    lands: a run that starts fast would otherwise be killed near its end, leaving too few shards for the other kill
    points), the others once the cache holds a random number of new shards plus a random jitter of up to 20 ms (so
    some land mid-write).
    """
    rng = random.Random(seed)
    out, cache = setup["root"] / f"{tag}-out", setup["root"] / f"{tag}-cache"
    command, env = eval_command(encoder, setup["data"], out, task), eval_env(setup["registry"], cache)
    points: list[str] = []
    attempts = 0
    while len(points) < kills:
        attempts += 1
        assert attempts < 3 * kills, f"runs kept finishing before the kill point; killed at {points}"
        before = committed_shards(cache)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not points:
            deadline, target = time.monotonic() + rng.uniform(0.3, 2.0), None
        else:
            deadline, target = None, before + rng.randint(1, 3)
        while proc.poll() is None:
            if (deadline and (time.monotonic() >= deadline or committed_shards(cache) > before)) or \
                    (target and committed_shards(cache) >= target):
                time.sleep(rng.uniform(0, 0.02))
                break
            time.sleep(0.005)
        if proc.poll() is not None:  # finished first: start over from an empty run folder so a later kill can land
            assert proc.returncode == 0, proc.stderr.read().decode()
            shutil.rmtree(out / task / encoder, ignore_errors=True)
            continue
        children = child_pids(proc.pid)  # the sampler's file-checking processes, when it was killed while sampling
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        assert not still_alive(children), f"processes of the killed run outlived it: {children}"
        points.append(f"t={deadline is not None} shards {before}->{committed_shards(cache)}")
        read_cache(cache)  # after every kill: nothing committed is corrupt
    final = eval_in_process(setup["registry"], cache, encoder, setup["data"], out, task)  # the resume, to its end
    assert final.returncode == 0 and "Traceback" not in final.stderr, final.stderr
    return points


def check_resumed(setup, encoder: str, tag: str, task: str = TASK_ID) -> None:
    base_out, base_cache = baseline(setup, encoder, task)
    out, cache = setup["root"] / f"{tag}-out", setup["root"] / f"{tag}-cache"
    assert_same_run(base_out, out, encoder, task)
    base_entries, entries = read_cache(base_cache), read_cache(cache)
    assert set(entries) == set(base_entries)
    for key, vector in base_entries.items():
        assert entries[key].tobytes() == vector.tobytes(), key


def test_sigkill_at_ten_random_points_then_resume(setup):
    points = kill_and_resume(setup, "pixels", kills=10, seed=9, tag="kill-pixels")
    assert len(points) == 10
    check_resumed(setup, "pixels", "kill-pixels")
    print("kill points survived:", points)


def test_two_runs_filling_one_cache_at_once(setup):
    """Two `runner eval` processes on one empty cache at the same moment: both finish, same result, sound cache."""
    cache = setup["root"] / "shared-cache"
    outs = [setup["root"] / f"shared-out-{i}" for i in range(2)]
    procs = [subprocess.Popen(eval_command("pixels", setup["data"], out), env=eval_env(setup["registry"], cache),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for out in outs]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    assert_same_run(outs[0], outs[1], "pixels")
    base_out, base_cache = baseline(setup, "pixels")
    assert_same_run(base_out, outs[0], "pixels")
    entries, base_entries = read_cache(cache), read_cache(base_cache)
    assert set(entries) == set(base_entries)
    assert all(entries[k].tobytes() == v.tobytes() for k, v in base_entries.items())


@pytest.mark.slow
def test_sigkill_random_cnn_twenty_points(setup):
    points = kill_and_resume(setup, "random-cnn", kills=20, seed=21, tag="kill-cnn", task=LARGE_TASK_ID)
    assert len(points) == 20
    check_resumed(setup, "random-cnn", "kill-cnn", LARGE_TASK_ID)
    print("kill points survived:", points)
