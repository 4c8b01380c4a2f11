"""Classifier stage benchmark: naive LightGBM per fold vs runner.classify, on 2000 x 1024 float32 embeddings, 5 folds.

naive: what one writes first: `LGBMClassifier(n_estimators=200)` (LightGBM defaults otherwise) fitted from the raw
       matrix in every fold, so the features are re-binned five times and every fold grows 200 trees.
ours:  runner.classify with the card defaults (bin once per task, Dataset.subset per fold, early stopping on an
       inner patient-grouped split), then runner.metrics.summarize (t-interval and 2000-replicate cluster bootstrap).

The embeddings are synthetic but shaped like real ones: correlated dimensions, a label signal spread over a few dozen
directions with a non-linear part, and 1-3 images per patient. Usage:

    .venv/bin/python benchmarks/bench_classify.py [--n 2000] [--dim 1024] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()

    import os

    from runner.classify import classify
    from runner.metrics import summarize

    threads = os.cpu_count() or 1
    x, table = synthetic_embeddings(args.n, args.dim)
    metrics_card = {"ci": "t-interval", "bootstrap": {"n": 2000, "seed": 0}}

    t0 = time.perf_counter()
    naive_pred = naive(x, table, threads)
    t_naive_fit = time.perf_counter() - t0
    naive_summary = summarize(naive_pred, metrics_card)
    t_naive = time.perf_counter() - t0

    t0 = time.perf_counter()
    ours = classify(x, table, {**task_defaults_classifier(), "num_threads": threads}, eval_folds=list(range(5)))
    t_ours_fit = time.perf_counter() - t0
    ours_summary = summarize(ours.predictions, metrics_card)
    t_ours = time.perf_counter() - t0

    rows = {
        "naive": {"classify_s": t_naive_fit, "classify_plus_ci_s": t_naive, "auroc": naive_summary["auroc"]["mean"],
                  "trees_per_fold": [200] * 5},
        "ours": {"classify_s": t_ours_fit, "classify_plus_ci_s": t_ours, "auroc": ours_summary["auroc"]["mean"],
                 "trees_per_fold": [f.n_trees for f in ours.folds]},
    }
    print(f"{args.n} x {args.dim} float32, 5 folds, {threads} threads")
    print(f"{'':6} {'classify s':>10} {'+CI s':>8} {'mean AUROC':>10}  trees/fold")
    for name, r in rows.items():
        print(f"{name:6} {r['classify_s']:10.1f} {r['classify_plus_ci_s']:8.1f} {r['auroc']:10.4f}  {r['trees_per_fold']}")
    print(f"speed-up {t_naive / t_ours:.1f}x, AUROC difference {rows['ours']['auroc'] - rows['naive']['auroc']:+.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "dim": args.dim, "threads": threads, **rows}, f, indent=2)


if __name__ == "__main__":
    main()
