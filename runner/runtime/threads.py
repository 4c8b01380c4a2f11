"""The process's thread environment, set before anything loads OpenMP (torch, scikit-learn, LightGBM).

libgomp reads its variables once, when the library is first loaded; setting them after `import torch` or
`import lightgbm` changes nothing in that process. So `set_thread_environment()` runs when the `runner` package is
first imported (runner/__init__.py: the `runner` command and Python callers alike) and first in the test session
(tests/conftest.py), and the Makefile exports the same
values for `make test` and `make demo`. A value already in the environment wins (the user's choice), and child
processes (decode workers, fit processes, subprocesses) inherit what is set here.

OMP_WAIT_POLICY=PASSIVE: an idle libgomp thread otherwise spins (GOMP_SPINCOUNT 300000) before it sleeps. With more
busy threads than cores (2 cores shared by several processes here) the spinning threads take the cores from the ones
with work: a 5-fold LightGBM fit ran 5-10x slower after torch had run, a test 3-5x slower beside other work. Passive
waiting costs nothing measurable when cores are free. benchmarks/bench_thread_env.py measures this and the other
candidates (OpenBLAS's idle spin, thread counts); only this one changed a time beyond the noise.

Only stdlib here: this module is imported before anything else.
"""

from __future__ import annotations

import os
import warnings

THREAD_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}
OPENMP_LIBRARIES = ("libgomp", "libiomp", "libomp")  # GNU, Intel and LLVM OpenMP runtimes


def set_thread_environment(environ=None) -> dict[str, str]:
    """Set every THREAD_ENVIRONMENT variable that is not set yet; returns the values now in effect for them."""
    env = os.environ if environ is None else environ
    for name, value in THREAD_ENVIRONMENT.items():
        env.setdefault(name, value)
    return {name: env[name] for name in THREAD_ENVIRONMENT}


def loaded_openmp_libraries() -> list[str]:
    """Paths of the OpenMP runtimes mapped into this process (Linux /proc/self/maps; [] where unavailable).

    One that is listed before set_thread_environment() ran has already read its settings without them."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {fields[5].strip() for line in maps if len(fields := line.split(None, 5)) == 6}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.basename(p).startswith(OPENMP_LIBRARIES))


def set_thread_environment_at_import() -> None:
    """set_thread_environment(), with a warning when an OpenMP runtime loaded before the values were set: it read
    the environment without them (e.g. `import torch` before `import runner`)."""
    unset = [name for name in THREAD_ENVIRONMENT if name not in os.environ]
    set_thread_environment()
    if unset and (loaded := loaded_openmp_libraries()):
        warnings.warn(f"{', '.join(unset)} set after OpenMP loaded ({os.path.basename(loaded[0])}): it has no effect "
                      "in this process; import runner before torch, scikit-learn or LightGBM, or set it in the "
                      "environment", RuntimeWarning, stacklevel=3)
