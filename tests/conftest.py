"""Shared fixtures. Data is made by code (synthetic DICOMs) or comes from packages (pydicom-data).

The thread environment is set first, before anything here or in a test module can load OpenMP (torch, scikit-learn,
LightGBM read it only when their library loads: runner.runtime.threads).

Session fixtures are built once and shared read-only: a test that changes one works on its own copy. `real_site` is
built once even when pytest-xdist runs the session in several workers (tests/support.py shared_folder).
"""

from __future__ import annotations

import getpass
import os
import tempfile

from runner.runtime.threads import THREAD_ENVIRONMENT, loaded_openmp_libraries, set_thread_environment

# What had already loaded (and read its settings) and what the user had set, for tests/test_threads.py.
THREADS_AT_SETUP = (loaded_openmp_libraries(), {name: os.environ.get(name) for name in THREAD_ENVIRONMENT})
THREADS_IN_EFFECT = set_thread_environment()

# umap-learn's numba code compiles once into a cache that numba itself invalidates when the sources or numba change
# (runner.analysis.clustering._import_umap); the compile costs ~35 CPU-s on the 2-core machine. Every test session
# and xdist worker shares one such cache instead of compiling into its own private cache folder
# (runner.embed.cache.numba_cache_dir: CXR_CACHE_DIR/numba). Set before anything can import numba; a
# NUMBA_CACHE_DIR the user set stands. Compiled code only: no test result is read from it.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(),
                                                      f"cxr-registry-tests-numba-{getpass.getuser()}"))

# Below here anything may load OpenMP.
import json

import pytest

from tests.support import REPO, RESULTS_DIR, RealSite, shared_folder


@pytest.fixture(scope="session")
def thread_environment_at_setup():
    """(OpenMP runtimes loaded when conftest set the thread environment, what was set before, what is in effect)."""
    return (*THREADS_AT_SETUP, THREADS_IN_EFFECT)


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
    """A small synthetic demo data set, built once per session (read-only: copy it before changing anything).

    80 patients -> ~220 DICOM files (~190 frontal), images ~128 px for speed; layout and mix as `runner demo-data`:
    metadata.csv, README.txt, demo_data.json (seed, counts, deliberately corrupt files), files/.
    """
    from runner.data.synthetic import make_demo_dataset

    out = tmp_path_factory.mktemp("demo-data") / "demo"
    make_demo_dataset(out, seed=0, n_patients=80, image_size=128)
    return out


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """Every test's default cache folder (embeddings, regeneration records) is the session's own, never ~/.cache."""
    before = os.environ.get("CXR_CACHE_DIR")
    os.environ["CXR_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("CXR_CACHE_DIR", None)
    else:
        os.environ["CXR_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def real_site(tmp_path_factory) -> RealSite:
    """The site of the project's own cards and filed results (leaderboard/results/), as `runner leaderboard build`
    makes it, every filed result verified again (no regeneration record reused): built once per session, shared by
    every xdist worker. Read-only; a test that changes a site builds its own. A card that does not load fails the
    first test that asks for this (tests that check the cards load them first, so the failure is theirs)."""
    from leaderboard.site.render import build_site
    from registry.cards import clear_cache, load_registry

    def build(folder):
        clear_cache()
        build_site(folder / "site", RESULTS_DIR, load_registry(REPO))

    out = shared_folder(tmp_path_factory, "real-site", build) / "site"
    return RealSite(out / "index.html", json.loads((out / "leaderboard.json").read_text(encoding="utf-8")))
