"""LightGBM boosters fitted side by side, each in its own process: the one place fits run in parallel.

Entry: `fit_all(jobs, threads) -> list[FitOutcome]`, in the order of `jobs`; `submit_all` sends them without
waiting (`PendingFits.results()` waits), so a batch `runner eval` queues every pair's folds before it reads any;
`warm_up(threads)` starts the fit processes in the background (while a run loads its embeddings).

Independent fits (classify's folds, label efficiency's runs) share the cores the card allows. LightGBM is not safe
with two boosters training at once in one process: run in Python threads, a fresh-clone `runner demo` segfaulted
after `std::bad_alloc` (docs/benchmarks.md). So they run in `threads` fresh loky processes, one LightGBM thread per
fit (more per fit when there are fewer jobs than processes), from one pool kept for the life of this process: a
worker starts once (~0.8 s: numpy and LightGBM) and then fits whatever it is sent.
Batches too small to repay that start run here, one fit at a time on every thread, as do batches of one job; once
the processes are up, every batch of two or more goes to them. A fit of fewer than MIN_THREADED_CELLS binned cells runs
on one thread wherever it runs: on so little data LightGBM's OpenMP threads wait on each other more than they work.

A fit gives the same bytes wherever it runs: LightGBM with `deterministic=True` grows the same trees for any thread
count (tests/test_classify.py, tests/test_fitpool.py, tests/test_evaluate_batch.py).
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

import numpy as np

from registry.errors import RegistryError
from runner.runtime.signals import start_owned_worker
from runner.runtime.threads import set_thread_environment

# Below this many binned cells (rows x features, summed over the jobs) the fits run here: a 2000 x 1024, 5-fold
# classify bins 8.2 M cells and costs ~7.6 CPU-s, so 2 M cells (~2 s) is about where a worker start is repaid.
MIN_POOL_CELLS = 2_000_000
# Below this many binned cells (rows x features) one fit runs on one LightGBM thread, whatever the card allows: the same
# trees (deterministic=True), less CPU and no more wall. Measured on the 2-core dev machine (load ~3.5-4, 1,600 rows,
# the task defaults' parameters, 5 fits each): 4.8 k cells (the metadata baseline's few columns) 0.088 CPU-s per fit on
# two threads vs 0.057 on one; 205 k cells 0.089 vs 0.042; 410 k cells 0.090 vs 0.083 (equal wall); 1.6 M cells
# 0.33 CPU-s on either, 0.35 s wall on two threads vs 0.53 s on one. Predictions identical to the byte in every case.
MIN_THREADED_CELLS = 400_000


class FitProcessError(RegistryError, RuntimeError):
    """A fit process ended before returning its fit (killed, out of memory, or crashed)."""

    exit_code = 1


@dataclass(frozen=True)
class FitJob:
    """Everything one booster needs, so that it can be fitted here or in a fit process."""

    binned_x: np.ndarray  # the rows LightGBM bins: its feature bin edges come from these rows only
    binned_y: np.ndarray
    fit_positions: np.ndarray  # rows of binned_x the trees are grown on (sorted)
    valid_positions: np.ndarray | None  # rows of binned_x that decide when to stop adding trees; None: all rounds
    test_x: np.ndarray  # rows to predict, raw values
    params: dict  # LightGBM parameters; fit_all sets num_threads
    n_estimators: int
    early_stopping_rounds: int | None


@dataclass(frozen=True)
class FitOutcome:
    prob: np.ndarray  # P(label = 1) for each row of test_x
    n_trees: int  # trees used to predict: the best iteration when early stopping chose one
    seconds: float


def import_lightgbm():
    """lightgbm, imported without scikit-learn unless this process has already imported it.

    lightgbm imports scikit-learn (and through it SciPy's statistics) for its scikit-learn API when it is installed:
    ~1.3 s of a warm `runner eval --recompute`, which fits through `lgb.train` and needs none of it. scikit-learn is
    blocked for this one import and stays importable afterwards; `lightgbm_classifier()` gives the scikit-learn API.
    """
    if "lightgbm" not in sys.modules and "sklearn" not in sys.modules:
        sys.modules["sklearn"] = None  # lightgbm.compat then takes its "scikit-learn is not installed" path
        try:
            import lightgbm
        finally:
            if "sklearn" in sys.modules and sys.modules["sklearn"] is None:
                del sys.modules["sklearn"]
    import lightgbm

    return lightgbm


def lightgbm_classifier():
    """lightgbm.LGBMClassifier, its module loaded again with scikit-learn when `import_lightgbm` left that out."""
    import importlib

    import sklearn  # noqa: F401  (lightgbm.compat looks for it)

    lightgbm = import_lightgbm()
    if not lightgbm.compat.SKLEARN_INSTALLED:
        importlib.reload(lightgbm.compat)
        importlib.reload(lightgbm.sklearn)
    return lightgbm.sklearn.LGBMClassifier


def fit_one(job: FitJob) -> FitOutcome:
    """Bin, grow and predict one booster in this process."""
    lgb = import_lightgbm()

    start = time.perf_counter()
    base = lgb.Dataset(job.binned_x, label=job.binned_y, params=job.params, free_raw_data=False).construct()
    callbacks, valid_sets = [], []
    if job.valid_positions is not None:
        valid_sets = [base.subset(job.valid_positions)]
        callbacks = [lgb.early_stopping(job.early_stopping_rounds, verbose=False)]
    booster = lgb.train(job.params, base.subset(job.fit_positions), num_boost_round=job.n_estimators,
                        valid_sets=valid_sets, callbacks=callbacks)
    stopped = job.valid_positions is not None and booster.best_iteration > 0
    n_trees = booster.best_iteration if stopped else booster.num_trees()
    prob = booster.predict(job.test_x, num_iteration=n_trees)
    return FitOutcome(np.asarray(prob, dtype=float), int(n_trees), time.perf_counter() - start)


def fit_all(jobs: list[FitJob], threads: int) -> list[FitOutcome]:
    """Fit every job on `threads` threads in all: side by side in fit processes when that pays, else here."""
    return submit_all(jobs, threads).results()


def submit_all(jobs: list[FitJob], threads: int) -> PendingFits:
    """`fit_all` without waiting: the jobs are queued in the fit processes now (when they go there) and read later,
    so that the caller can plan the next batch meanwhile. Jobs that run here run when `results()` is called."""
    jobs = list(jobs)
    side_by_side = min(threads, len(jobs))
    cells = sum(job.binned_x.size for job in jobs)
    if side_by_side < 2 or (cells < MIN_POOL_CELLS and threads not in _POOL):
        return PendingFits([_with_threads(job, _threads_for(job, threads)) for job in jobs], [], cells)
    each = max(1, threads // side_by_side)
    futures = []
    try:  # starting the processes is inside: an interrupt while they start must end them too
        pool = _pool(threads)
        futures = [pool.submit(fit_one, _with_threads(job, _threads_for(job, each))) for job in jobs]
    except BrokenProcessPool:
        _close_pool()
        raise FitProcessError(_DIED) from None
    except BaseException:
        _close_pool()
        raise
    return PendingFits([], futures, cells)


_DIED = ("a LightGBM fit process ended before returning its fit (killed, out of memory, or crashed); "
         "run again, or set the task card's classifier.num_threads to 1 to fit in this process")


@dataclass
class PendingFits:
    """Fits sent to the fit processes (`futures`) or still to run here (`here`): one of the two is empty."""

    here: list[FitJob]
    futures: list
    cells: int  # binned rows x features of the jobs, held in this process until they are read

    def results(self) -> list[FitOutcome]:
        if self.here:
            return [fit_one(job) for job in self.here]
        try:
            return [future.result() for future in self.futures]
        except BrokenProcessPool:
            _close_pool()
            raise FitProcessError(_DIED) from None
        except Exception:  # one fit's own error: the others are not read, the pool stays
            self.cancel()
            raise
        except BaseException:  # Ctrl-C or SIGTERM (runner.runtime.signals): stop the fits now, not when they finish
            _close_pool()
            raise

    def cancel(self) -> None:
        """Drop the fits not yet started (a caller that will not read them)."""
        for future in self.futures:
            future.cancel()


def warm_up(threads: int) -> None:
    """Start the `threads` fit processes now, in the background: their start (numpy and LightGBM imports) then
    overlaps whatever this process does next instead of delaying the first batch."""
    if threads < 2 or threads in _POOL:
        return
    try:
        pool = _pool(threads)
        for _ in range(threads):
            pool.submit(_ready)
    except BaseException:
        _close_pool()
        raise


def _ready() -> bool:
    return True


def _threads_for(job: FitJob, threads: int) -> int:
    """The LightGBM threads of one fit given `threads`: one for a fit too small to share (MIN_THREADED_CELLS)."""
    return 1 if job.binned_x.size < MIN_THREADED_CELLS else threads


def _with_threads(job: FitJob, threads: int) -> FitJob:
    return replace(job, params={**job.params, "num_threads": int(threads)})


_POOL: dict = {}  # threads -> the pool of that many fit processes (at most one)


def _pool(workers: int):
    """loky's executor, private to the fits: its processes start fresh (no fork of a parent that may hold torch's
    or LightGBM's OpenMP threads) and, unlike multiprocessing's spawn, do not re-run the caller's main script, so a
    script without an `if __name__ == "__main__":` guard can call classify."""
    if workers not in _POOL:
        from loky import ProcessPoolExecutor

        _close_pool()
        _POOL[workers] = ProcessPoolExecutor(
            workers, initializer=_start_fit_process, initargs=(os.getpid(),),
            env=set_thread_environment(dict(os.environ)))  # their OpenMP loads after this: runner.runtime.threads
    return _POOL[workers]


def _close_pool() -> None:
    for pool in _POOL.values():
        pool.shutdown(wait=False, kill_workers=True)
    _POOL.clear()


atexit.register(_close_pool)

def _start_fit_process(parent_pid: int) -> None:
    start_owned_worker(parent_pid)  # a run killed with SIGKILL ends nothing itself: its fits must not go on for minutes
    # LightGBM imports scikit-learn and pandas when it finds them (~1.5 s of a 2.3 s start); a fit uses neither.
    for optional in ("sklearn", "pandas"):
        sys.modules.setdefault(optional, None)
    import lightgbm  # noqa: F401  (imported once per process, before the first job)
