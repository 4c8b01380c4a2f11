"""Analyses benchmark: `--analyses all` on a 2000 x 1024 task from cached embeddings, before vs after, in one run.

"before" is the code at the base commit (default 3e7b68d, the commit this work started from), extracted with
`git archive` into a temporary folder and run in a subprocess with that folder first on PYTHONPATH; "after" is this
checkout, run the same way. Each side times every analysis of `runner.analysis.ANALYSES` on the same synthetic task
(the paper task's own card blocks: clustering k = 2..10, n_init 50, cosine; label efficiency 25..800 x 3 seeds;
classifier = the task card's LightGBM through runner.classify.out_of_fold.card_fit_predict), then the parent compares:
chosen k, silhouettes (3 decimals), ARI of the chosen clustering between the two sides, and UMAP trustworthiness
(sklearn.manifold.trustworthiness, cosine, 15 neighbours) of each side's layout.

Data: no real embeddings ship with the repository, so the task is synthetic but shaped like real embeddings (the
generator of benchmarks/bench_classify.py: correlated dimensions, a label signal over a few dozen directions, 1-3
images per patient, patient-grouped folds), plus sex/age/view, five augmented views, a 2000-image transfer target
and a second encoder's predictions for the paired analysis.

    .venv/bin/python benchmarks/bench_analyses.py [--runs 3] [--base 3e7b68d] [--only after] [--json out.json]

Before the timed runs each side makes one small UMAP fit (not timed), so that numba's disk cache holds UMAP's compiled
code and no timed run pays the compilation (runner/analysis/clustering.py). `--runs 3` reports min and median over
three separate processes per side, interleaved, with each process's wall and CPU seconds (its fit processes included)
and the machine's load average at the start and the end. The k-means assignments are recorded through
`runner.analysis.clustering.kmeans_fits` (scikit-learn's KMeans in older code).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_classify import base_tree, load_line, spawn

TASK = "effusion-mimic"
AUG_IDS = ("rot1", "rot2", "bright1", "bright2", "contrast1")


def synthetic_task(n: int = 2000, dim: int = 1024):
    """(embeddings, manifest table, augmented views, transfer target (x, y, patients), other encoder's x)."""
    from bench_classify import synthetic_embeddings

    x_all, table_all = synthetic_embeddings(2 * n, dim)  # first half: the task; second half: the transfer target
    x, table = x_all[:n], table_all.iloc[:n].reset_index(drop=True)
    rng = np.random.default_rng(7)
    table["sex"] = rng.choice(["M", "F"], n)
    table["age"] = rng.uniform(18, 95, n).round(0)
    table["view"] = rng.choice(["PA", "AP"], n)
    augmented = {a: (x + rng.normal(scale=0.3, size=x.shape)).astype(np.float32) for a in AUG_IDS}
    target = (x_all[n:], table_all["label"].to_numpy()[n:], table_all["patient_id"].to_numpy()[n:])
    other = (x + rng.normal(scale=1.0, size=x.shape)).astype(np.float32)
    return x, table, augmented, target, other


def run_side(out_json: str) -> None:
    """One side, in this process: time every analysis; write timings, the clustering result and assignments."""
    import dataclasses

    import sklearn.cluster

    from registry.cards import load_registry
    from runner.analysis import ANALYSES, AnalysisContext, TransferSet, clustering, run_analyses
    from runner.classify.out_of_fold import classify
    try:
        from runner.classify.out_of_fold import card_fit_predict
    except ImportError:  # the base tree of a before/after run
        from runner.evaluate import card_fit_predict

    started = time.perf_counter()
    task = load_registry().tasks[TASK].data
    x, table, augmented, (tx, ty, tp), other = synthetic_task()
    folds = sorted(table["fold"].unique().tolist())
    classifier = task.get("classifier") or {"type": "lightgbm"}
    predictions = classify(x, table, classifier, folds).predictions
    other_predictions = classify(other, table, classifier, folds).predictions
    setup_s = time.perf_counter() - started

    # record the k-means assignment of every k: through clustering.kmeans_fits where the code has it (3e7b68d on),
    # else through sklearn.cluster.KMeans, which older code fitted with
    fitted: dict[int, list[int]] = {}
    original = sklearn.cluster.KMeans
    original_fits = getattr(clustering, "kmeans_fits", None)

    class RecordingKMeans(original):
        def fit(self, X, y=None, sample_weight=None):
            out = super().fit(X, y, sample_weight)
            fitted[int(self.n_clusters)] = self.labels_.tolist()
            return out

    def recording_fits(*args, **kwargs):
        out = original_fits(*args, **kwargs)
        fitted.update({int(k): np.asarray(v).tolist() for k, v in out.items()})
        return out

    if original_fits is None:
        sklearn.cluster.KMeans = RecordingKMeans
    else:
        clustering.kmeans_fits = recording_fits
    with tempfile.TemporaryDirectory() as figures:
        # the paired comparison left the run for the summarize stage (no run reads another's): older code still
        # takes the other encoder's predictions here
        fields = {f.name for f in dataclasses.fields(AnalysisContext)}
        extra = {"comparisons": {"other": other_predictions}} if "comparisons" in fields else {}
        context = AnalysisContext(
            analyses_card=task.get("analyses") or {}, metrics_card=task.get("metrics") or {},
            manifest=table, embeddings=x, predictions=predictions, eval_folds=folds, output_dir=Path(figures),
            encoder_id="this", augmented=augmented, transfer_targets={"target": TransferSet(tx, ty, tp)},
            fit_predict=card_fit_predict(classifier), classifier_params=classifier.get("params") or {}, **extra,
        )
        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}
        results = {}
        t0 = time.perf_counter()
        for name in ANALYSES:  # one at a time, to read each one's CPU seconds (fit processes included)
            c0 = tree_cpu_seconds()
            results.update(run_analyses([name], context, timings))
            cpu[name] = tree_cpu_seconds() - c0
        analyses_s = time.perf_counter() - t0
    sklearn.cluster.KMeans = original
    if original_fits is not None:
        clustering.kmeans_fits = original_fits
    status = {name: r.get("status", "ok") for name, r in results.items()}
    clustering = results["clustering"]
    Path(out_json).write_text(json.dumps({
        "setup_s": setup_s, "analyses_s": analyses_s, "timings": timings, "cpu": cpu, "status": status,
        "kmeans": clustering.get("kmeans"), "assignments": fitted,
        "umap_xy": [clustering["umap"]["coordinates"]["x"], clustering["umap"]["coordinates"]["y"]]
        if "umap" in clustering else None,
        "label_efficiency": [p["mean_auroc"] for p in results["label_efficiency"].get("points", [])],
    }))


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process, its live descendants (the fit processes) and its ended children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):  # ended meanwhile
            continue
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + ended.ru_utime + ended.ru_stime


def warm_numba() -> None:
    """One small UMAP fit in this side's code, so that numba's disk cache holds UMAP's compiled code before the timed
    runs (each side keeps its own: older code writes it into site-packages, newer code under the cache folder)."""
    from runner.analysis.clustering import umap_figure

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as figures:
        umap_figure(rng.normal(size=(200, 16)), rng.integers(0, 2, 200), Path(figures) / "u.png")


def _trustworthiness(xy) -> float:
    from sklearn.manifold import trustworthiness

    x = synthetic_task()[0]
    return float(trustworthiness(x, np.asarray(xy).T, n_neighbors=15, metric="cosine"))


def compare(before: dict, after: dict) -> None:
    """Chosen k, silhouettes to 3 decimals, ARI of the chosen clusterings, UMAP trustworthiness: before vs after."""
    from sklearn.metrics import adjusted_rand_score

    kb, ka = before["kmeans"], after["kmeans"]
    sil_b = {k: round(v, 3) for k, v in kb["silhouette"].items()}
    sil_a = {k: round(v, 3) for k, v in ka["silhouette"].items()}
    chosen = kb["chosen_k"]
    ari = adjusted_rand_score(before["assignments"][str(chosen)], after["assignments"][str(ka["chosen_k"])])
    aris = {k: round(adjusted_rand_score(before["assignments"][k], after["assignments"][k]), 4)
            for k in before["assignments"]}
    tw_b, tw_a = _trustworthiness(before["umap_xy"]), _trustworthiness(after["umap_xy"])
    print(f"chosen k: before {chosen}, after {ka['chosen_k']}")
    print(f"silhouettes (3 decimals) equal: {sil_b == sil_a}  before {sil_b}")
    if sil_b != sil_a:
        print(f"                                        after  {sil_a}")
    print(f"ARI of the chosen clustering, before vs after: {ari:.4f}; per k: {aris}")
    print(f"UMAP trustworthiness: before {tw_b:.4f}, after {tw_a:.4f}, difference {tw_a - tw_b:+.4f}")
    print(f"label efficiency mean AUROC per size: before {np.round(before['label_efficiency'], 4).tolist()}, "
          f"after {np.round(after['label_efficiency'], 4).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--side-warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help="processes per side (min and median are reported)")
    parser.add_argument("--base", default="3e7b68d", help="git commit of the 'before' code")
    parser.add_argument("--only", choices=["before", "after"], help="run one side only")
    parser.add_argument("--json", help="also write every run's numbers here")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE_JSON", "AFTER_JSON"),
                        help="only compare the results of two earlier --json files (their first run each)")
    args = parser.parse_args()
    if args.side_warm:
        warm_numba()
        Path(args.side).write_text("{}")
        return
    if args.side:
        run_side(args.side)
        return
    if args.compare:
        before, after = (json.loads(Path(p).read_text())["runs"] for p in args.compare)
        compare(before["before"][0], after["after"][0])
        return

    runs: dict[str, list[dict]] = {}
    load_before = load_line()
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"before": base_tree(args.base, Path(tmp) / "base") if args.only != "after" else None,
                 "after": ROOT if args.only != "before" else None}
        for side, root in roots.items():  # not timed: numba's cache filled, so no run pays UMAP's compilation
            if root is not None:
                spawn(Path(__file__).resolve(), root, Path(tmp) / f"warm-{side}.json", "--side-warm")
        for i in range(args.runs):  # interleaved, so a change in the machine's load hits both sides alike
            for side, root in roots.items():
                if root is not None:
                    runs.setdefault(side, []).append(spawn(Path(__file__).resolve(), root, Path(tmp) / f"{side}{i}.json"))

    def stat(side, get):
        values = sorted(get(r) for r in runs[side])
        return values[0], values[len(values) // 2]

    load = os.getloadavg()
    print(f"{TASK} card blocks, synthetic 2000 x 1024, {os.cpu_count()} cores, {load_before} at the start, "
          f"{load_line()} at the end; {args.runs} process(es) per side, interleaved; seconds min / median")
    names = sorted({n for rs in runs.values() for r in rs for n in r["timings"]})
    header = f"{'':22}" + "".join(f"{side:>18}" for side in runs)
    print(header)
    for label, get in [*((f"analysis.{n}", lambda r, n=n: r["timings"].get(n, 0.0)) for n in names),
                       *((f"  CPU {n}", lambda r, n=n: r.get("cpu", {}).get(n, 0.0)) for n in names),
                       ("all analyses", lambda r: r["analyses_s"]), ("process wall", lambda r: r["wall_s"]),
                       ("process CPU", lambda r: r["cpu_s"])]:
        print(f"{label:22}" + "".join(f"{'{:.1f} / {:.1f}'.format(*stat(side, get)):>18}" for side in runs))
    for side, rs in runs.items():
        print(f"{side}: status {rs[0]['status']}")
    if set(runs) == {"before", "after"}:
        compare(runs["before"][0], runs["after"][0])
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
