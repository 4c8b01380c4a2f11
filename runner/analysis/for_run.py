"""The analyses of one `runner eval` run: which ones, what they are fed, and the test sets of the transfer analysis.

Entry: `run_task_analyses(names, run, design, fitted, timings) -> {name: JSON-safe block}` (runner.analysis
run_analyses does the per-analysis work). Also: `wanted_analyses` (named, or those the task card enables),
`augmentations_needed` (the card's augmentations when the classifier or the stability analysis needs views), and
`prediction_analyses` (what the predictions alone give: CI alternatives, within-view AUROC, subgroups; the registry
recomputes exactly these when it files a result).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from registry.errors import CardError, RegistryError
from runner.analysis import FROM_PREDICTIONS, AnalysisContext, TransferSet, enabled_analyses, run_analyses
from runner.analysis.within_view import within_view_auroc
from runner.classify.design import Design, cross_validation_design
from runner.classify.out_of_fold import card_fit_predict
from runner.data.roots import DataRoots
from runner.embed.for_task import EmbedSettings, embed_task
from runner.metrics.scores import MetricsInputError
from runner.sample.run_manifest import manifest_for_run


class AnalysisSetupError(RegistryError):
    """The task card cannot feed an analysis that was asked for (exit 2)."""

    exit_code = 2


@dataclass
class RunContext:
    """What the analyses of one run may use beyond its design: the cards, the encoder and its cache, the data roots,
    the run folders and the embedding settings (the transfer analysis samples and embeds its target test sets)."""

    task: object  # registry Card
    registry: object
    encoder: object
    encoder_card: object
    cache: object  # runner.embed.cache.EmbeddingCache
    roots: DataRoots
    run_dir: Path  # OUT/<task>/<encoder>/: figures are written here
    out_dir: Path  # OUT: target manifests are frozen under OUT/<target>/
    settings: EmbedSettings
    resample: bool = False


def wanted_analyses(task, names: list[str] | None) -> list[str]:
    """The analyses to run: those named, or (None) those the task card enables."""
    return enabled_analyses(task.spec.analyses) if names is None else list(names)


def augmentations_needed(task, wanted: list[str]):
    """The card's augmentations, when the classifier trains on augmented views or the stability analysis runs."""
    spec = task.spec
    if not (spec.classifier.augmented_training_rows or "stability" in wanted):
        return None
    if spec.augmentations is None:
        raise AnalysisSetupError(f"{task.id}: augmented views are needed (stability analysis or augmented training "
                                 f"rows) but the task card has no `augmentations` block")
    return spec.augmentations


def within_view_block(predictions: pd.DataFrame, table: pd.DataFrame, eval_folds: list[int],
                      task_data: dict) -> dict | None:
    """AUROC on each of the task's views alone (runner.analysis.within_view), for every task with two or more views."""
    task_views = list(task_data.get("views") or [])
    if len(task_views) < 2 or "view" not in table.columns:
        return None
    views = predictions["image_id"].map(table.drop_duplicates("image_id").set_index("image_id")["view"])
    try:
        return within_view_auroc(predictions, views, task_data.get("metrics"), task_views, eval_folds)
    except MetricsInputError as exc:
        return {"status": "skipped", "reason": str(exc)}


def prediction_analyses(task, predictions: pd.DataFrame, table: pd.DataFrame, eval_folds: list[int], summary: dict,
                        names: list[str], timings: dict | None = None) -> dict:
    """The result `analyses` that need nothing but the out-of-fold predictions and the manifest rows (`table`: sex,
    age, view per image): the CI alternatives, within-view AUROC and those of `names` in FROM_PREDICTIONS. `runner eval`
    and the registry's regeneration of a submitted result (leaderboard.filing.regenerate) both call this."""
    spec = task.spec
    out: dict = {"ci": summary["ci_alternatives"]}
    within_view = within_view_block(predictions, table, eval_folds, task.data)
    if within_view is not None:
        out["within_view"] = within_view
    chosen = [name for name in names if name in FROM_PREDICTIONS]
    if chosen:
        context = AnalysisContext(analyses_card=spec.analyses, metrics_card=spec.metrics, manifest=table,
                                  predictions=predictions, eval_folds=eval_folds)
        out.update(run_analyses(chosen, context, timings))
    return out


def run_task_analyses(names: list[str], run: RunContext, design: Design, fitted, timings: dict) -> dict:
    """{analysis name: block} for result `analyses` of the named analyses that need the run's embeddings (those in
    FROM_PREDICTIONS are prediction_analyses'); `timings` receives seconds per analysis."""
    names = [name for name in names if name not in FROM_PREDICTIONS]
    if not names:
        return {}
    targets, target_reasons = {}, {}
    if "transfer" in names:
        started = time.perf_counter()
        targets, target_reasons = transfer_targets(run)
        timings["transfer-targets"] = time.perf_counter() - started  # sampling + embedding the target test sets
    spec = run.task.spec
    context = AnalysisContext(
        analyses_card=spec.analyses,
        metrics_card=spec.metrics,
        manifest=design.table,
        embeddings=design.embeddings,
        predictions=fitted.predictions,
        eval_folds=design.eval_folds,
        output_dir=run.run_dir,
        encoder_id=run.encoder_card.id,
        augmented=design.augmented or None,
        transfer_targets=targets or None,
        fit_predict=card_fit_predict(spec.classifier),
        classifier_params=dict(spec.classifier.params),
    )
    results = run_analyses(names, context, timings)
    if "transfer" in names and target_reasons:
        transfer = results.get("transfer") or {}
        if transfer.get("status") == "skipped" or not targets:
            results["transfer"] = {"status": "skipped", "reason": "; ".join(target_reasons.values())}
        else:
            transfer.update({t: {"status": "skipped", "reason": r} for t, r in target_reasons.items()})
    return results


def transfer_targets(run: RunContext) -> tuple[dict[str, TransferSet], dict[str, str]]:
    """Test sets of the transfer analysis: the card's analyses.transfer.targets, by default the transfer tasks that
    train on this task; each sampled and frozen under OUT/<target>/ and embedded through the cache.
    Returns ({target id: TransferSet}, {target id: why it could not be used})."""
    task, reg = run.task, run.registry
    named = task.spec.analyses.transfer.targets
    if named is None:
        named = sorted(t.id for t in reg.tasks.values()
                       if t.spec.type == "transfer" and t.spec.transfer_train_task == task.id)
    if not named:
        return {}, {"none": f"no transfer target: the card's analyses.transfer.targets is empty and no transfer task "
                            f"trains on {task.id}"}
    targets, reasons = {}, {}
    for target_id in named:
        try:
            target = reg.get("task", target_id)
            if target.spec.label.id != task.spec.label.id:
                raise AnalysisSetupError(f"label {target.spec.label.id!r} differs from {task.spec.label.id!r}")
            dataset = reg.get("dataset", target.spec.dataset)
            root = run.roots.of(dataset.data)
            manifest = manifest_for_run(target, dataset, root, run.out_dir / target.id, reg.home.manifests_dir,
                                        run.resample)
            embedded = embed_task(run.encoder, run.encoder_card, dataset.id, root, manifest.frame, run.cache, None,
                                  run.settings, dataset.data.get("metadata_features"))
        except (RegistryError, CardError) as exc:
            reasons[target_id] = f"target {target_id}: {exc}"
            continue
        table = cross_validation_design(manifest, embedded).table
        targets[target_id] = TransferSet(embedded.original, table["label"].to_numpy().astype(int),
                                         table["patient_id"].astype(str).to_numpy())
    return targets, reasons
