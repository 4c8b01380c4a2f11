"""Shortcut floors of the leaderboard's rows: what a classifier reaches from the metadata alone, and how far above it
each encoder's AUROC is.

Entry: `compute_floors(results, registry) -> dict` (JSON-safe). A pure function of the filed results and the cards:
* a *floor* of a task is a reproduced result of a metadata baseline (an encoder card with `adapter: metadata`) on it;
  the *primary* floor is the baseline that uses every feature the data set declares (no `model.features`), the others
  (e.g. view only) are listed beside it;
* a task's *matched control* is the task with the same data set and label whose `sampling.match` is set (the
  view-matched cards), with its own floors;
* for every other result of the task, `same_sample` says whether it and the primary floor were measured on the same
  frozen manifest (true/false for reproduced results; null for reported numbers, whose images the publication does
  not list), and `above_floor` = its AUROC minus the floor's only when they were: a difference across two samples is
  not what the image adds, so it is not computed (`not_compared` says why);
* a floor below 0.5 is marked `below_chance`: a metadata classifier cannot be systematically wrong, so it is the
  cross-validation artefact of an uninformative feature (BELOW_CHANCE), shown as such and never as a signal.
Used by leaderboard/site/render.py (Table 1's floor column and the "above the floor" line in each AUROC cell) and written to
leaderboard.json under "floors".
"""

from __future__ import annotations

from collections.abc import Iterable

SOURCE = (
    "Shortcut floor = the same LightGBM on the metadata alone, no pixels: the acquisition and demographic columns the "
    "dataset card declares as metadata_features, run with `runner eval --encoder metadata` through the same sampler, "
    "patient-wise folds, classifier and metrics as every encoder (filed by `python -m leaderboard.filing.file_floors`). "
    "The view-only floor uses the view position alone; a view-matched control task draws its negatives with the "
    "positives' view mix.")

BELOW_CHANCE = (
    "below 0.5: the features carry no signal here; cross-validation of an uninformative feature lands below 0.5 "
    "(each training fold's class balance within a feature value is shifted against its test fold's), so read it as "
    "0.5, not as a signal")
NOT_COMPARED = {
    None: "not subtracted: the floor is measured on the registry's sample, the publication's own images are not "
          "listed, so the difference would not be what the image adds",
    False: "not subtracted: the floor is measured on a different manifest",
}
CHANCE = 0.5  # the AUROC of a classifier that knows nothing


def _metadata_encoders(registry) -> dict[str, dict]:
    return {e.id: e.data for e in registry.encoders.values() if e.data.get("adapter") == "metadata"}


def _metric(result: dict) -> dict:
    auroc = result["metrics"]["auroc"]
    return {key: auroc.get(key) for key in ("mean", "ci_low", "ci_high", "half_width", "ci_method")}


def _floor(result: dict, file: str | None) -> dict:
    manifest = result.get("manifest") or {}
    counts = result.get("counts") or {}
    features = ((result.get("analyses") or {}).get("metadata_features") or {}).get("columns") or []
    return {**_metric(result), "encoder": result["encoder"]["id"], "encoder_name": result["encoder"]["name"],
            "features": list(features), "dataset": result["task"]["dataset"],
            "manifest_sha256": manifest.get("sha256"), "n_images": manifest.get("n_images"),
            "positives": counts.get("positives"), "negatives": counts.get("negatives"), "file": file,
            "below_chance": result["metrics"]["auroc"]["mean"] < CHANCE}


def _matched_task(registry, task) -> str | None:
    for other in registry.tasks.values():
        if other.id != task.id and ((other.data.get("sampling") or {}).get("match")) \
                and other.data.get("dataset") == task.data.get("dataset") \
                and (other.data.get("label") or {}).get("id") == (task.data.get("label") or {}).get("id") \
                and other.data.get("type", "classification") == task.data.get("type", "classification"):
            return other.id
    return None


def compute_floors(results: Iterable[dict] | Iterable[tuple[str, dict]], registry) -> dict:
    """{source, below_chance, primary_encoder, encoders: {id: title}, tasks: {task_id: {floors, primary, matched_task,
    matched_floors, above: {"<encoder>|<provenance>": {auroc, floor, same_sample, above_floor, not_compared}}}}}.

    results: result dicts, or (file name, result) pairs (the file name is recorded with each floor).
    """
    pairs = [(None, r) if isinstance(r, dict) else (r[0], r[1]) for r in results]
    baselines = _metadata_encoders(registry)
    primary = next((e for e, card in sorted(baselines.items()) if (card.get("model") or {}).get("features") is None),
                   None)
    floors: dict[str, dict[str, dict]] = {}
    for file, result in pairs:
        if result["encoder"]["id"] in baselines and result["provenance"] == "reproduced" \
                and (result["metrics"].get("auroc") or {}).get("mean") is not None:  # task types without AUROC: none
            floors.setdefault(result["task"]["id"], {})[result["encoder"]["id"]] = _floor(result, file)
    tasks = {}
    for task_id, by_encoder in sorted(floors.items()):
        task = registry.tasks.get(task_id)
        if task is None:
            continue
        matched = _matched_task(registry, task)
        base = by_encoder.get(primary)
        above = {}
        for _file, result in pairs:
            if result["task"]["id"] != task_id or result["encoder"]["id"] in baselines or base is None:
                continue
            auroc = (result["metrics"].get("auroc") or {}).get("mean")
            sha = (result.get("manifest") or {}).get("sha256")
            same = None if sha is None else sha == base["manifest_sha256"]
            above[f"{result['encoder']['id']}|{result['provenance']}"] = {
                "auroc": auroc, "floor": base["mean"], "same_sample": same,
                "above_floor": auroc - base["mean"] if same and auroc is not None else None,
                "not_compared": None if same else NOT_COMPARED[same]}
        dataset = registry.datasets.get(task.data.get("dataset"))
        package = (dataset.data.get("fallback_package") or {}).get("name") if dataset else None
        tasks[task_id] = {"floors": by_encoder, "primary": base, "matched_task": matched,
                          "metadata_from": (f"{dataset.data.get('title', dataset.id)} metadata tables"
                                            + (f" (without the images, the copies the {package} package ships)"
                                               if package else "")) if dataset else None,
                          "matched_floors": floors.get(matched, {}) if matched else {}, "above": above}
    return {"source": SOURCE, "below_chance": BELOW_CHANCE, "primary_encoder": primary,
            "encoders": {e: card.get("title", e) for e, card in sorted(baselines.items())}, "tasks": tasks}
