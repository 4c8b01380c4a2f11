"""Verification is regeneration: a filed result is what the registry's own code computes from what the registry pins
(the cards, the task's pinned manifest) and the minimum a submitter sends (out-of-fold predictions, the images the run
could not embed, and optionally the embeddings themselves) — never the submitter's numbers.

Entry: `regenerate(submitted, predictions, manifest, registry, ...) -> Regenerated`: the result `runner eval` would
have written from these inputs, built by the same code (runner.metrics.summary, runner.analysis.for_run
prediction_analyses, runner.results.run_result), plus the problems that keep it off the leaderboard.
`differences(submitted, regenerated)` lists every number the submission claims that the regeneration does not give:
`runner submit` refuses on any.

A task type with its own score function (runner.task_types: multi-label, few-shot, demographic, retrieval,
reidentification, clustering, zero-shot) goes through the same checks of the manifest and the exclusions, then is
scored from the submitted embeddings bundle alone (the manifest rows it embedded, the embeddings, a zero-shot task's
prompt embeddings -> the type's score -> the result), or for the metadata baseline from the manifest's columns:
nothing the submitter computed is taken.

What is recomputed: metrics, per-fold values, CIs (both methods), the pooled ROC, counts, within-view AUROC,
subgroups, the metadata baseline's feature list, a transfer task's block (from the training task's pinned manifest).
What needs the run's embeddings (stability, clustering, label efficiency, the transfer analysis) is recomputed only
from a submitted embeddings bundle; without one it is left out and listed under `verification.not_verified`, never
shown as verified. What only the run knows (timings, throughput, environment, the code that ran, the classifier's tree counts) is
filed as the submitter reports it.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from registry.errors import RegistryError
from runner.analysis import ANALYSES, FROM_PREDICTIONS, PAIRED_ELSEWHERE, AnalysisContext, run_analyses
from runner.analysis.for_run import prediction_analyses
from runner.classify.design import TRAIN_PREFIX, cross_validation_design, transfer_design
from runner.classify.out_of_fold import card_fit_predict, classify_many
from runner.encoders.metadata import MetadataNotAvailable, metadata_embeddings, reads_pixels
from runner.metrics.scores import MetricsInputError
from runner.metrics.summary import summarize
from runner.results.run_result import RunFacts, run_result, transfer_block
from runner.sample.exclusion_budget import EMBEDDING_PREFIX, budget_problem, max_excluded_fraction
from runner.sample.manifest import card_problems
from runner.task_types import scores_itself, task_type_of
from runner.task_types.run import score_inputs, typed_result

TIERS = ("predictions", "embeddings")  # how a reproduced result is verified, weakest first
FLOAT_TOLERANCE = 1e-9  # the same code on the same rows: only float noise may differ
PREDICTION_COLUMNS = ("image_id", "patient_id", "label", "fold", "prob")
MAX_SHOWN = 3  # differences listed per result; the rest are counted
RUN_FACTS = ("timings_s", "throughput", "environment", "code", "created_at", "inputs_sha256", "notes")  # never recomputed
# The card references: their behaviour hashes are checked against today's cards (leaderboard.filing.verify
# card_matches); a title edit since the run changes the full sha256 and is filed under today's card.
CARD_BLOCKS = ("task", "encoder")
NEEDS_EMBEDDINGS = "needs the run's embeddings: submit them (runner eval --save-embeddings) to have it verified"
EMBEDDING_ANALYSES = ("stability", "clustering", "label_efficiency")  # recomputed from a bundle (transfer: other tasks)
NO_PREDICTIONS = "no predictions file to recompute the numbers from (predictions.parquet beside result.json)"
NO_BUNDLE = ("a result of this task type is regenerated from the run's embeddings: submit embeddings.npz beside the "
             "result (runner eval writes it for every task type other than classification and transfer)")


@dataclass
class Regenerated:
    result: dict | None  # what the registry files; None when the inputs do not allow it (see problems)
    problems: list[str] = field(default_factory=list)  # why it cannot stand (empty: it stands)
    tier: str = "predictions"  # predictions | embeddings (refit from a submitted bundle or the metadata columns)
    predictions: pd.DataFrame | None = None  # the registry's own predictions (tier embeddings), to file


def embedding_exclusions(result: dict) -> list[dict]:
    """The exclusions the run made after sampling (missing at embedding time, decode failures), prefix removed."""
    return [{**e, "reason": str(e.get("reason", "")).removeprefix(EMBEDDING_PREFIX)}
            for e in (result.get("counts") or {}).get("exclusions", [])
            if isinstance(e, dict) and str(e.get("reason", "")).startswith(EMBEDDING_PREFIX)]


def exclusion_problems(manifest, exclusions: list[dict]) -> list[str]:
    """An exclusion claimed at embedding must be one row of the manifest, with its path, listed once."""
    rows = manifest.frame.set_index(manifest.frame["image_id"].astype(str))["path"].astype(str)
    seen, problems = set(), []
    for entry in exclusions:
        image_id, path = str(entry.get("image_id")), str(entry.get("path"))
        if image_id in seen:
            problems.append(f"image {image_id!r} is excluded at embedding more than once")
        elif image_id not in rows.index:
            problems.append(f"image {image_id!r} excluded at embedding is not in the manifest")
        elif rows[image_id] != path:
            problems.append(f"image {image_id!r} excluded at embedding with path {path!r}; the manifest has "
                            f"{rows[image_id]!r}")
        seen.add(image_id)
    return problems[:MAX_SHOWN] + ([f"(and {len(problems) - MAX_SHOWN} more)"] if len(problems) > MAX_SHOWN else [])


def expected_rows(manifest, exclusions: list[dict], transfer: bool) -> tuple[pd.DataFrame, list[int]]:
    """Every manifest row that reached the classifier (with fold 0 for a transfer task, which tests every image) and
    the evaluated folds."""
    dropped = {str(e["image_id"]) for e in exclusions}
    rows = manifest.frame[~manifest.frame["image_id"].astype(str).isin(dropped)]
    if transfer:
        return rows.assign(fold=0), [0]
    return rows, [int(f) for f in manifest.meta["eval_folds"]]


def prediction_problems(predictions: pd.DataFrame, expected: pd.DataFrame) -> list[str]:
    """The predictions must be exactly the expected test rows, with their patient, label and fold, and a
    probability in [0, 1] for each."""
    missing_columns = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing_columns:
        return [f"predictions lack column(s) {', '.join(missing_columns)}"]
    ids = predictions["image_id"].astype(str)
    if ids.duplicated().any():
        return [f"predictions list image {ids[ids.duplicated()].iloc[0]!r} more than once"]
    want = expected.assign(image_id=expected["image_id"].astype(str)).set_index("image_id")
    have = predictions.assign(image_id=ids).set_index("image_id")
    # pandas' set operations (hashed in C): iterating ~2,000 ids into Python sets cost more than the rest of the check
    extra = sorted(have.index.difference(want.index).tolist())
    absent = sorted(want.index.difference(have.index).tolist())
    problems = []
    if extra:
        problems.append(f"{len(extra)} predicted image(s) are not test rows of the manifest, e.g. {extra[0]!r}")
    if absent:
        problems.append(f"{len(absent)} test row(s) of the manifest have no prediction and are not recorded as "
                        f"excluded, e.g. {absent[0]!r}")
    if problems:
        return problems
    have = have.loc[want.index]
    odd = ~pd.to_numeric(have["label"], errors="coerce").isin([0, 1])
    if odd.any():  # NaN, 2, "yes": never compared as if it were a label
        first = int(odd.argmax())
        return [f"{int(odd.sum())} prediction row(s) have a label that is not 0 or 1, e.g. image "
                + f"{str(have.index[first])[:80]!r}: {str(have['label'].iloc[first])[:40]}"]
    for column in ("patient_id", "label", "fold"):
        left = have[column].astype(str) if column == "patient_id" else pd.to_numeric(have[column], errors="coerce")
        right = want[column].astype(str) if column == "patient_id" else want[column].astype("int64")
        differs = left.to_numpy() != right.to_numpy()
        if differs.any():
            first = want.index[differs.argmax()]
            problems.append(f"{int(differs.sum())} prediction row(s) have another {column} than the manifest, e.g. "
                            f"image {first!r}: {have.loc[first, column]!r} vs {want.loc[first, column]!r}")
    probs = pd.to_numeric(have["prob"], errors="coerce").to_numpy(dtype=float)
    outside = ~(np.isfinite(probs) & (probs >= 0.0) & (probs <= 1.0))
    if outside.any():
        problems.append(f"{int(outside.sum())} prediction(s) are not a probability in [0, 1], e.g. image "
                        f"{have.index[outside.argmax()]!r}: {have['prob'].iloc[outside.argmax()]!r}")
    return problems


def refit(submitted: dict, manifest, registry, bundle=None, train_manifest=None
          ) -> tuple[pd.DataFrame | None, dict, list[str]]:
    """The registry's own classification, from embeddings it has: a submitted bundle (runner.results.bundle), or, for
    the metadata baseline, the manifest's own metadata columns. Returns (its out-of-fold predictions, the analyses
    that need embeddings recomputed from them, problems); predictions None when there is nothing to refit from.
    A transfer task's bundle holds both sides, the training task's rows under TRAIN_PREFIX."""
    task = registry.tasks[submitted["task"]["id"]]
    encoder_card = registry.encoders[submitted["encoder"]["id"]]
    transfer = task.spec.type == "transfer"
    exclusions = embedding_exclusions(submitted)
    expected, _ = expected_rows(manifest, exclusions, transfer=False)
    train = _TrainSide.of(submitted, train_manifest) if transfer else None
    if bundle is None and (reads_pixels(encoder_card.data) or transfer):
        return None, {}, []
    allow_missing = not reads_pixels(encoder_card.data)
    if bundle is None:  # the metadata baseline's features are frozen in the manifest: the registry has them itself
        embedded = metadata_embeddings(expected, encoder_card.data, task.spec.dataset,
                                       registry.datasets[task.spec.dataset].data.get("metadata_features"))
        design = cross_validation_design(manifest, embedded, allow_missing=allow_missing)
    else:
        want = expected["image_id"].astype(str).tolist() + [TRAIN_PREFIX + i for i in (train.image_ids if train else [])]
        problems = bundle_problems(bundle, manifest, want, task, encoder_card)
        if problems:
            return None, {}, problems
        rows = {image_id: i for i, image_id in enumerate(bundle.image_ids)}

        def side(ids: list[str]):
            at = [rows[i] for i in ids]
            return SimpleNamespace(image_ids=[i.removeprefix(TRAIN_PREFIX) for i in ids], original=bundle.original[at],
                                   augmented={v: x[at] for v, x in bundle.augmented.items()})

        test_ids = [i for i in bundle.image_ids if not i.startswith(TRAIN_PREFIX)]
        if transfer:
            train_ids = [i for i in bundle.image_ids if i.startswith(TRAIN_PREFIX)]
            design = transfer_design(train_manifest, side(train_ids), manifest, side(test_ids), allow_missing)
        else:
            design = cross_validation_design(manifest, side(test_ids), allow_missing=allow_missing)
    try:
        fitted = classify_many([design], task.spec.classifier)[0]
    except RegistryError as exc:
        return None, {}, [f"the registry's refit failed: {exc}"]
    analyses = {}
    wanted = [name for name in (submitted.get("analyses") or {})
              if name in EMBEDDING_ANALYSES and bundle is not None]
    if wanted:
        with tempfile.TemporaryDirectory(prefix="cxr-refit-") as figures:  # the figures' names, not their files
            context = AnalysisContext(analyses_card=task.spec.analyses, metrics_card=task.spec.metrics,
                                      manifest=design.table, embeddings=design.embeddings,
                                      predictions=fitted.predictions, eval_folds=design.eval_folds,
                                      output_dir=Path(figures), draw_figures=False, encoder_id=encoder_card.id,
                                      augmented=design.augmented or None,
                                      fit_predict=card_fit_predict(task.spec.classifier),
                                      classifier_params=dict(task.spec.classifier.params))
            analyses = run_analyses(wanted, context)
    return fitted.predictions, analyses, []


def bundle_problems(bundle, manifest, expected_ids: list[str], task, encoder_card) -> list[str]:
    """A bundle belongs to the submission: the same task and encoder behaviour, the manifest, and exactly the rows
    that reached the classifier (`expected_ids`)."""
    header, problems = bundle.header, []
    for key, want in (("task_behaviour_sha256", task.behaviour_sha256),
                      ("encoder_behaviour_sha256", encoder_card.behaviour_sha256),
                      ("manifest_sha256", manifest.meta["sha256"])):
        if header.get(key) != want:
            problems.append(f"the embeddings bundle's {key} is {str(header.get(key))[:12]}…, not {want[:12]}…")
    want_ids = set(expected_ids)
    have_ids = set(bundle.image_ids)
    if want_ids != have_ids:
        problems.append(f"the embeddings bundle has {len(have_ids - want_ids)} image(s) that are not rows the "
                        f"classifier saw and lacks {len(want_ids - have_ids)} that are")
    if task.spec.classifier.augmented_training_rows and not bundle.augmented:
        problems.append("the task trains on augmented views, which the embeddings bundle does not hold")
    if task_type_of(task).needs_text:  # a zero-shot task: each prompt side's text embeddings, one row per prompt
        want = {f"{label}:{side}": len(getattr(prompts, side)) for label, prompts in task.spec.prompts.items()
                for side in ("positive", "negative")}
        have = {key: int(array.shape[0]) for key, array in bundle.texts.items()}
        if have != want:
            problems.append(f"the embeddings bundle holds text embeddings {have}; the task's prompts need {want}")
    return problems


def regenerate(submitted: dict, predictions: pd.DataFrame | None, manifest, registry, *, train_manifest=None,
               bundle=None) -> Regenerated:
    """The result the registry files for a reproduced submission (see the module docstring). With a bundle (or for
    the metadata baseline) the registry refits the classifier and files its own predictions (tier embeddings)."""
    task = registry.tasks[submitted["task"]["id"]]
    encoder_card = registry.encoders[submitted["encoder"]["id"]]
    dataset = registry.datasets[task.spec.dataset]
    transfer = task.spec.type == "transfer"
    exclusions = embedding_exclusions(submitted)
    problems = [f"the pinned manifest does not sample the task as its card says: {p}"
                for p in card_problems(manifest, task)]
    problems += exclusion_problems(manifest, exclusions)
    over = budget_problem(len(manifest.frame), exclusions, max_excluded_fraction(task.data))
    if over:
        problems.append(over)
    if transfer and train_manifest is None:
        problems.append(f"no pinned manifest of the training task {task.spec.transfer_train_task!r}")
    if problems:
        return Regenerated(None, problems)
    if scores_itself(task):  # the task type's own score function, on the bundle alone
        return _scored_by_type(submitted, manifest, bundle, task, encoder_card, dataset, exclusions)
    refitted, refit_analyses, refit_problems = refit(submitted, manifest, registry, bundle, train_manifest)
    if refit_problems:
        return Regenerated(None, refit_problems)
    tier = "predictions"
    if refitted is not None:
        predictions, tier = refitted, "embeddings"
    if predictions is None:
        return Regenerated(None, [NO_PREDICTIONS])
    expected, folds = expected_rows(manifest, exclusions, transfer)
    problems = prediction_problems(predictions, expected)
    if problems:
        return Regenerated(None, problems)

    analyses: dict = {}
    if transfer:
        train = _TrainSide.of(submitted, train_manifest)
        train_problems = exclusion_problems(train_manifest, train.exclusions)
        train_over = budget_problem(len(train_manifest.frame), train.exclusions,
                                    max_excluded_fraction(registry.tasks[task.spec.transfer_train_task].data))
        if train_problems or train_over:
            return Regenerated(None, [f"training side: {p}" for p in [*train_problems, train_over] if p])
        n_train = {0: len(train.image_ids)}
    else:
        n_train = {f: int((expected["fold"] != f).sum()) for f in folds}
    try:
        summary = summarize(predictions, task.spec.metrics, eval_folds=folds, n_train=n_train)
        named = [name for name in (submitted.get("analyses") or {}) if name in FROM_PREDICTIONS]
        analyses.update(prediction_analyses(task, predictions, expected, folds, summary, named))
    except (MetricsInputError, ValueError, KeyError) as exc:
        return Regenerated(None, [f"cannot recompute the metrics from the predictions: {exc}"])
    claimed = submitted.get("analyses") or {}
    if isinstance(claimed.get("classifier"), dict):  # trees per fold: only the run knows them
        analyses["classifier"] = claimed["classifier"]
    if "paired" in claimed:  # asked for in the run: the summarize stage computes it across filed results
        analyses["paired"] = {"status": "skipped", "reason": PAIRED_ELSEWHERE}
    if not reads_pixels(encoder_card.data):
        try:
            names = metadata_embeddings(manifest.frame, encoder_card.data, dataset.id,
                                        dataset.data.get("metadata_features")).feature_names
        except MetadataNotAvailable as exc:
            return Regenerated(None, [str(exc)])
        analyses["metadata_features"] = {"columns": names}
    if transfer:
        train_task = registry.tasks[task.spec.transfer_train_task]
        analyses["transfer"] = transfer_block(train_task, registry.datasets[train_task.spec.dataset], train_manifest,
                                              train, task, dataset, manifest, _Embedded(expected, exclusions),
                                              summary)
    analyses.update(refit_analyses)
    result = run_result(task, encoder_card, dataset, manifest, predictions, exclusions, summary, analyses,
                        RunFacts.of_result(submitted))
    # A filed result regenerates to itself: the analyses left out when it was filed stay listed (by name, with the
    # registry's own reason), so the check at build does not depend on what else was filed since.
    left_out = ((submitted.get("verification") or {}).get("not_verified") or {}) if isinstance(
        submitted.get("verification"), dict) else {}
    not_verified = {name: NEEDS_EMBEDDINGS for name in [*claimed, *(n for n in left_out if n in ANALYSES)]
                    if name not in result["analyses"]}
    result["verification"] = {"tier": tier, "not_verified": not_verified}
    for key in ("predictions_sha256", "embeddings_sha256", "inputs_sha256", "notes"):
        if submitted.get(key) is not None:
            result[key] = submitted[key]
    return Regenerated(result, [], tier, predictions if tier == "embeddings" else None)


def _scored_by_type(submitted: dict, manifest, bundle, task, encoder_card, dataset, exclusions: list[dict]
                    ) -> Regenerated:
    """regenerate for a task type with its own score function: that function on the pinned manifest and the submitted
    embeddings bundle (the metadata baseline: the manifest's own columns), as `runner eval` calls it."""
    expected, _ = expected_rows(manifest, exclusions, transfer=False)
    pixels = reads_pixels(encoder_card.data)
    if not pixels:  # the metadata baseline's features are frozen in the manifest
        try:
            embedded = metadata_embeddings(expected, encoder_card.data, task.spec.dataset,
                                           dataset.data.get("metadata_features"))
        except MetadataNotAvailable as exc:
            return Regenerated(None, [str(exc)])
        texts = {}
    elif bundle is None:
        return Regenerated(None, [NO_BUNDLE])
    else:
        problems = bundle_problems(bundle, manifest, expected["image_id"].astype(str).tolist(), task, encoder_card)
        if problems:
            return Regenerated(None, problems)
        embedded, texts = bundle, bundle.texts
    inputs = score_inputs(task, encoder_card, manifest, embedded.image_ids, embedded.original,
                          getattr(embedded, "augmented", None), texts, pixels)
    try:
        scores = task_type_of(task).score(inputs)
    except (RegistryError, ValueError, KeyError) as exc:
        return Regenerated(None, [f"the registry's scoring failed: {exc}"])
    result = typed_result(task, encoder_card, dataset, manifest, exclusions, scores, RunFacts.of_result(submitted))
    result["verification"] = {"tier": "embeddings", "not_verified": {}}
    for key in ("embeddings_sha256", "inputs_sha256", "notes"):
        if submitted.get(key) is not None:
            result[key] = submitted[key]
    return Regenerated(result, [], "embeddings")


@dataclass
class _Embedded:
    """The test side of a transfer task as transfer_block reads it: the rows that embedded and the exclusions."""

    rows: pd.DataFrame
    exclusions: list[dict]

    @property
    def image_ids(self) -> list[str]:
        return self.rows["image_id"].astype(str).tolist()


@dataclass
class _TrainSide:
    """A transfer task's training side, from its pinned manifest and the exclusions the submission records for it."""

    image_ids: list[str]
    exclusions: list[dict]

    @classmethod
    def of(cls, submitted: dict, train_manifest) -> _TrainSide:
        block = (submitted.get("analyses") or {}).get("transfer") or {}
        exclusions = [{**e, "reason": str(e.get("reason", "")).removeprefix(EMBEDDING_PREFIX)}
                      for e in block.get("train_exclusions_at_embedding") or [] if isinstance(e, dict)]
        dropped = {str(e.get("image_id")) for e in exclusions}
        ids = [i for i in train_manifest.frame["image_id"].astype(str) if i not in dropped]
        return cls(ids, exclusions)


# ------------------------------------------------------------------------------------------------ comparison


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=FLOAT_TOLERANCE)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _leaf_differences(claimed, recomputed, pointer: str, out: list[str]) -> None:
    if isinstance(claimed, dict) and isinstance(recomputed, dict):
        for key in sorted(set(claimed) | set(recomputed)):
            _leaf_differences(claimed.get(key), recomputed.get(key), f"{pointer}/{key}", out)
    elif isinstance(claimed, list) and isinstance(recomputed, list) and len(claimed) == len(recomputed) \
            and any(isinstance(x, dict) for x in claimed):
        for i, (a, b) in enumerate(zip(claimed, recomputed)):
            _leaf_differences(a, b, f"{pointer}/{i}", out)
    elif not _same(claimed, recomputed):
        def show(v):
            text = repr(v) if not isinstance(v, list) else f"[{len(v)} values]"
            return text if len(text) < 60 else text[:57] + "..."
        out.append(f"{pointer}: the submission says {show(claimed)}, recomputed {show(recomputed)}")


def differences(submitted: dict, regenerated: dict) -> list[str]:
    """Every value the submission states that the regeneration gives otherwise (run facts and the analyses left out
    as not verified are the submitter's; the registry's `verification` block is its own)."""
    out: list[str] = []
    skipped = set(RUN_FACTS) | set(CARD_BLOCKS) | {"verification", "analyses"}
    for key in sorted((set(submitted) | set(regenerated)) - skipped):
        _leaf_differences(submitted.get(key), regenerated.get(key), f"/{key}", out)
    claimed, recomputed = submitted.get("analyses") or {}, regenerated.get("analyses") or {}
    for name in sorted(set(recomputed) | (set(claimed) - set((regenerated.get("verification") or {})
                                                               .get("not_verified", {})))):
        _leaf_differences(claimed.get(name), recomputed.get(name), f"/analyses/{name}", out)
    return out


def prediction_differences(submitted: pd.DataFrame, refitted: pd.DataFrame) -> str | None:
    """How the submitted predictions differ from the registry's refit (None: the same rows and probabilities)."""
    mine = refitted.assign(image_id=refitted["image_id"].astype(str)).set_index("image_id")
    theirs = submitted.assign(image_id=submitted["image_id"].astype(str)).set_index("image_id")
    one_side = theirs.index.symmetric_difference(mine.index)
    if len(one_side):
        return f"{len(one_side)} image(s) predicted on one side only"
    gap = np.abs(pd.to_numeric(theirs.loc[mine.index, "prob"], errors="coerce").to_numpy(dtype=float)
                 - mine["prob"].to_numpy(dtype=float))
    if not (gap <= FLOAT_TOLERANCE).all():
        worst = int(np.nanargmax(np.where(np.isfinite(gap), gap, np.inf)))
        return (f"{int((~(gap <= FLOAT_TOLERANCE)).sum())} probabilities differ, e.g. image {mine.index[worst]!r}: "
                f"{theirs.loc[mine.index[worst], 'prob']!r} submitted, {mine['prob'].iloc[worst]!r} refitted")
    return None


def filed_differences(filed: dict, regenerated: dict) -> list[str]:
    """Every field of a filed result that is not the regeneration's (a filed result is the regeneration itself)."""
    out: list[str] = []
    _leaf_differences(filed, regenerated, "", out)
    return out


def summarise(found: list[str]) -> str:
    more = f" (and {len(found) - MAX_SHOWN} more)" if len(found) > MAX_SHOWN else ""
    return "; ".join(found[:MAX_SHOWN]) + more
