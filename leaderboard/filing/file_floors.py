"""File the shortcut floors: the metadata baselines on the tasks `leaderboard/floors.yaml` lists, as reproduced results.

`python -m leaderboard.filing.file_floors [--data-root DIR] [--out DIR]` runs `runner eval` (runner.evaluate) for every
(task, encoder) pair of the file and files each result with its predictions through the same checks as
`runner submit` (replacing earlier filings of the same cells). Without --data-root an empty folder is the data root,
so the dataset readers take the metadata tables from the dataset card's `fallback_package` (NIH ChestX-ray14: the
copies in the torchxrayvision wheel); the sample is the one an image run gets (runner.sample.sampler, DEFERRED_NOTE).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from leaderboard.filing.submit import RESULTS_DIR, Filed, SubmitError, submit

FLOORS_PATH = Path(__file__).resolve().parents[1] / "floors.yaml"


def file_floors(registry, data_root: Path, out_dir: Path, results_dir: Path = RESULTS_DIR,
                floors_path: Path = FLOORS_PATH, progress: bool = False) -> list[Filed]:
    """Evaluate and file every (task, encoder) pair of the floors file; returns where each result was filed."""
    from runner.evaluate import EvalOptions, evaluate

    spec = yaml.safe_load(Path(floors_path).read_text(encoding="utf-8"))
    filed = []
    for task_id in spec["tasks"]:
        for encoder_id in spec["encoders"]:
            result = evaluate(task_id, encoder_id, data_root, out_dir, EvalOptions(progress=progress), registry)
            filed.append(submit(result, registry, Path(results_dir), replace=True))
    return filed


def main(argv: list[str] | None = None) -> int:
    from registry.cards import load_registry
    from registry.errors import CardError
    from runner.evaluate import EvaluationError

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
