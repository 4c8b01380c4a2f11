"""Fits side by side in fit processes (runner.classify.fit_processes): the same bytes as one fit at a time here, a clear error when a
fit process dies, a fit's own error unchanged, and callers' scripts need no main guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import runner.classify.fit_processes as fitpool
from runner.classify.out_of_fold import Design, classify, classify_many
from tests.support import children_after_sigkill, classifier_card, data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def through_the_pool(monkeypatch):
    """Every batch of two or more fits goes to the fit processes, however small."""
    monkeypatch.setattr(fitpool, "MIN_POOL_CELLS", 0)
    yield
    fitpool._close_pool()

CARD = classifier_card()


def test_side_by_side_fits_give_the_bytes_of_one_fit_at_a_time(through_the_pool):
    x, table = data(n=300, dim=24)
    here = classify(x, table, CARD, [0, 1, 2, 3, 4])  # num_threads 1: one fit at a time, in this process
    assert not fitpool._POOL
    apart = classify(x, table, {**CARD, "num_threads": 2}, [0, 1, 2, 3, 4])
    assert list(fitpool._POOL) == [2]  # two fit processes did the fits
    pd.testing.assert_frame_equal(apart.predictions, here.predictions)
    assert [f.n_trees for f in apart.folds] == [f.n_trees for f in here.folds]


def test_classify_many_matches_classify_design_by_design(through_the_pool):
    designs = [Design(*data(n=240, dim=16, seed=seed), [0, 1, 2, 3, 4]) for seed in (1, 2, 3)]
    together = classify_many(designs, {**CARD, "num_threads": 2})
    for design, fitted in zip(designs, together, strict=True):
        alone = classify(design.embeddings, design.table, CARD, design.eval_folds)
        pd.testing.assert_frame_equal(fitted.predictions, alone.predictions)


def test_label_efficiency_aurocs_are_the_same_side_by_side(through_the_pool):
    from runner.analysis.label_efficiency import label_efficiency
    from runner.classify.out_of_fold import card_fit_predict

    x, table = data(n=300, dim=16)

    def curve(card):
        return label_efficiency(x, table, sizes=[20, 40], seeds=[0, 1], fit_predict=card_fit_predict(card))

    here, apart = curve(CARD), curve({**CARD, "num_threads": 2})
    assert list(fitpool._POOL) == [2]
    assert here == apart


def test_small_batches_and_single_fits_stay_in_this_process(monkeypatch):
    fitpool._close_pool()
    x, table = data(n=240, dim=16)
    classify(x, table, {**CARD, "num_threads": 2}, [0, 1, 2, 3, 4])  # 5 fits, far below MIN_POOL_CELLS
    monkeypatch.setattr(fitpool, "MIN_POOL_CELLS", 0)
    classify(x, table, {**CARD, "num_threads": 2}, [0])  # one fit: nothing to run beside it
    assert not fitpool._POOL


class _EndsTheProcess:
    """Unpickled in a fit process, it ends that process at once: a fit process killed mid-run (OOM, SIGKILL)."""

    size = 1  # what fit_all reads of binned_x before sending it

    def __reduce__(self):
        return (os._exit, (9,))


def _jobs(n: int) -> list[fitpool.FitJob]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = np.arange(200) % 2
    params = {"objective": "binary", "verbosity": -1, "seed": 0, "deterministic": True, "force_col_wise": True}
    return [fitpool.FitJob(x, y, np.arange(200), None, x[:10], params, 5, None) for _ in range(n)]


def test_a_dead_fit_process_is_one_clear_error_and_the_next_batch_works(through_the_pool):
    jobs = _jobs(2)
    jobs[1] = replace(jobs[1], binned_x=_EndsTheProcess())
    with pytest.raises(fitpool.FitProcessError, match="fit process ended before returning its fit"):
        fitpool.fit_all(jobs, threads=2)
    assert not fitpool._POOL  # the broken pool is dropped ...
    assert len(fitpool.fit_all(_jobs(2), threads=2)) == 2  # ... and a new one serves the next batch


def test_an_error_inside_a_fit_reaches_the_caller_unchanged(through_the_pool):
    import lightgbm

    jobs = [replace(job, params={**job.params, "objective": "no-such-objective"}) for job in _jobs(2)]
    with pytest.raises(lightgbm.basic.LightGBMError) as apart:
        fitpool.fit_all(jobs, threads=2)
    with pytest.raises(lightgbm.basic.LightGBMError) as here:
        fitpool.fit_all(jobs, threads=1)
    assert str(apart.value) == str(here.value)


def test_a_script_without_a_main_guard_can_fit_side_by_side(tmp_path):
    """The fit processes do not re-run the caller's script (multiprocessing's spawn would, and fail)."""
    script = tmp_path / "no_guard.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import runner.classify.fit_processes as fitpool
        from tests.test_fitpool import _jobs
        fitpool.MIN_POOL_CELLS = 0
        print(len(fitpool.fit_all(_jobs(3), threads=2)), sorted(fitpool._POOL))
    """))
    done = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "[2]"]
    assert "Traceback" not in done.stderr


def test_ctrl_c_ends_the_fit_processes_instead_of_waiting_for_their_fits(tmp_path):
    """Ctrl-C (SIGINT to the process group) stops a run at once: its fit processes are ended, not left to finish."""
    script = tmp_path / "long_fits.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import numpy as np
        import runner.classify.fit_processes as fitpool
        import runner.runtime.signals as signals
        signals.install()  # as the runner CLI does; the test's own process may ignore SIGINT, and a child inherits that
        x = np.random.default_rng(0).normal(size=(3000, 64))
        y = (x[:, 0] + np.random.default_rng(1).normal(size=3000) > 0).astype(int)
        params = {{"objective": "binary", "verbosity": -1, "min_data_in_leaf": 1, "num_leaves": 255}}
        # ~minutes of trees each: far longer than the test waits
        jobs = [fitpool.FitJob(x, y, np.arange(3000), None, x[:5], params, 200_000, None) for _ in range(2)]
        fitpool.MIN_POOL_CELLS = 0
        print("fitting", flush=True)
        fitpool.fit_all(jobs, threads=2)
    """))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)  # its own process group, as a terminal gives a command
    try:
        assert run.stdout.readline().strip() == "fitting"
        workers: list[int] = []
        for _ in range(300):  # until both fit processes are up
            listed = subprocess.run(["pgrep", "-P", str(run.pid)], check=False, capture_output=True, text=True)
            workers = [int(p) for p in listed.stdout.split()]
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        time.sleep(2)  # the fits are under way
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode != 0 and "interrupted (SIGINT)" in run.stderr.read()
    for _ in range(100):
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, f"fit processes {alive} outlived the interrupted run"


def test_a_run_killed_with_sigkill_takes_its_fit_processes_with_it(tmp_path):
    """SIGKILL leaves a run no chance to end its fit processes: Linux ends them (runner.runtime.signals
    `die_with_parent`) instead of leaving them to fit for minutes. Here they wait in a job that sleeps."""
    script = tmp_path / "sleeping_fits.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        import runner.classify.fit_processes as fitpool
        pool = fitpool._pool(2)
        for future in [pool.submit(fitpool._ready) for _ in range(4)]:
            future.result()  # both fit processes started
        jobs = [pool.submit(time.sleep, 600) for _ in range(2)]
        print("fitting", flush=True)
        jobs[0].result()
    """))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers, alive = children_after_sigkill(
        run, "fitting", lambda pid: b"popen_loky_posix" in Path(f"/proc/{pid}/cmdline").read_bytes())
    assert len(workers) == 2
    assert not alive, "fit processes outlived the run killed with SIGKILL"
