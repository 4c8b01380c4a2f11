"""The Encoders page's numbers (summarize stage): filed results -> the ranking of
`leaderboard.summary.ranking` and the labels the page shows (leaderboard.json `encoders_page`), and each encoder's
places (per task, per benchmark) for its own page.

Encoders are ranked within a task type, never across: the classification and transfer results by AUROC in the views
"<benchmark>|<dataset>" (as before types existed), every other type by its headline metric (multi-label: macro AUROC,
retrieval: mAP, ...) in views "<benchmark>~<type>|<dataset>", each labelled with the type and the metric.
"""

from __future__ import annotations

from pathlib import Path

from leaderboard.filing.layout import predictions_of
from leaderboard.summary.ranking import ALL, RankSettings, rank_encoders, task_ranks
from registry import plugins
from registry.benchmarks import load_layout
from runner.task_types import column_group, task_type_of

CLASSIFICATION = "classification"  # the column group of classification and transfer results
TYPE_SEPARATOR = "~"  # "<benchmark>~<type>": a view key's benchmark part for a task type other than classification


def predictions_name(result: dict, results_dir: Path) -> str | None:
    """The filed predictions file of a result, relative to the results folder (None: none is filed)."""
    path = predictions_of(results_dir, result)
    return path.relative_to(results_dir).as_posix() if path is not None and path.is_file() else None


def ranking_records(entries, registry, results_dir: Path, layout) -> list[dict]:
    """One ranking record per filed result (see leaderboard.summary.ranking)."""
    records = []
    for entry in entries:
        r = entry.result
        task = registry.tasks[r["task"]["id"]]
        dataset = registry.datasets.get(task.spec.dataset)
        predictions = predictions_name(r, Path(results_dir))
        board = task.spec.leaderboard
        short = " ".join(x for x in (board.disease, board.dataset_label) if x)
        headline = task_type_of(task).metric_ids(task.spec)[0]  # ranked by it; the record's "auroc" slot holds it
        metric = r["metrics"].get(headline) or {"mean": None}
        records.append({
            "task": r["task"]["id"], "task_title": short or task.spec.title,
            "benchmarks": list(task.spec.benchmarks), "dataset": r["task"]["dataset"],
            "synthetic": layout.synthetic(task.spec.benchmarks, bool(r.get("synthetic"))
                                          or bool(dataset and dataset.spec.synthetic)),
            "encoder": r["encoder"]["id"], "provenance": r["provenance"], "file": entry.file,
            "predictions": predictions,
            "confidence": task.spec.metrics.confidence, "type": column_group(task), "metric": headline,
            "auroc": {k: metric.get(k) for k in ("mean", "ci_low", "ci_high")}})
    return records


def view_label(key: str, benchmarks: dict, registry) -> str:
    bench, dataset = key.split("|")
    bench, _, kind = bench.partition(TYPE_SEPARATOR)
    parts = []
    if kind:
        parts.append(plugins.load("task_type", kind).title)
    if bench != ALL:
        parts.append(benchmarks[bench].title if bench in benchmarks else bench)
    if dataset != ALL:
        card = registry.datasets.get(dataset)
        parts.append(card.spec.title if card else dataset)
    return " · ".join(parts) or "All clinical tasks"


def encoder_places(ranking: dict, records: list[dict], encoders: dict, labels: dict) -> dict:
    """encoder id -> {tasks: {task id: {rank, of}}, benchmarks: [{view, label, position, of, interval, n_tasks} or
    {view, label, reason}]}: what an encoder's own page says about where it stands."""
    places: dict[str, dict] = {e: {"tasks": {}, "benchmarks": []} for e in encoders}
    for (task, encoder), rank in task_ranks(records, encoders).items():
        places.setdefault(encoder, {"tasks": {}, "benchmarks": []})["tasks"][task] = rank
    for key, view in ranking["views"].items():
        if not key.endswith("|" + ALL):
            continue
        for row in view["rows"]:
            places[row["encoder"]]["benchmarks"].append({
                "view": key, "label": labels[key], "position": row["position"], "of": len(view["rows"]),
                "interval": row["interval"], "n_tasks": row["n_tasks"]})
        for row in view["unranked"]:
            places[row["encoder"]]["benchmarks"].append({"view": key, "label": labels[key], "reason": row["reason"]})
    return places


def encoders_summary(entries, registry, results_dir: Path) -> dict:
    """The Encoders page's numbers and labels (the summarize stage's part): JSON-safe."""
    layout = load_layout(getattr(registry, "root", None))
    benchmarks = layout.benchmarks
    encoders = {e: card.data for e, card in registry.encoders.items()}
    records = ranking_records(entries, registry, results_dir, layout)
    settings = layout.ranking
    rank_settings = RankSettings(settings.replicates, settings.level, settings.seed)
    synthetic = [b for b in benchmarks if benchmarks[b].synthetic]
    ranking = rank_encoders([r for r in records if r["type"] == CLASSIFICATION], encoders, list(benchmarks), synthetic,
                            rank_settings, settings.default_benchmark)
    for view in ranking["views"].values():
        view["metric"], view["type"] = "AUROC", CLASSIFICATION
    titles = {b: (benchmarks[b].title if b in benchmarks else b) for b in ranking["benchmarks"]}
    for kind in sorted({r["type"] for r in records} - {CLASSIFICATION}):
        mine = [r for r in records if r["type"] == kind]
        typed = rank_encoders(mine, encoders, list(benchmarks), synthetic, rank_settings)
        label = metric_label(mine[0]["metric"], layout, kind)
        title = plugins.load("task_type", kind).title
        for key, view in typed["views"].items():
            bench, dataset = key.split("|")
            view["metric"], view["type"] = label, kind
            ranking["views"][f"{bench}{TYPE_SEPARATOR}{kind}|{dataset}"] = view
        for bench in [ALL, *typed["benchmarks"]]:
            name = f"{bench}{TYPE_SEPARATOR}{kind}"
            if any(k.startswith(name + "|") for k in ranking["views"]):
                ranking["benchmarks"].append(name)
                titles[name] = f"{title} ({label})" + ("" if bench == ALL else f" · {titles.get(bench, bench)}")
                if bench in synthetic:
                    ranking["synthetic_benchmarks"].append(name)
        ranking["datasets"] = sorted(set(ranking["datasets"]) | set(typed["datasets"]))
    labels = {key: view_label(key, benchmarks, registry) for key in ranking["views"]}
    return {
        "ranking": ranking, "labels": labels,
        "files": [name for e in entries for name in (e.file, predictions_name(e.result, Path(results_dir))) if name],
        "benchmark_titles": {b: titles.get(b) or (benchmarks[b].title if b in benchmarks else b)
                             for b in ranking["benchmarks"]},
        "dataset_titles": {d: (registry.datasets[d].spec.title if d in registry.datasets else d)
                           for d in ranking["datasets"]},
        "places": encoder_places(ranking, records, encoders, labels),
    }


def metric_label(metric: str, layout, kind: str) -> str:
    """The column label the layout gives a type's metric (registry/benchmarks.yaml column_groups), else its id."""
    return dict(layout.column_groups.get(kind, ())).get(metric, metric)


def encoder_profile(encoder_id: str, card: dict) -> dict:
    """What an encoder's own page shows about the model, flat, every key present (None where the card says nothing)."""
    from leaderboard.summary.ranking import encoder_meta

    weights = card.get("weights") or {}
    preprocess = card.get("preprocess") or {}
    embedding = card.get("embedding") or {}
    precision = card.get("precision") or {}
    normalize = preprocess.get("normalize")
    return {**encoder_meta(encoder_id, card),
            **{k: card.get(k) for k in ("adapter", "description", "homepage", "citation", "training_data", "seed")},
            "pooling": embedding.get("pooling"), "l2_normalize": bool(embedding.get("l2_normalize")),
            "reads_pixels": bool(preprocess), "channels": preprocess.get("channels"),
            "bit_depth": preprocess.get("bit_depth"),
            "normalize": normalize if isinstance(normalize, str) or normalize is None else "mean/std given in the card",
            "hf_repo": weights.get("hf_repo"), "revision": weights.get("revision"),
            "files": list(weights.get("files") or []), "local_dir_env": weights.get("local_dir_env"),
            "random_init": bool(weights.get("random_init")),
            "bf16": bool(precision.get("bf16")), "channels_last": bool(precision.get("channels_last"))}
