"""Null rejection rate and power of tie tests when the classifier is refitted per encoder; one run prints the tables.

Why: the leaderboard's tie test (runner.analysis.paired.compare_with_best: paired patient bootstrap of the
fold-mean metric, predictions held fixed) is calibrated for fixed scores (tests/test_analysis_paired.py), but each
encoder's scores come from its own fitted classifiers, whose luck is part of the difference between two encoders.

Data (benchmarks/sim_encoders.py): the real labels, patients and 5 patient-wise folds of committed NIH manifests
(sims cycle through --tasks), simulated encoder features on top. Null: two equally informative encoders.
Power: encoder a's label signal scaled by 1 + --effect; the table states the resulting mean fold-mean AUROC and F1
difference (the effect size the tests see). Every simulation draws fresh features and refits the classifier.

Tests compared (two-sided, --alpha; with two encoders Holm changes nothing):
  bootstrap-fixed   today's test: compare_with_best on the seed-0 predictions, --boot-n patient replicates
  t-folds           naive t-test over the 5 per-fold differences (df 4)
  corrected-t       the same with Nadeau & Bengio's variance 1/k + n_test/n_train (runner.analysis.paired.fold_t_test)
  rcv-t / rcv-corrected-t   --seeds classifier seeds on the same folds, per-fold differences averaged over seeds,
                    then the naive / corrected t-test over folds
  rcv-pooled-t      Bouckaert & Frank's corrected repeated-CV test over all k x R differences (df kR - 1), shown to
                    see what it does when the folds are fixed (it assumes a fresh split per repeat)
  refit-bootstrap   patients resampled within their fold (--refit-boot-n replicates) and the whole CV refitted per
                    replicate; z = D / sd(D*) (normal p); run on the first --refit-boot-sims simulations only
Power counts a rejection with encoder a (the better) on top.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/simulate_tie_test.py [--sims 400] [--power-sims 200]
        [--classifier lightgbm|logistic] [--max-trees N] [--seeds 3] [--subsample 1.0] [--csv out.csv]
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
    per_fold_metrics,
    rate_cell,
    shared_content,
    uptime,
)

from runner.analysis.paired import compare_with_best, fold_t_test

METRICS = ("auroc", "f1")
NIH_TASKS = ("effusion-nih", "atelectasis-nih", "edema-nih", "opacity-nih")


def fold_sizes(structure) -> tuple[np.ndarray, np.ndarray]:
    folds = np.unique(structure.folds)
    n_test = np.array([np.sum(structure.folds == f) for f in folds], dtype=float)
    return len(structure.folds) - n_test, n_test


def pooled_repeated_t(diffs: np.ndarray, n_train, n_test) -> float:
    """Bouckaert & Frank (2004): every (seed, fold) difference a unit, variance (1/(kR) + n_test/n_train) s^2."""
    from scipy import stats

    d = diffs.ravel()
    factor = 1 / len(d) + float(np.mean(np.asarray(n_test) / np.asarray(n_train)))
    se = np.sqrt(factor * d.var(ddof=1))
    return 1.0 if se == 0 else float(2 * stats.t.sf(abs(d.mean() / se), len(d) - 1))


def resample_patients_within_folds(structure, rng: np.random.Generator) -> np.ndarray:
    """Row indices of one patient bootstrap: each fold's patients drawn with replacement, all their images."""
    rows = []
    for f in np.unique(structure.folds):
        in_fold = np.flatnonzero(structure.folds == f)
        patients = np.unique(structure.patient_index[in_fold])
        drawn = rng.choice(patients, len(patients), replace=True)
        by_patient = pd.Series(in_fold).groupby(structure.patient_index[in_fold]).apply(list)
        rows.extend(r for p in drawn for r in by_patient[p])
    return np.asarray(rows)


def refit_bootstrap(structure, xa, xb, refitter: Refitter, n_reps: int, rng) -> dict[str, np.ndarray]:
    """Fold-mean differences (a - b) of n_reps patient bootstraps, the CV refitted on each."""
    out = {m: np.empty(n_reps) for m in METRICS}
    for rep in range(n_reps):
        rows = resample_patients_within_folds(structure, rng)
        table = structure.table.iloc[rows][["patient_id", "label", "fold"]].reset_index(drop=True)
        table.insert(0, "image_id", [f"r{i}" for i in range(len(table))])  # copies are distinct images
        labels, folds = table["label"].to_numpy(), table["fold"].to_numpy()
        ma = per_fold_metrics(labels, folds, refitter.out_of_fold(xa[rows], table))
        mb = per_fold_metrics(labels, folds, refitter.out_of_fold(xb[rows], table))
        for m in METRICS:
            out[m][rep] = float(np.mean(ma[m] - mb[m]))
    return out


def one_simulation(structure, model, refitter, args, rng, effect: float, with_refit_boot: bool, clock: Clock,
                   boot_seed: int) -> dict:
    content = shared_content(structure, model, rng)
    xa = encoder_features(structure, content, model, rng, effect=effect)
    xb = encoder_features(structure, content, model, rng)
    diffs = {m: np.empty((args.seeds, 5)) for m in METRICS}
    probs0 = None
    for seed in range(args.seeds):
        step = "cv-seed0" if seed == 0 else "cv-extra-seeds"
        pa = clock.timed(step, refitter.out_of_fold, xa, structure.table, seed)
        pb = clock.timed(step, refitter.out_of_fold, xb, structure.table, seed)
        if seed == 0:
            probs0 = (pa, pb)
        ma = per_fold_metrics(structure.labels, structure.folds, pa, args.threshold)
        mb = per_fold_metrics(structure.labels, structure.folds, pb, args.threshold)
        for m in METRICS:
            diffs[m][seed] = ma[m] - mb[m]
    n_train, n_test = fold_sizes(structure)
    row = {"task": structure.task}
    card = {"threshold": args.threshold, "bootstrap": {"n": args.boot_n, "seed": boot_seed}}
    for m in METRICS:
        d0 = diffs[m][0]
        row[f"{m}_diff"] = float(d0.mean())
        row[f"{m}_diff_rcv"] = float(diffs[m].mean())
        out = clock.timed("bootstrap-fixed", compare_with_best, structure.labels, structure.table["patient_id"].to_numpy(),
                          structure.folds, {"a": probs0[0], "b": probs0[1]}, args.alpha, m, card)
        row[f"{m}_p_bootstrap-fixed"] = out["comparisons"].get("b", out["comparisons"].get("a"))["p_holm"]
        row[f"{m}_p_t-folds"] = fold_t_test(d0, n_train, n_test, corrected=False).p
        row[f"{m}_p_corrected-t"] = fold_t_test(d0, n_train, n_test).p
        if args.seeds > 1:
            row[f"{m}_p_rcv-t"] = fold_t_test(diffs[m], n_train, n_test, corrected=False).p
            row[f"{m}_p_rcv-corrected-t"] = fold_t_test(diffs[m], n_train, n_test).p
            row[f"{m}_p_rcv-pooled-t"] = pooled_repeated_t(diffs[m], n_train, n_test)
    if with_refit_boot:
        from scipy import stats

        reps = clock.timed("refit-bootstrap", refit_bootstrap, structure, xa, xb, refitter, args.refit_boot_n, rng)
        for m in METRICS:
            sd = float(np.std(reps[m], ddof=1))
            row[f"{m}_p_refit-bootstrap"] = 1.0 if sd == 0 else float(2 * stats.norm.sf(abs(row[f"{m}_diff"]) / sd))
            row[f"{m}_refit_sd"] = sd
    return row


def run_scenario(name, n_sims, effect, structures, model, refitter, args, clock) -> pd.DataFrame:
    rows, start = [], time.time()
    for sim in range(n_sims):
        structure = structures[sim % len(structures)]
        rng = np.random.default_rng([args.seed, 0 if name == "null" else 1, sim])
        row = one_simulation(structure, model, refitter, args, rng, effect, sim < args.refit_boot_sims, clock,
                             boot_seed=sim)
        rows.append({"scenario": name, "sim": sim, **row})
        if (sim + 1) % 25 == 0 or sim + 1 == n_sims:
            print(f"  {name}: {sim + 1}/{n_sims} simulations, {time.time() - start:.0f} s wall, load {uptime()}",
                  file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


TEST_NAMES = ("bootstrap-fixed", "t-folds", "corrected-t", "rcv-t", "rcv-corrected-t", "rcv-pooled-t",
              "refit-bootstrap")


def rejection_table(frame: pd.DataFrame, alpha: float, power: bool) -> list[str]:
    lines = ["| test | n sims | AUROC | F1 |", "| --- | ---: | --- | --- |"]
    for test in TEST_NAMES:
        cells, n_used = [], 0
        for m in METRICS:
            column = f"{m}_p_{test}"
            if column not in frame:
                break
            sub = frame[frame[column].notna()]
            reject = sub[column] < alpha
            if power:  # a rejection counts when the better encoder (a) is on top
                reject &= sub[f"{m}_diff"] > 0
            n_used = len(sub)
            cells.append(rate_cell(int(reject.sum()), n_used))
        if len(cells) == 2:
            lines.append(f"| {test} | {n_used} | {cells[0]} | {cells[1]} |")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(NIH_TASKS), help="committed manifests whose structure is used")
    ap.add_argument("--sims", type=int, default=400, help="null simulations")
    ap.add_argument("--power-sims", type=int, default=200)
    ap.add_argument("--effect", type=float, default=0.08, help="encoder a's label signal x (1 + effect)")
    ap.add_argument("--seeds", type=int, default=3, help="classifier seeds for the repeated-CV tests (1: none)")
    ap.add_argument("--boot-n", type=int, default=1000, help="replicates of today's fixed-prediction bootstrap")
    ap.add_argument("--refit-boot-sims", type=int, default=0, help="simulations that also run the refit bootstrap")
    ap.add_argument("--refit-boot-n", type=int, default=30)
    ap.add_argument("--classifier", choices=("lightgbm", "logistic"), default="lightgbm")
    ap.add_argument("--max-trees", type=int, default=None, help="override the card's n_estimators")
    ap.add_argument("--subsample", type=float, default=1.0, help="share of each manifest's patients kept")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", help="write every simulation's p-values here")
    args = ap.parse_args(argv)

    wall, cpu = time.time(), time.process_time()
    structures = [load_structure(t, args.subsample) for t in args.tasks.split(",")]
    model, refitter = EncoderModel(), Refitter(args.classifier, max_trees=args.max_trees)
    clock = Clock()
    print(f"load at start {uptime()}", file=sys.stderr)
    frames = [run_scenario("null", args.sims, 0.0, structures, model, refitter, args, clock)]
    null_clock = Clock(dict(clock.seconds), dict(clock.calls))
    if args.power_sims:
        frames.append(run_scenario("power", args.power_sims, args.effect, structures, model, refitter, args, clock))
    frame = pd.concat(frames, ignore_index=True)
    if args.csv:
        frame.to_csv(args.csv, index=False)

    print("# Tie tests with the classifier refitted per encoder (benchmarks/simulate_tie_test.py)\n")
    print(f"command: simulate_tie_test.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"classifier: {refitter.describe()}" + (f", n_estimators {args.max_trees}" if args.max_trees else ""))
    sizes = ", ".join(f"{s.task} ({len(s.labels)} images, {s.n_patients} patients)" for s in structures)
    print(f"structure: {sizes}; subsample {args.subsample}; features {model}")
    print(f"alpha {args.alpha}; bootstrap-fixed {args.boot_n} replicates; seeds {args.seeds}; refit bootstrap "
          f"{args.refit_boot_n} replicates on the first {args.refit_boot_sims} simulations of each scenario")
    print("rates with Wilson 95% Monte-Carlo intervals\n")
    null = frame[frame["scenario"] == "null"]
    print(f"## Null (two equally informative encoders): rejection rate, {len(null)} simulations\n")
    mean_auc = null["auroc_diff"].abs().mean()
    print("\n".join(rejection_table(null, args.alpha, power=False)))
    print(f"\nmean |fold-mean AUROC difference| under the null: {mean_auc:.4f}; sd of the difference: AUROC "
          f"{null['auroc_diff'].std():.4f}, F1 {null['f1_diff'].std():.4f}")
    if "auroc_refit_sd" in null:
        sub = null[null["auroc_refit_sd"].notna()]
        print(f"refit-bootstrap sd (mean over its simulations): AUROC {sub['auroc_refit_sd'].mean():.4f}, "
              f"F1 {sub['f1_refit_sd'].mean():.4f} (the true sd of the difference, above, is the target)")
    if args.power_sims:
        power = frame[frame["scenario"] == "power"]
        print(f"\n## Power: encoder a's signal x {1 + args.effect:g}; mean fold-mean difference AUROC "
              f"{power['auroc_diff'].mean():.4f} (sd {power['auroc_diff'].std():.4f}), F1 {power['f1_diff'].mean():.4f} "
              f"(sd {power['f1_diff'].std():.4f}); {len(power)} simulations\n")
        print("\n".join(rejection_table(power, args.alpha, power=True)))
    print("\n## CPU cost per comparison of two encoders (this process, null scenario)\n")
    per_cv = null_clock.per_call("cv-seed0")
    boot = null_clock.per_call("bootstrap-fixed") * 2
    print("| test | what it needs | CPU s per comparison |", "| --- | --- | ---: |", sep="\n")
    print(f"| bootstrap-fixed | the filed predictions (1 CV per encoder) + {args.boot_n} replicates x 2 metrics "
          f"| {boot:.3f} (+ {2 * per_cv:.2f} for the two CVs) |")
    print(f"| t-folds, corrected-t | the filed predictions' per-fold metrics | ~0 (+ {2 * per_cv:.2f} for the two CVs) |")
    if args.seeds > 1:
        print(f"| rcv-* | {args.seeds} CVs per encoder (seeds 0..{args.seeds - 1}) | {2 * per_cv * args.seeds:.2f} |")
    if args.refit_boot_sims:
        per_boot = null_clock.seconds.get("refit-bootstrap", 0) / max(1, min(args.refit_boot_sims, args.sims))
        print(f"| refit-bootstrap | {args.refit_boot_n} refitted CVs per encoder | {per_boot:.2f} (+ {2 * per_cv:.2f}) |")
    print(f"\none CV (5 folds, one encoder): {per_cv:.3f} CPU s; whole run {time.process_time() - cpu:.0f} CPU s, "
          f"{time.time() - wall:.0f} s wall; load at end {uptime()}")


if __name__ == "__main__":
    main()
