"""Classifier stage benchmark: classify + CIs on 2000 x 1024 float32 embeddings, 5 folds, before vs after, one run.

before: the code at the base commit (default 3e7b68d), extracted with `git archive` into a temporary folder;
after:  this checkout. Each side runs in its own processes (PYTHONPATH = its code) and times
  single: runner.classify.out_of_fold.classify with the task card's classifier block (no num_threads: the code's own thread
          choice), then runner.metrics.summary.summarize (t-interval + 2000-replicate cluster bootstrap);
  warm:   the single classify + CIs again, the fit processes started while its embeddings were made (runner
          eval starts them while the embeddings load); code without fit_processes.warm_up prints '-'.
  batch:  8 tasks x 2 encoders in one process (what `runner eval --task <8> --encoder <2>` does after the
          embeddings are cached: classify + summarize per pair; each task its own labels and folds, each encoder its
          own embeddings); code with out_of_fold.submit_many sends all 16 pairs' folds before reading the first, as
          runner.evaluate.run_evaluations does. The real embeddings are absent here, so these are synthetic; the images, the cache
          lookup and the result file are not part of this figure.
The parent prints min / median over --runs processes per side (and each process's CPU seconds, its fit processes
included), the machine's load average at the start and the end, and the AUROC differences. `--threads 1,2` adds the
after side with the card's num_threads forced, to show the machine's thread choice. `--naive` adds the naive
baseline: `LGBMClassifier(n_estimators=200)` (LightGBM defaults otherwise) fitted from the raw matrix in every fold.

The embeddings are synthetic but shaped like real ones: correlated dimensions, a label signal spread over a few dozen
directions with a non-linear part, and 1-3 images per patient. Usage:

    .venv/bin/python benchmarks/bench_classify.py [--runs 3] [--base 3e7b68d] [--threads 1,2] [--naive] [--json out]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from runner.runtime.threads import set_thread_environment


def task_defaults_classifier() -> dict:
    """The classifier block every registry task inherits (tasks/_defaults-eval.yaml)."""
    from registry.cards import load_registry

    return dict(load_registry().tasks["effusion-mimic"].data["classifier"])


def synthetic_embeddings(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(n), rng.integers(1, 4, size=n))[:n]
    label = rng.permutation(np.arange(n) % 2)
    latent = rng.normal(size=(n, 64))
    mixing = rng.normal(size=(64, dim)) / 8
    x = latent @ mixing + rng.normal(size=(n, dim))
    signal_dims = rng.choice(dim, size=40, replace=False)
    x[:, signal_dims] += 0.35 * label[:, None] * rng.choice([-1, 1], size=40)
    x[:, signal_dims[:5]] += 0.5 * label[:, None] * np.abs(rng.normal(size=(n, 5)))
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.zeros(n, dtype=int)
    for f, (_, test) in enumerate(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(x, label, patient)):
        fold[test] = f
    table = pd.DataFrame({"image_id": [f"img{i}" for i in range(n)], "patient_id": [f"p{p}" for p in patient],
                          "label": label, "fold": fold})
    return x.astype(np.float32), table


def naive(x: np.ndarray, table: pd.DataFrame, threads: int) -> pd.DataFrame:
    import lightgbm as lgb

    parts = []
    for fold in range(5):
        train, test = table["fold"] != fold, table["fold"] == fold
        model = lgb.LGBMClassifier(n_estimators=200, n_jobs=threads, random_state=0, verbose=-1)
        model.fit(x[train.to_numpy()], table.loc[train, "label"])
        parts.append(table[test].assign(prob=model.predict_proba(x[test.to_numpy()])[:, 1]))
    return pd.concat(parts)


ROOT = Path(__file__).resolve().parents[1]


def base_tree(base: str, into: Path) -> Path:
    """The repository's code at commit `base`, extracted into `into` (for the 'before' side of a benchmark)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "runner", "registry", "tasks", "encoders",
                              "benchmarks", "pyproject.toml"], check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def spawn(script: Path, code_root: Path, out_json: Path, *args: str) -> dict:
    """Run `script --side out_json *args` with `code_root` first on PYTHONPATH; its JSON plus the process's wall
    and CPU seconds (user + system, its fit processes included)."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "CXR_REGISTRY_ROOT": str(code_root)}
    set_thread_environment(env)  # as the `runner` entry point does (runner.runtime.threads), before OpenMP loads
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(script), "--side", str(out_json), *args], env=env, check=True, cwd=code_root)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**json.loads(out_json.read_text()), "wall_s": wall, "cpu_s": cpu}


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"


def run_side(out_json: str, threads: int | None, naive_too: bool, batch: bool = True) -> None:
    from runner.classify.out_of_fold import classify
    from runner.metrics.summary import summarize

    card = task_defaults_classifier()
    if threads:
        card["num_threads"] = threads
    metrics_card = {"ci": "t-interval", "bootstrap": {"n": 2000, "seed": 0}}
    x, table = synthetic_embeddings(2000, 1024)
    out: dict = {}
    t0 = time.perf_counter()
    fitted = classify(x, table, card, eval_folds=list(range(5)))
    out["single_classify_s"] = time.perf_counter() - t0
    out["single_auroc"] = summarize(fitted.predictions, metrics_card)["auroc"]["mean"]
    out["single_s"] = time.perf_counter() - t0
    out["trees_per_fold"] = [f.n_trees for f in fitted.folds]
    out["threads"] = fitted_threads(card)
    if naive_too:
        t0 = time.perf_counter()
        out["naive_auroc"] = summarize(naive(x, table, os.cpu_count() or 1), metrics_card)["auroc"]["mean"]
        out["naive_s"] = time.perf_counter() - t0
    out["single_warm_s"] = single_with_warm_pool(card, metrics_card)
    out["batch_s"], out["batch_aurocs"] = float("nan"), []
    if batch:
        out["batch_s"], out["batch_aurocs"] = batch_of_16(card, metrics_card)
    Path(out_json).write_text(json.dumps(out))


def batch_of_16(card: dict, metrics_card: dict) -> tuple[float, list[float]]:
    """8 tasks x 2 encoders, one process: (seconds, AUROC of each pair). With runner.classify.out_of_fold.submit_many
    (issue 30 item 2) as the batch `runner eval` does it (runner.evaluate.run_evaluations): every pair's folds are
    sent to the fit processes before the first pair's are read, then each pair is read and scored in turn; without
    it (older code) one classify per pair."""
    from runner.classify import out_of_fold
    from runner.metrics.summary import summarize

    designs = [synthetic_embeddings(2000, 1024, seed=task) for task in range(8)]
    t0 = time.perf_counter()

    def pairs():
        for task, (x_task, table_task) in enumerate(designs):
            for encoder in range(2):  # the second encoder: the same images seen through another random mixing
                yield table_task, (x_task if encoder == 0 else x_task @ np.random.default_rng(100 + task).normal(
                    size=(1024, 1024)).astype(np.float32) / 32)

    if hasattr(out_of_fold, "submit_many"):
        from runner.classify.design import Design

        sent = [out_of_fold.submit_many([Design(emb, table, list(range(5)))], card) for table, emb in pairs()]
        fitted = (pending.collect()[0] for pending in sent)
    else:
        fitted = (out_of_fold.classify(emb, table, card, eval_folds=list(range(5))) for table, emb in pairs())
    aurocs = [summarize(f.predictions, metrics_card)["auroc"]["mean"] for f in fitted]
    return time.perf_counter() - t0, aurocs


def single_with_warm_pool(card: dict, metrics_card: dict) -> float | None:
    """classify + CIs of 2000 x 1024 with the fit processes started while the embeddings load, as `runner eval`
    does (runner.evaluate: fit_processes.warm_up before the embeddings are read): here the load is the making of the
    synthetic embeddings (not timed), which overlaps the processes' start. None for code without warm_up."""
    from runner.classify import fit_processes
    from runner.classify.out_of_fold import classify
    from runner.metrics.summary import summarize

    if not hasattr(fit_processes, "warm_up"):
        return None
    fit_processes._close_pool()
    fit_processes.warm_up(fitted_threads(card))
    x, table = synthetic_embeddings(2000, 1024)
    t0 = time.perf_counter()
    summarize(classify(x, table, card, eval_folds=list(range(5))).predictions, metrics_card)
    return time.perf_counter() - t0


def fitted_threads(card: dict) -> int:
    from runner.classify.out_of_fold import ClassifierSettings

    return ClassifierSettings.from_card(card).num_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--side-threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--side-naive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help="processes per side (min and median are reported)")
    parser.add_argument("--base", default="3e7b68d", help="git commit of the 'before' code")
    parser.add_argument("--threads", default="", help="also run the after side with num_threads forced, e.g. 1,2")
    parser.add_argument("--naive", action="store_true", help="also time the naive baseline (after side)")
    parser.add_argument("--side-no-batch", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-batch", action="store_true", help="time the single task only")
    parser.add_argument("--json", help="also write every run's numbers here")
    args = parser.parse_args()
    if args.side:
        run_side(args.side, args.side_threads or None, args.side_naive, batch=not args.side_no_batch)
        return

    script = Path(__file__).resolve()
    common = ["--side-no-batch"] if args.no_batch else []
    sides = {"before": common, "after": [*common, *(["--side-naive"] if args.naive else [])]}
    sides.update({f"after, {t} thread(s)": [*common, "--side-threads", t] for t in args.threads.split(",")
                  if t.strip()})
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    load_before = load_line()
    with tempfile.TemporaryDirectory() as tmp:
        before_root = base_tree(args.base, Path(tmp) / "base")
        for i in range(args.runs):  # interleaved, so a change in the machine's load hits every side alike
            for side, extra in sides.items():
                root = before_root if side == "before" else ROOT
                runs[side].append(spawn(script, root, Path(tmp) / f"{len(runs[side])}{side}.json", *extra))

    def stat(side, key):
        values = sorted(r[key] for r in runs[side] if r.get(key) is not None)
        return f"{values[0]:.2f} / {values[len(values) // 2]:.2f}" if values else "-"

    load = os.getloadavg()
    print(f"2000 x 1024 float32, 5 folds, {os.cpu_count()} cores, {load_before} at the start, {load_line()} at the "
          f"end; {args.runs} process(es) per side, interleaved; seconds min / median")
    print(f"{'':24} {'threads':>7} {'classify':>14} {'classify+CIs':>14} {'+CIs, warm pool':>16} "
          f"{'8 tasks x 2 enc':>16} {'process CPU':>14} {'AUROC':>7}")
    for side in runs:
        r = runs[side][0]
        print(f"{side:24} {r['threads']:>7} {stat(side, 'single_classify_s'):>14} {stat(side, 'single_s'):>14} "
              f"{stat(side, 'single_warm_s'):>16} {stat(side, 'batch_s'):>16} {stat(side, 'cpu_s'):>14} "
              f"{r['single_auroc']:7.4f}")
    print("(+CIs, warm pool: the fit processes started while the embeddings were made, as runner eval starts them "
          "while the embeddings load; '-' where the code has no warm_up)")
    before = runs["before"][0]
    for side in runs:
        if side == "before":
            continue
        r = runs[side][0]
        diffs = np.abs(np.array(r["batch_aurocs"]) - np.array(before["batch_aurocs"]))
        print(f"AUROC {side} - before: single {r['single_auroc'] - before['single_auroc']:+.4f}"
              + (f"; batch of 16: max |diff| {diffs.max():.4f}" if len(diffs) else ""))
    if args.naive:
        r = runs["after"][0]
        print(f"naive (200 default trees per fold, re-binned, {os.cpu_count()} threads): classify+CIs "
              f"{min(x['naive_s'] for x in runs['after']):.2f} s, AUROC {r['naive_auroc']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
