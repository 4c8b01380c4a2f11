"""Stage timings of `runner eval` on a demo task, cold cache then warm cache, for the built-in encoders.

    .venv/bin/python benchmarks/bench_eval.py [--task effusion-demo] [--data-root DIR] [--json out.json]

Without --data-root the synthetic demo data set is made in a temporary folder first (not timed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="effusion-demo")
    parser.add_argument("--encoders", default="pixels,random-cnn,radiomics")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()

    from runner.evaluate import EvalOptions, run_evaluation

    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    data_root = args.data_root
    if data_root is None:
        from runner.data.synthetic import make_demo_dataset

        data_root = work / "data"
        make_demo_dataset(data_root)
    options = EvalOptions(device="auto", workers=args.workers, analyses=[], cache_dir=work / "cache", progress=False)
    rows = []
    for encoder in args.encoders.split(","):
        for run in ("cold", "warm"):
            done = run_evaluation(args.task, encoder, data_root, work / "out", options)
            r = done.result
            rows.append({"encoder": encoder, "cache": run, "computed": done.n_computed, **r["timings_s"],
                         "images_per_s": r["throughput"]["images_per_s"], "auroc": r["metrics"]["auroc"]["mean"],
                         "device": r["environment"]["device"]})
    stages = ["sample", "embed", "classify", "metrics", "total"]
    print(f"task {args.task}, data {data_root}, {rows[0]['device']}")
    print(f"{'encoder':<11} {'cache':<5} {'embedded':>8} " + " ".join(f"{s:>8}" for s in stages) + f" {'img/s':>7} {'AUROC':>6}")
    for r in rows:
        rate = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        print(f"{r['encoder']:<11} {r['cache']:<5} {r['computed']:>8} " + " ".join(f"{r.get(s, 0):8.2f}" for s in stages)
              + f" {rate:>7} {r['auroc']:6.3f}")
    print("(sample on the first run includes sampling + writing the manifest; later runs reuse it)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
