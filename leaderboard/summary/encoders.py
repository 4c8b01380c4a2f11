"""The Encoders page's numbers (summarize stage): filed results -> the ranking of
`leaderboard.summary.ranking` and the labels the page shows (leaderboard.json `encoders_page`).
"""

from __future__ import annotations

from pathlib import Path

from leaderboard.filing.submit import PREDICTIONS_NAME
from leaderboard.summary.ranking import ALL, rank_encoders
from registry.benchmarks import load_benchmarks


def predictions_name(result_file: str) -> str:
    return Path(result_file).stem + "." + PREDICTIONS_NAME


def ranking_records(entries, registry, results_dir: Path) -> list[dict]:
    """One ranking record per filed result (see leaderboard.summary.ranking)."""
    records = []
    for entry in entries:
        r = entry.result
        task = registry.tasks[r["task"]["id"]]
        predictions = predictions_name(entry.file)
        board = task.spec.leaderboard
        short = " ".join(x for x in (board.disease, board.dataset_label) if x)
        records.append({
            "task": r["task"]["id"], "task_title": short or task.spec.title,
            "benchmarks": list(task.spec.benchmarks), "dataset": r["task"]["dataset"],
            "encoder": r["encoder"]["id"], "provenance": r["provenance"], "file": entry.file,
            "predictions": predictions if (Path(results_dir) / predictions).is_file() else None,
            "auroc": {k: r["metrics"]["auroc"][k] for k in ("mean", "ci_low", "ci_high")}})
    return records


def view_label(key: str, benchmarks: dict, registry) -> str:
    bench, dataset = key.split("|")
    parts = []
    if bench != ALL:
        parts.append(benchmarks[bench].title if bench in benchmarks else bench)
    if dataset != ALL:
        card = registry.datasets.get(dataset)
        parts.append(card.spec.title if card else dataset)
    return " · ".join(parts) or "All tasks"


def encoders_summary(entries, registry, results_dir: Path) -> dict:
    """The Encoders page's numbers and labels (the summarize stage's part): JSON-safe."""

    encoders = {e: card.data for e, card in registry.encoders.items()}
    benchmarks = load_benchmarks(getattr(registry, "root", None))
    ranking = rank_encoders(ranking_records(entries, registry, results_dir), encoders, list(benchmarks))
    return {
        "ranking": ranking, "files": [e.file for e in entries],
        "labels": {key: view_label(key, benchmarks, registry) for key in ranking["views"]},
        "benchmark_titles": {b: (benchmarks[b].title if b in benchmarks else b) for b in ranking["benchmarks"]},
        "dataset_titles": {d: (registry.datasets[d].spec.title if d in registry.datasets else d)
                           for d in ranking["datasets"]},
    }
