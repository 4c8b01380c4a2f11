"""File the paper's Table 1 as reported results: one result file per (task, encoder) cell.

The numbers come from `leaderboard/paper_table1.yaml` (transcribed from the paper), the card hashes from the registry,
so the files can be regenerated whenever a card changes: `python -m leaderboard.file_reported`.
Each file goes through the same checks as `runner submit` (schema, known cards, current hashes), with replace=True.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from leaderboard.submit import RESULTS_DIR, Filed, SubmitError, file_result
from runner.results import build_result

TABLE_PATH = Path(__file__).resolve().parent / "paper_table1.yaml"


def reported_metric(mean: float, half_width: float) -> dict:
    """A metric as printed: mean ± half-width, the interval rounded to the printed three decimals."""
    return {"mean": mean, "half_width": half_width, "ci_low": round(mean - half_width, 3),
            "ci_high": round(mean + half_width, 3), "ci_method": "reported", "per_fold": []}


def reported_results(table: dict, registry) -> list[dict]:
    """Result objects (provenance: reported) for every cell of a transcribed table."""
    results = []
    for task_id, row in table["cells"].items():
        for encoder_id, cell in row.items():
            results.append(build_result(
                provenance="reported", task_card=registry.get("task", task_id),
                encoder_card=registry.get("encoder", encoder_id), citation=table["citation"].strip(),
                metrics={name: reported_metric(*cell[name]) for name in ("auroc", "f1")},
                created_at=table["transcribed_at"]))
    return results


def file_reported(registry, table_path: Path = TABLE_PATH, results_dir: Path = RESULTS_DIR) -> list[Filed]:
    """Write every cell of the table to `results_dir`, replacing earlier filings of the same cells."""
    table = yaml.safe_load(Path(table_path).read_text(encoding="utf-8"))
    return [file_result(r, registry, Path(results_dir), replace=True) for r in reported_results(table, registry)]


def main() -> int:
    from registry.cards import load_registry
    from registry.errors import CardError

    try:
        filed = file_reported(load_registry())
    except (CardError, SubmitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for item in filed:
        print(item.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
