"""Coverage of the leaderboard's confidence intervals, and the subgroup gap under no true difference; one run
prints the tables (quoted in docs/analyses.md).

Data (benchmarks/sim_encoders.py): the real labels, patients, 5 patient-wise folds and sex / age / view of committed
NIH manifests (sims cycle through --tasks), one simulated encoder on top whose features do not depend on sex, age or
view; every simulation draws fresh features (a fresh sample of patients with the same structure) and refits the
classifier.

1. Coverage of the fold-mean AUROC and F1 intervals of runner.metrics.summary.summarize: the t-interval over the 5
   folds, the patient cluster bootstrap, and (a candidate) the t-interval with Nadeau & Bengio's variance
   1/k + n_test/n_train (runner.analysis.paired.fold_t_test on the per-fold values). The target is what the
   leaderboard's number estimates: the expected fold-mean metric of this encoder + classifier at this sample size,
   taken as the mean point estimate over the task's other simulations (leave-one-out). Half-widths: median and
   5th-95th percentile, next to 1.96 x the true sd of the estimate (across simulations).
2. Subgroups (runner.analysis.subgroups.subgroup_auroc, min_per_class 25, the schema's age bands): the largest gap
   per attribute when no group differs, how often its CI (`gap_interval`) covers the true difference 0, and how
   often the null reference (`gap_null_reference`) rejects at 0.05.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/simulate_ci_coverage.py [--sims 400] [--boot-n 1000]
        [--classifier lightgbm|logistic] [--max-trees N] [--subsample 1.0] [--csv out.csv]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread: a shared 2-core box
    os.environ.setdefault(_var, "1")

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim_encoders import (
    Clock,
    EncoderModel,
    Refitter,
    encoder_features,
    load_structure,
    rate_cell,
    shared_content,
    uptime,
)

from runner.analysis.paired import fold_t_test
from runner.analysis.subgroups import subgroup_auroc
from runner.metrics.summary import summarize

METRICS = ("auroc", "f1")
ATTRIBUTES = ("sex", "age", "view")
NIH_TASKS = ("effusion-nih", "atelectasis-nih", "edema-nih", "opacity-nih")


def one_simulation(structure, model, refitter, args, rng, clock: Clock, seed: int) -> dict:
    content = shared_content(structure, model, rng)
    x = encoder_features(structure, content, model, rng)
    prob = clock.timed("cv", refitter.out_of_fold, x, structure.table)
    predictions = structure.table[["image_id", "patient_id", "label", "fold"]].assign(prob=prob)
    card = {"threshold": args.threshold, "bootstrap": {"n": args.boot_n, "seed": seed}}
    summary = clock.timed("summarize", summarize, predictions, card)
    n_test = np.array([f["n_test"] for f in summary["folds"]], dtype=float)
    n_train = np.array([f["n_train"] for f in summary["folds"]], dtype=float)
    row = {"task": structure.task}
    for m in METRICS:
        alternatives = summary["ci_alternatives"].get(m)
        point = summary[m]["mean"]
        row[f"{m}_mean"] = point
        per_fold = np.asarray(summary[m]["per_fold"], dtype=float)
        for method in ("t-interval", "cluster-bootstrap"):
            ci = alternatives[method] if alternatives else _ci_of(summary, m, method)
            row[f"{m}_{method}_low"], row[f"{m}_{method}_high"] = ci["ci_low"], ci["ci_high"]
        from scipy import stats

        test = fold_t_test(per_fold, n_train, n_test)  # per-fold values: se of their mean with the correction
        half = float(stats.t.ppf(0.975, test.df)) * test.se
        row[f"{m}_corrected-t_low"], row[f"{m}_corrected-t_high"] = point - half, point + half
    if not args.no_subgroups:
        frame = predictions.join(structure.table[list(ATTRIBUTES)])
        out = clock.timed("subgroups", subgroup_auroc, frame, {"min_per_class": 25}, card)
        for attribute in ATTRIBUTES:
            gap = out["attributes"].get(attribute, {}).get("largest_gap")
            if gap:
                row[f"{attribute}_gap"] = gap["auroc_diff"]
                row[f"{attribute}_gap_low"], row[f"{attribute}_gap_high"] = gap.get("ci_low"), gap.get("ci_high")
                row[f"{attribute}_null_p"] = gap["null"]["p"]
                row[f"{attribute}_null_q95"] = gap["null"]["null_q95"]
                row[f"{attribute}_groups"] = len([g for g in out["attributes"][attribute]["groups"].values()
                                                  if g.get("status") == "computed"])
    return row


def _ci_of(summary: dict, metric: str, method: str) -> dict:
    return summary[metric] if summary[metric]["ci_method"] == method else {"ci_low": None, "ci_high": None}


def coverage_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| metric | interval | coverage | median half-width [5th, 95th pct] | 1.96 x true sd |",
             "| --- | --- | --- | --- | ---: |"]
    for m in METRICS:
        # target: the expected fold-mean metric, the task's other simulations' mean (leave-one-out)
        by_task = frame.groupby("task")[f"{m}_mean"]
        total, count = by_task.transform("sum"), by_task.transform("count")
        truth = (total - frame[f"{m}_mean"]) / (count - 1)
        true_sd = float(np.sqrt((frame[f"{m}_mean"] - by_task.transform("mean")).pow(2).sum()
                                / (len(frame) - frame["task"].nunique())))
        for method in ("t-interval", "cluster-bootstrap", "corrected-t"):
            low, high = frame[f"{m}_{method}_low"].astype(float), frame[f"{m}_{method}_high"].astype(float)
            ok = low.notna() & high.notna()
            covered = int(((low <= truth) & (truth <= high))[ok].sum())
            half = ((high - low) / 2)[ok]
            q = np.quantile(half, [0.05, 0.5, 0.95])
            lines.append(f"| {m.upper() if m == 'auroc' else 'F1'} | {method} | {rate_cell(covered, int(ok.sum()))} | "
                         f"{q[1]:.4f} [{q[0]:.4f}, {q[2]:.4f}] | {1.96 * true_sd:.4f} |")
    return lines


def subgroup_table(frame: pd.DataFrame, alpha: float) -> list[str]:
    lines = [("| attribute | sims | groups computed (median) | largest gap: mean | 95th pct | CI covers 0 | "
              "null reference rejects at 0.05 | null 95th pct (mean) |"),
             "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
    for a in ATTRIBUTES:
        if f"{a}_gap" not in frame:
            continue
        sub = frame[frame[f"{a}_gap"].notna()]
        low, high = sub[f"{a}_gap_low"].astype(float), sub[f"{a}_gap_high"].astype(float)
        ok = low.notna() & high.notna()
        covers = int(((low <= 0) & (0 <= high))[ok].sum())
        rejects = int((sub[f"{a}_null_p"] < alpha).sum())
        lines.append(f"| {a} | {len(sub)} | {sub[f'{a}_groups'].median():.0f} | {sub[f'{a}_gap'].mean():.4f} | "
                     f"{sub[f'{a}_gap'].quantile(0.95):.4f} | {rate_cell(covers, int(ok.sum()))} | "
                     f"{rate_cell(rejects, len(sub))} | {sub[f'{a}_null_q95'].mean():.4f} |")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(NIH_TASKS))
    ap.add_argument("--sims", type=int, default=400, help="simulations in all (cycling through the tasks)")
    ap.add_argument("--boot-n", type=int, default=1000, help="bootstrap replicates and permutations")
    ap.add_argument("--classifier", choices=("lightgbm", "logistic"), default="lightgbm")
    ap.add_argument("--max-trees", type=int, default=None)
    ap.add_argument("--subsample", type=float, default=1.0)
    ap.add_argument("--no-subgroups", action="store_true")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv")
    args = ap.parse_args(argv)

    wall, cpu = time.time(), time.process_time()
    structures = [load_structure(t, args.subsample) for t in args.tasks.split(",")]
    model, refitter, clock = EncoderModel(), Refitter(args.classifier, max_trees=args.max_trees), Clock()
    print(f"load at start {uptime()}", file=sys.stderr)
    rows = []
    for sim in range(args.sims):
        rng = np.random.default_rng([args.seed, 2, sim])
        rows.append(one_simulation(structures[sim % len(structures)], model, refitter, args, rng, clock, seed=sim))
        if (sim + 1) % 25 == 0 or sim + 1 == args.sims:
            print(f"  {sim + 1}/{args.sims} simulations, {time.time() - wall:.0f} s wall, load {uptime()}",
                  file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)

    print("# Interval coverage and subgroup gaps under no difference (benchmarks/simulate_ci_coverage.py)\n")
    print(f"command: simulate_ci_coverage.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"classifier: {refitter.describe()}" + (f", n_estimators {args.max_trees}" if args.max_trees else ""))
    sizes = ", ".join(f"{s.task} ({len(s.labels)} images, {s.n_patients} patients)" for s in structures)
    print(f"structure: {sizes}; subsample {args.subsample}; features {model}")
    print(f"{args.sims} simulations; {args.boot_n} bootstrap replicates / permutations; 95% intervals; rates with "
          "Wilson 95% Monte-Carlo intervals\n")
    means = frame.groupby("task")[["auroc_mean", "f1_mean"]].mean().round(4).to_dict("index")
    print(f"expected fold-mean metric per task (the target): {means}\n")
    print("## Coverage of the fold-mean intervals\n")
    print("\n".join(coverage_table(frame)))
    if not args.no_subgroups:
        print("\n## Largest subgroup AUROC gap when no group differs\n")
        print("\n".join(subgroup_table(frame, 0.05)))
    print(f"\nCPU s per simulation: CV {clock.per_call('cv'):.3f}, summarize {clock.per_call('summarize'):.3f}"
          + (f", subgroups {clock.per_call('subgroups'):.3f}" if not args.no_subgroups else "")
          + f"; whole run {time.process_time() - cpu:.0f} CPU s, {time.time() - wall:.0f} s wall; load at end {uptime()}")


if __name__ == "__main__":
    main()
