"""The thread environment (runner.runtime.threads) is in effect where it matters: in a `runner` process and in this
test session, i.e. set before OpenMP was loaded, which is the only time libgomp reads it.

In a subprocess libgomp itself says what it read: OMP_DISPLAY_ENV=verbose makes every copy print its settings when
it loads; passive waiting shows as GOMP_SPINCOUNT = '0' (the default spins 300000 times).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from runner.runtime.threads import THREAD_ENVIRONMENT, loaded_openmp_libraries, set_thread_environment
from tests.support import REPO

# Before the other files (tests/conftest.py): child processes that load torch and LightGBM, one by one (~10 CPU-s).
RUN_EARLY = True

# The libraries that bring OpenMP: torch's and scikit-learn's own libgomp copies, and the one LightGBM links.
LOAD_OPENMP = "import lightgbm, sklearn.cluster, torch"


def _run(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter without the thread environment; libgomp prints its settings as it loads."""
    environ = {k: v for k, v in os.environ.items() if k not in THREAD_ENVIRONMENT}
    environ.update(PYTHONPATH=str(REPO), OMP_DISPLAY_ENV="verbose")
    done = subprocess.run([sys.executable, "-c", code], env=environ, cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _spin_counts(code: str) -> list[str]:
    """GOMP_SPINCOUNT of every libgomp that loads while `code` runs in a fresh interpreter."""
    return re.findall(r"GOMP_SPINCOUNT = '(\d+)'", _run(code).stderr)


def test_the_runner_entry_point_sets_passive_waiting_before_openmp_loads():
    pytest.importorskip("torch")
    # the `runner` console script is `from runner.cli.main import app; app()`: the import runs first
    spins = _spin_counts(f"import runner.cli.main; {LOAD_OPENMP}")
    assert spins and set(spins) == {"0"}, spins
    # without it libgomp spins (LightGBM alone, to save a torch import): the check can fail
    spins = _spin_counts("import lightgbm")
    assert spins and "0" not in spins, spins


def test_python_callers_of_the_runner_package_get_it_too():
    """`from runner.evaluate import evaluate` (the API, no console script) sets it before OpenMP loads; importing
    torch first is too late, and says so."""
    pytest.importorskip("torch")
    spins = _spin_counts(f"import runner.evaluate; {LOAD_OPENMP}")
    assert spins and set(spins) == {"0"}, spins
    late = _run("import lightgbm, warnings; warnings.simplefilter('error')\ntry:\n    import runner\n"
                "except RuntimeWarning as w:\n    print('warned:', w)")
    assert "warned: OMP_WAIT_POLICY set after OpenMP loaded" in late.stdout, late.stdout + late.stderr


def test_this_test_session_set_it_before_openmp_loaded(thread_environment_at_setup):
    """tests/conftest.py set the environment before anything had loaded an OpenMP runtime in this process (each
    xdist worker is a process of its own and runs conftest first too); OpenMP has loaded since, so it read these
    values."""
    pytest.importorskip("torch")
    import lightgbm  # noqa: F401
    import torch  # noqa: F401

    loaded_before, set_before, in_effect = thread_environment_at_setup
    assert loaded_before == []
    assert in_effect == {name: set_before[name] or value for name, value in THREAD_ENVIRONMENT.items()}
    assert in_effect == {name: os.environ[name] for name in THREAD_ENVIRONMENT}
    assert loaded_openmp_libraries(), "no OpenMP runtime loaded: this check would prove nothing"


def test_set_thread_environment_keeps_what_is_set():
    assert set_thread_environment({}) == THREAD_ENVIRONMENT
    assert set_thread_environment({"OMP_WAIT_POLICY": "ACTIVE"}) == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_the_makefile_exports_the_same_settings_for_demo_and_test():
    exported = re.findall(r"^demo test: export (\w+) \?= (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert dict(exported) == THREAD_ENVIRONMENT
