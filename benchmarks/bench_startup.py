"""Start-up benchmark: a warm (fully cached) `runner eval` of a demo task, before vs after, in one run.

before: the code at the base commit (default 3e7b68d, extracted with `git archive`); after: this checkout. Each
side runs `runner eval --task effusion-demo --encoder random-cnn` (the card's analyses) as a fresh process, once to
fill its run folder and the shared embedding cache (the encoder card, hence the cache namespace, is the same on both
sides), then --runs more times warm. Each side is timed two ways:
  --recompute   every embedding from the cache, the classifier and metrics computed again;
  (reused)      the same inputs again: the result in the run folder stands (runner/results/reuse.py).
Walls are timed without instrumentation; one more run per row under `python -X importtime` tells which heavy
stacks (and whether scikit-learn) it imported.

    .venv/bin/python benchmarks/bench_startup.py [--runs 3] [--work /tmp/cxr-bench-startup] [--base 3e7b68d]

The demo data set is generated under --work the first time (`runner demo-data`, a minute or two).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_classify import ROOT, base_tree, load_line

HEAVY = ("torch", "tensorflow", "umap", "numba", "ray", "triton", "keras", "sklearn")


def _eval(code_root: Path, work: Path, side: str, *extra: str, importtime: bool = False
          ) -> tuple[float, float, list[str]]:
    """(wall s, CPU s of the process (user + system), heavy stacks it imported (importtime only)) of one run."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "CXR_REGISTRY_ROOT": str(code_root),
           "CXR_CACHE_DIR": str(work / "cache")}
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "runner.cli.main", "eval", "--task",
           "effusion-demo", "--encoder", "random-cnn", "--data-root", str(work / "data"),
           "--out", str(work / f"runs-{side}"), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=code_root, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{side}: runner eval failed: {proc.stderr.splitlines()[-1:]}")
    # a package counts once one of its submodules was imported: a bare name can be an attempt that was blocked
    # (runner.classify.fit_processes.import_lightgbm keeps LightGBM from importing scikit-learn that way)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "." in line.split("|")[-1]}
    return wall, cpu, sorted(imported & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base", default="3e7b68d")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cxr-bench-startup"))
    args = parser.parse_args()
    work = args.work
    if not (work / "data" / "demo_data.json").is_file():
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "runner.cli.main", "demo-data", "--out", str(work / "data")], env=env,
                       cwd=ROOT, check=True)
    load_before = load_line()
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"before": base_tree(args.base, Path(tmp) / "base"), "after": ROOT}
        for side, root in roots.items():
            _eval(root, work, side)  # fills the run folder (manifest) and, the first time, the embedding cache
        rows = {"before --recompute": (roots["before"], ("--recompute",)),
                "after --recompute": (ROOT, ("--recompute",)),
                "before (reused)": (roots["before"], ()), "after (reused)": (ROOT, ())}
        walls: dict[str, list[float]] = {row: [] for row in rows}
        cpus: dict[str, list[float]] = {row: [] for row in rows}
        for _ in range(args.runs):  # interleaved, so a change in the machine's load hits every row alike
            for row, (root, extra) in rows.items():
                wall, cpu, _ = _eval(root, work, row.split()[0], *extra)
                walls[row].append(wall)
                cpus[row].append(cpu)
        heavy = {row: _eval(root, work, row.split()[0], *extra, importtime=True)[2]
                 for row, (root, extra) in rows.items()}
    print(f"warm `runner eval --task effusion-demo --encoder random-cnn`, {os.cpu_count()} cores, {load_before} at "
          f"the start, {load_line()} at the end; seconds over {args.runs} runs (CPU: user + system of the process)")
    print(f"{'':18} {'wall min / median':>18} {'CPU min / median':>18}  heavy stacks imported (scikit-learn too)")
    for row, row_walls in walls.items():
        w, c = sorted(row_walls), sorted(cpus[row])
        print(f"{row:18} {w[0]:8.2f} / {w[len(w) // 2]:6.2f} {c[0]:8.2f} / {c[len(c) // 2]:6.2f}  "
              f"{', '.join(heavy[row]) or 'none'}")


if __name__ == "__main__":
    main()
