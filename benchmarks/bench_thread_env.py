"""Which thread settings matter: the same pytest node ids under several thread environments, interleaved.

Each variant runs the node ids in a fresh `python -m pytest` process whose environment has every variable of
VARIABLES removed, then the variant's own settings added (so neither this shell nor tests/conftest.py's defaults
leak in: conftest only sets defaults, `setdefault`, so a variant that names a variable keeps its value). Variants
take turns (A B C A B C ...) so a change in the machine's load hits them all alike; the report gives every time, the
median and the minimum per variant, and the load average before and after.

    .venv/bin/python benchmarks/bench_thread_env.py [--runs 3] [--variant NAME=K=V,K=V ...] NODEID [NODEID ...]

Without --variant: `default` (nothing set: libgomp spins idle threads ~300k iterations, OpenBLAS ~2^28 cycles),
`passive` (OMP_WAIT_POLICY=PASSIVE), `passive+blas` (also OPENBLAS_THREAD_TIMEOUT=4, OpenBLAS's shortest spin).
`default` sets OMP_WAIT_POLICY to "" rather than leaving it out: an unset variable would get conftest's default, and
libgomp treats an empty value as unset.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "OPENBLAS_THREAD_TIMEOUT", "KMP_BLOCKTIME", "PYTEST_XDIST_AUTO_NUM_WORKERS")
DEFAULT_VARIANTS = {
    "default": {"OMP_WAIT_POLICY": ""},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "passive+blas": {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"},
}


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, settings = text.partition("=")
    pairs = [s.split("=", 1) for s in settings.split(",") if s]
    return name, {k: v for k, v in pairs}


def run_once(nodeids: list[str], settings: dict, extra: list[str]) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(settings)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, *nodeids],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-2000:], file=sys.stderr)
    return elapsed, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("nodeids", nargs="+")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[], help="NAME=KEY=VALUE,KEY=VALUE")
    parser.add_argument("--pytest-arg", action="append", default=[], help="extra pytest argument, e.g. -n2")
    args = parser.parse_args()
    variants = dict(parse_variant(v) for v in args.variant) or DEFAULT_VARIANTS
    times: dict[str, list[float]] = {name: [] for name in variants}
    print(f"load before: {os.getloadavg()}", flush=True)
    for i in range(args.runs):
        for name, settings in variants.items():
            elapsed, rc = run_once(args.nodeids, settings, args.pytest_arg)
            times[name].append(elapsed)
            print(f"run {i + 1} {name:>14}: {elapsed:7.1f} s (rc {rc}) load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load after: {os.getloadavg()}")
    for name, values in times.items():
        print(f"{name:>14}: median {statistics.median(values):7.1f} s  min {min(values):7.1f} s  "
              f"all {[round(v, 1) for v in values]}  {variants[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
