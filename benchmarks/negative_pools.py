"""Candidates per negative class: for each task of the `negatives` benchmark and the task it is a sibling of, how many
positive and negative images the shipped metadata tables hold among the card's views, under the card's label policy
(registry/negatives.py names the class), and the metadata floor filed for each.

`python benchmarks/negative_pools.py` (reads the tables torchxrayvision ships; ~1 min on the 2-core dev box) prints the
markdown table quoted in docs/analyses.md "What a negative is".
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from registry.cards import load_registry
from registry.negatives import negative_class
from runner.data import read_index
from runner.sample.draw import read_labels
from runner.sample.sampler import apply_label_policy


def main() -> None:
    reg = load_registry()
    siblings = [t for t in reg.tasks.values() if "negatives" in t.data.get("benchmarks", [])
                and reg.datasets[t.data["dataset"]].data.get("fallback_package")]
    print("| task | negatives | candidates (positives / negatives, prevalence) | metadata floor |")
    print("| --- | --- | --- | --- |")
    indexes: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as empty:
        for sibling in sorted(siblings, key=lambda t: t.id):
            base = reg.tasks.get(sibling.id.removesuffix("-blank-negative").removesuffix("-no-finding"))
            for task in [t for t in (base, sibling) if t is not None]:
                dataset = reg.datasets[task.data["dataset"]]
                if dataset.id not in indexes:
                    labels = sorted({x for t in reg.tasks.values() if t.data.get("dataset") == dataset.id
                                     and t.data.get("label") for x in read_labels(t.data)})
                    indexes[dataset.id] = read_index(dataset.data, Path(empty), labels).frame
                frame = indexes[dataset.id]
                frame = frame[frame["view"].isin(task.data["views"])]
                policy = task.data["label_policy"]
                requires = policy.get("negative_requires")
                label = apply_label_policy(frame[task.data["label"]["id"]], policy,
                                           frame[requires] if requires else None)
                pos, neg = int((label == 1).sum()), int((label == 0).sum())
                floor = reg.home.results_dir / f"{task.id}__metadata__reproduced.json"
                auroc = json.loads(floor.read_text())["metrics"]["auroc"] if floor.is_file() else None
                shown = f"{auroc['mean']:.3f} [{auroc['ci_low']:.3f}, {auroc['ci_high']:.3f}]" if auroc else "not filed"
                print(f"| `{task.id}` | {negative_class(task.data, dataset.data)} | {pos:,} / {neg:,} "
                      f"({pos / (pos + neg):.3f}) | {shown} |")


if __name__ == "__main__":
    main()
