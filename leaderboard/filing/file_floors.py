"""File the shortcut floors: the metadata baselines on the tasks `leaderboard/floors.yaml` lists, as reproduced results.

`python -m leaderboard.filing.file_floors [--data-root DIR] [--out DIR]` runs `runner eval` (runner.evaluate) for every
(task, encoder) pair of the file (its `encoders` x `tasks`, and those of each `also` group: a baseline that only some
data sets' columns allow, such as the label-source floor) and files each result with its predictions through the same checks as
`runner submit` (replacing earlier filings of the same cells). Without --data-root an empty folder is the data root,
so the dataset readers take the metadata tables from the dataset card's `fallback_package` (NIH ChestX-ray14: the
copies in the torchxrayvision wheel); the sample is the one an image run gets (runner.sample.sampler, DEFERRED_NOTE).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from leaderboard.filing.submit import Filed, SubmitError, submit
from registry.cards import load_registry
from registry.errors import CardError, CardProblem, did_you_mean
from registry.extends import CardSource
from registry.schema_check import schema_problems
from registry.yaml_reading import read_yaml
from runner.evaluate import EvalOptions, EvaluationError, evaluate


def file_floors(registry, data_root: Path, out_dir: Path, results_dir: Path | None = None,
                floors_path: Path | None = None, progress: bool = False) -> list[Filed]:
    """Evaluate and file every (task, encoder) pair of the floors file (default: the registry's
    leaderboard/floors.yaml, into its leaderboard/results/); returns where each result was filed."""
    results_dir = Path(results_dir) if results_dir is not None else registry.home.results_dir
    cells = read_floor_cells(Path(floors_path or registry.home.floors_file), registry)
    filed = []
    for task_id, encoder_id in cells:
        result = evaluate(task_id, encoder_id, data_root, out_dir, EvalOptions(progress=progress), registry)
        filed.append(submit(result, registry, Path(results_dir), replace=True))
    return filed


def read_floor_cells(path: Path, registry) -> list[tuple[str, str]]:
    """The (task, encoder) cells of a floors file, read as a card is (bounded, safe YAML, duplicate keys refused),
    checked against registry/schemas/floors.schema.json and the registry's cards; CardError names the file, line and
    field of each problem before anything is evaluated."""
    spec, lines = read_yaml(path)
    problems = schema_problems("floors", spec, [CardSource(path, lines)])
    if not problems:
        for where, group in _groups(spec):
            for kind, field in (("task", "tasks"), ("encoder", "encoders")):
                known = registry.of_kind(kind)
                for j, card_id in enumerate(group[field]):
                    if card_id not in known:
                        pointer = f"{where}/{field}/{j}"
                        problems.append(CardProblem(path, f"no {kind} card {card_id!r}", pointer, lines.get(pointer),
                                                    suggestion=did_you_mean(card_id, known)))
    if problems:
        raise CardError(problems)
    return floor_cells(spec)


def _groups(spec: dict) -> list[tuple[str, dict]]:
    """(JSON pointer, group) of each encoders x tasks group: the file's own, then each `also` group."""
    return [("", spec), *((f"/also/{i}", group) for i, group in enumerate(spec.get("also") or []))]


def floor_cells(spec: dict) -> list[tuple[str, str]]:
    """(task, encoder) pairs of the floors file: every task with every encoder, then each `also` group's."""
    return [(task_id, encoder_id) for _, group in _groups(spec) for task_id in group["tasks"]
            for encoder_id in group["encoders"]]


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None,
                        help="data root of the tasks' data set (default: an empty folder: metadata from the package)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cxr-floors-") as tmp:
        data_root = args.data_root or Path(tmp) / "metadata-only-root"
        data_root.mkdir(parents=True, exist_ok=True)
        try:
            filed = file_floors(load_registry(), data_root, args.out or Path(tmp) / "runs")
        except (CardError, SubmitError, EvaluationError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return getattr(exc, "exit_code", 2)
    for item in filed:
        print(item.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
