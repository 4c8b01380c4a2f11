"""Shortcut floors of the leaderboard's rows: what a classifier reaches from the metadata alone, and how far above it
each encoder's AUROC is.

Entry: `compute_floors(results, registry, predictions=None) -> dict` (JSON-safe). A pure function of the filed
results, their filed out-of-fold predictions and the cards:
* a *floor* of a task is a reproduced result of a metadata baseline (an encoder card with `adapter: metadata`) on it;
  the *primary* floor is the shortcut floor: the baseline that uses every acquisition and demographic feature (no
  `model.features`, `model.kinds` without label-source); the *label-source* floor (`model.kinds: [label-source]`,
  PadChest's label method) is shown as such, apart from it; the others (view only, follow-up number only) are listed
  beside it, each named by what it uses;
* a task's *matched control* is the task with the same data set and label whose `sampling.match` is set (the
  view-matched cards), with its own floors;
* for every other result of the task, `same_sample` says whether it and the primary floor were measured on the same
  frozen manifest (true/false for reproduced results; null for reported numbers, whose images the publication does
  not list), and `above_floor` = its AUROC minus the floor's only when they were and both results' out-of-fold
  predictions are filed: the difference then comes with the paired patient bootstrap CI of runner.analysis.paired
  (`above_ci_low`, `above_ci_high`: the same patient draws for both, within the shared folds, at the task card's
  metrics settings). A difference across two samples, or one without a CI, is not shown (`not_compared` says why);
* a floor below 0.5 is marked `below_chance`: a metadata classifier cannot be systematically wrong, so it is the
  cross-validation artefact of an uninformative feature (BELOW_CHANCE), shown as such and never as a signal.
Used by leaderboard/site/render.py (Table 1's floor column and the "above the floor" line in each AUROC cell) and written to
leaderboard.json under "floors".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from runner.analysis.paired import paired_bootstrap
from runner.encoders.metadata import wanted_features, wanted_kinds
from runner.metrics.scores import MetricsInputError

SOURCE = (
    "Shortcut floor = the same LightGBM on the metadata alone, no pixels: the acquisition and demographic columns the "
    "dataset card declares as metadata_features, run with `runner eval --encoder metadata` through the same sampler, "
    "patient-wise folds, classifier and metrics as every encoder (filed by `python -m leaderboard.filing.file_floors`). "
    "Label-provenance columns (kind label-source) are left out: they are the separate label-source floor. The "
    "view-only floor uses the view position alone, the follow-up floor NIH's 'Follow-up #' alone (the image's place in "
    "the patient's series: the NIH shortcut by name); a matched control task draws its negatives with the positives' "
    "view x sex x age band mix.")

LABEL_SOURCE_NOTE = (
    "Label-source floor: the same LightGBM on the columns that say how the label was made (PadChest: physician or "
    "model labels), kept out of the shortcut floor because no image encoder can see them; above 0.5 it says the "
    "label's provenance predicts the label.")

BELOW_CHANCE = (
    "below 0.5: the features carry no signal here; cross-validation of an uninformative feature lands below 0.5 "
    "(each training fold's class balance within a feature value is shifted against its test fold's), so read it as "
    "0.5, not as a signal")
NOT_COMPARED = {
    None: "not subtracted: the floor is measured on the registry's sample, the publication's own images are not "
          "listed, so the difference would not be what the image adds",
    False: "not subtracted: the floor is measured on a different manifest",
    "no-predictions": "not subtracted: the out-of-fold predictions of both results are needed for the difference's "
                      "paired CI, and they are not both filed",
}
LABEL_SOURCE = "label-source"
CHANCE = 0.5  # the AUROC of a classifier that knows nothing


def _metadata_encoders(registry) -> dict[str, dict]:
    return {e.id: e.data for e in registry.encoders.values() if e.data.get("adapter") == "metadata"}


def _is_primary(card: dict) -> bool:
    """The shortcut floor: every acquisition and demographic feature, no label-provenance column."""
    return wanted_features(card) is None and LABEL_SOURCE not in wanted_kinds(card)


def _is_label_source(card: dict) -> bool:
    return wanted_kinds(card) == [LABEL_SOURCE]


def _above(result: dict, base: dict, floor_result: dict | None, predictions, metrics_card) -> dict:
    """The encoder's AUROC minus the floor's with its paired patient bootstrap CI, or why it is not shown."""
    auroc = (result["metrics"].get("auroc") or {}).get("mean")
    sha = (result.get("manifest") or {}).get("sha256")
    same = None if sha is None else sha == base["manifest_sha256"]
    out = {"auroc": auroc, "floor": base["mean"], "same_sample": same, "above_floor": None, "above_ci_low": None,
           "above_ci_high": None, "not_compared": None if same else NOT_COMPARED[same]}
    if not same or auroc is None:
        return out
    ours = predictions(result) if predictions else None
    theirs = predictions(floor_result) if predictions and floor_result is not None else None
    if ours is None or theirs is None:
        return {**out, "not_compared": NOT_COMPARED["no-predictions"]}
    try:
        paired = paired_bootstrap(ours, theirs, metrics_card)["auroc"]
    except MetricsInputError as exc:  # e.g. predictions that do not share the manifest's folds
        return {**out, "not_compared": f"not subtracted: {exc}"}
    return {**out, "above_floor": paired["diff"], "above_ci_low": paired["ci_low"], "above_ci_high": paired["ci_high"],
            "confidence": paired.get("confidence")}


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


def compute_floors(results: Iterable[dict] | Iterable[tuple[str, dict]], registry,
                   predictions: Callable[[dict], pd.DataFrame | None] | None = None) -> dict:
    """{source, below_chance, primary_encoder, label_source_encoders, encoders: {id: title}, tasks: {task_id: {floors,
    primary, label_source, matched_task, matched_on, matched_floors, above: {"<encoder>|<provenance>": {auroc, floor, same_sample,
    above_floor, above_ci_low, above_ci_high, not_compared}}}}}.

    results: result dicts, or (file name, result) pairs (the file name is recorded with each floor).
    predictions: a filed result -> its out-of-fold predictions (None: not filed); without it no difference is shown.
    """
    pairs = [(None, r) if isinstance(r, dict) else (r[0], r[1]) for r in results]
    baselines = _metadata_encoders(registry)
    primary = next((e for e, card in sorted(baselines.items()) if _is_primary(card)), None)
    label_source = [e for e, card in sorted(baselines.items()) if _is_label_source(card)]
    floors: dict[str, dict[str, dict]] = {}
    floor_results: dict[tuple[str, str], dict] = {}
    for file, result in pairs:
        if result["encoder"]["id"] in baselines and result["provenance"] == "reproduced" \
                and (result["metrics"].get("auroc") or {}).get("mean") is not None:  # task types without AUROC: none
            floors.setdefault(result["task"]["id"], {})[result["encoder"]["id"]] = _floor(result, file)
            floor_results[(result["task"]["id"], result["encoder"]["id"])] = result
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
            above[f"{result['encoder']['id']}|{result['provenance']}"] = _above(
                result, base, floor_results.get((task_id, primary)), predictions, task.spec.metrics)
        dataset = registry.datasets.get(task.data.get("dataset"))
        package = (dataset.data.get("fallback_package") or {}).get("name") if dataset else None
        tasks[task_id] = {"floors": by_encoder, "primary": base,
                          "label_source": next((by_encoder[e] for e in label_source if e in by_encoder), None),
                          "matched_task": matched,
                          # what the control matched on, from its card (match.strata), e.g. "view, sex, age band"
                          "matched_on": ", ".join(s.replace("_", " ") for s in
                                                  registry.tasks[matched].spec.sampling.match.strata)
                          if matched else None,
                          "metadata_from": (f"{dataset.data.get('title', dataset.id)} metadata tables"
                                            + (f" (without the images, the copies the {package} package ships)"
                                               if package else "")) if dataset else None,
                          "matched_floors": floors.get(matched, {}) if matched else {}, "above": above}
    return {"source": SOURCE, "below_chance": BELOW_CHANCE, "primary_encoder": primary,
            "label_source_encoders": label_source, "label_source_note": LABEL_SOURCE_NOTE,
            "encoders": {e: card.get("title", e) for e, card in sorted(baselines.items())}, "tasks": tasks}
