"""Shared fixtures. Data is made by code (synthetic DICOMs) or comes from packages (pydicom-data).

The thread environment is set first, before anything here or in a test module can load OpenMP (torch, scikit-learn,
LightGBM read it only when their library loads: runner.runtime.threads).

Session fixtures are built once and shared read-only: a test that changes one works on its own copy. `real_site` is
built once even when fork workers (tests/fork_workers.py, `make test`) or pytest-xdist workers run the session in
several processes (tests/support.py shared_folder).
"""

from __future__ import annotations

import os
import sys

from runner.runtime.threads import THREAD_ENVIRONMENT, loaded_openmp_libraries, set_thread_environment

# What had already loaded (and read its settings) and what the user had set, for tests/test_threads.py.
THREADS_AT_SETUP = (loaded_openmp_libraries(), {name: os.environ.get(name) for name in THREAD_ENVIRONMENT})
THREADS_IN_EFFECT = set_thread_environment()

# Below here anything may load OpenMP.
import json

import pytest

from tests.support import (
    REAL_SITE,
    RealSite,
    build_real_site,
    session_folder,
    shared_folder,
    start_real_site_build,
)
from tests.worker_count import auto_workers

pytest_plugins = ["tests.fork_workers"]  # `--fork-workers N`: make test's parallel runner


def pytest_xdist_auto_num_workers(config):
    """pytest-xdist's `-n auto`: as `make test`'s `--fork-workers auto`, one worker per core on a quiet machine, more
    beside other CPU-bound processes, so the suite keeps its share of a shared machine (tests/worker_count.py says
    why). $PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set (pytest-xdist's own rule)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return auto_workers()


@pytest.fixture(scope="session")
def thread_environment_at_setup():
    """(OpenMP runtimes loaded when conftest set the thread environment, what was set before, what is in effect)."""
    return (*THREADS_AT_SETUP, THREADS_IN_EFFECT)


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
    """A small synthetic demo data set, built once per session, also when several workers run it (shared_folder).
    Read-only: copy it before changing anything.

    80 patients -> ~220 DICOM files (~190 frontal), images ~128 px for speed; layout and mix as `runner demo-data`:
    metadata.csv, README.txt, demo_data.json (seed, counts, deliberately corrupt files), files/.
    """
    from runner.data.synthetic import make_demo_dataset

    def build(folder):
        make_demo_dataset(folder / "demo", seed=0, n_patients=80, image_size=128)

    return shared_folder(tmp_path_factory, "demo-data", build) / "demo"


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """Every test's default cache folder (embeddings, regeneration records) is the session's own, never ~/.cache.

    numba's machine code (UMAP's, runner.analysis.clustering) goes to one folder that every worker of the session
    shares, unless the user set $NUMBA_CACHE_DIR: a worker's first UMAP fit otherwise compiled umap-learn again
    (~25 CPU-s on the 2-core machine) where another worker had just done it. numba invalidates its own entries, and
    writes them atomically, so sharing changes no layout."""
    saved = {name: os.environ.get(name) for name in ("CXR_CACHE_DIR", "NUMBA_CACHE_DIR")}
    os.environ["CXR_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    if saved["NUMBA_CACHE_DIR"] is None:
        os.environ["NUMBA_CACHE_DIR"] = str(_session_numba_cache(tmp_path_factory))
        if "numba" in sys.modules:  # numba read its settings when it was imported
            sys.modules["numba"].core.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _session_numba_cache(tmp_path_factory):
    folder = session_folder(tmp_path_factory) / "numba"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def real_site(tmp_path_factory) -> RealSite:
    """The site of the project's own cards and filed results (leaderboard/results/), as `runner leaderboard build`
    makes it, every filed result verified again (no regeneration record reused): built once per session, shared by
    every worker. Read-only; a test that changes a site builds its own. A card that does not load fails the
    first test that asks for this (tests that check the cards load them first, so the failure is theirs). With workers
    it is usually built already, or being built, by the process pytest_collection_finish started."""
    out = shared_folder(tmp_path_factory, REAL_SITE, build_real_site) / "site"
    return RealSite(out / "index.html", json.loads((out / "leaderboard.json").read_text(encoding="utf-8")))


_background_builds = []  # processes this worker started; each ends with the session


def pytest_collection_finish(session):
    """The process that collects (under xdist: worker gw0) starts the real site's build in a process of its own as soon
    as it has collected a test that uses `real_site` (tests/support.py start_real_site_build)."""
    if session.config.option.collectonly or os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return
    if not any("real_site" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    shared_root = session_folder(session.config._tmp_path_factory)  # what shared_folder uses
    _background_builds.append(start_real_site_build(shared_root, shared_root / "real-site-build.log"))


def pytest_collection_modifyitems(items):
    """Files that say `RUN_EARLY = True` go first, then the others, then files with a test that uses `real_site` and
    files that say `RUN_LATE = True` (why, in each file); each group in collection order. `make test` hands whole files
    to its workers in this order (tests/fork_workers.py; xdist: --dist loadfile --no-loadscope-reorder): the long
    files start at once, so none of them ends the session late on one worker while the others are done, and by the
    time the real-site files run, the build started at collection is done, so no worker waits for another's build."""
    late = {item.path for item in items if "real_site" in getattr(item, "fixturenames", ())
            or _module_says(item, "RUN_LATE")}
    items.sort(key=lambda item: 2 if item.path in late else 0 if _module_says(item, "RUN_EARLY") else 1)


def _module_says(item, flag: str) -> bool:
    return bool(getattr(getattr(item, "module", None), flag, False))


def pytest_sessionfinish(session):
    for process in _background_builds:
        if process.poll() is None:  # nobody needed it after all (a failing run stopped early): stop it
            process.terminate()
        process.wait()
