"""One evaluation, end to end: the stage order of `runner eval`.

cards -> manifest (runner.sample.run_manifest) -> embeddings (runner.embed.for_task, cached) -> design
(runner.classify.design) -> the card's classifier per fold (runner.classify.out_of_fold) -> metrics
(runner.metrics.summary) -> analyses (runner.analysis.for_run) -> result.json (runner.results.run_result).
That is the classification and transfer task types'; every other type (runner.task_types: multi-label, few-shot,
demographic, retrieval, reidentification, clustering, zero-shot) shares the stages up to the embeddings and is then
scored by its own function (runner.task_types.run.run_typed), which the registry's regeneration calls too.

Entry: `evaluate(task_id, encoder_id, data_root, out_dir, ...) -> Path` of the result file
(`run_evaluation` also returns the result object and the cache's counters).

Run folder layout (OUT = out_dir):
  OUT/<task>/manifest.parquet, manifest.json, exclusions.csv   the frozen sample, shared by every encoder
  OUT/<task>/<encoder>/result.json                              validated (schema, no NaN) before it is written
  OUT/<task>/<encoder>/predictions.parquet                      out-of-fold: image_id, patient_id, label, fold, prob
A manifest already in OUT/<task>/ is reused when it was made from the same task behaviour (the task card's behaviour
hash, which covers its dataset card too), so every encoder of a task is scored on the same images and folds.

A result depends only on its own inputs: this module never reads another run's result or predictions. Comparisons
across encoders (paired tests, tie groups) and across tasks (a transfer task's in-domain reference) are made by the
summarize stage (leaderboard/summary/summarize.py) from filed results.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from registry.cards import load_registry
from registry.errors import RegistryError
from runner.analysis.for_run import (
    RunContext,
    augmentations_needed,
    prediction_analyses,
    run_task_analyses,
    wanted_analyses,
)
from runner.classify import fit_processes
from runner.classify.design import cross_validation_design, transfer_design
from runner.classify.out_of_fold import pool_threads, submit_many
from runner.data.fingerprint import file_sha256
from runner.data.roots import DataRoots
from runner.embed.for_task import EmbedSettings, embed_task, open_cache, open_encoder
from runner.encoders.metadata import reads_pixels
from runner.metrics.summary import summarize
from runner.results.bundle import NAME as BUNDLE_NAME
from runner.results.bundle import bundle_header, write_bundle
from runner.results.result import write_result
from runner.results.reuse import reusable_result, run_inputs_sha256
from runner.results.run_result import RunFacts, run_result, transfer_block, write_predictions
from runner.runtime.progress import phase, reporting, say
from runner.sample.exclusion_budget import check_budget, max_excluded_fraction
from runner.sample.run_manifest import manifest_for_run
from runner.task_types import scores_itself
from runner.task_types.run import run_typed


class EvaluationError(RegistryError):
    """An evaluation that cannot run; str() is the one-line human message. `exit_code` 2 = bad input, 1 = failure."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class EvalOptions:
    device: str = "auto"  # auto | cpu | cuda[:N]
    workers: int | None = None  # decode worker processes (None: runner.embed.plan.default_workers)
    analyses: list[str] | None = field(default_factory=list)  # [] none; None: those the task card enables
    cache_dir: Path | None = None  # default: $CXR_CACHE_DIR or ~/.cache/cxr-registry
    trust_custom_code: bool = False
    progress: bool | str = True  # True: a progress bar; "log": a line on stderr every few seconds (not a terminal)
    batch_size: int | None = None  # default: the encoder card's
    backend: str = "auto"  # auto | cpu | device | ray (runner.embed.plan)
    # dataset id -> root, for data sets other than the task's own: a transfer task's training set, transfer targets
    data_roots: dict[str, Path] = field(default_factory=dict)
    resample: bool = False  # sample again: neither a manifest in OUT/<task>/ nor the committed one (manifests/)
    weights_dir: Path | None = None  # --weights-dir: where the encoder's weight files are
    recompute: bool = False  # fit and score again even when the run folder's result has these inputs' fingerprint
    save_embeddings: bool = False  # write OUT/<task>/<encoder>/embeddings.npz for the registry's refit (runner submit)
    re_embed: bool = False  # compute every embedding again: nothing cached before these options were made is read
    re_embed_since: int = field(default=0, init=False)  # that moment (ns), so the runs of one command embed once

    def __post_init__(self):
        self.re_embed_since = time.time_ns() if self.re_embed else 0

    def embed_settings(self) -> EmbedSettings:
        return EmbedSettings(self.device, self.workers, self.batch_size, self.backend, self.progress, self.cache_dir,
                             self.weights_dir, self.trust_custom_code, self.re_embed_since)


@dataclass
class EvalRun:
    result_path: Path
    result: dict
    n_computed: int  # images embedded by this run (0 when the cache had them all)
    cache_hits: int
    cache_misses: int
    reused: bool = False  # the result in the run folder was computed from these very inputs (runner.results.reuse)


@dataclass
class _Side:
    """One task's frozen manifest and its embeddings (a transfer task has two: the training task's and its own)."""

    task: object  # registry Card
    dataset: object
    manifest: object  # runner.sample.manifest.Manifest
    embedded: object  # runner.embed.rows.Embeddings


def evaluate(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path, options: EvalOptions | None = None,
             registry=None) -> Path:
    """Evaluate one encoder on one task; returns OUT/<task>/<encoder>/result.json."""
    return run_evaluation(task_id, encoder_id, data_root, out_dir, options, registry).result_path


def run_evaluation(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path,
                   options: EvalOptions | None = None, registry=None) -> EvalRun:
    """`evaluate`, also returning the result object and the embedding cache's counters.

    A task card with `type: transfer` trains one classifier on every image of `transfer.train_task`'s manifest and
    scores this task's manifest: both are sampled (or reused) and frozen under OUT/<task>/, both embedded through the
    cache; the predictions are one holdout "fold 0", so the CI is the patient bootstrap over the test set.
    Every stage's error a user can act on is one EvaluationError line with the stage's exit code.
    """
    options = options or EvalOptions()
    try:
        with reporting(options.progress):  # phase lines (runner.runtime.progress); a command's own reporter stays
            prepared = _prepare(task_id, encoder_id, data_root, Path(out_dir), options, registry)
            return prepared if isinstance(prepared, EvalRun) else _finish(prepared)
    except EvaluationError:
        raise
    except RegistryError as exc:
        raise EvaluationError(str(exc), exit_code=exc.exit_code) from None


def run_evaluations(pairs: list[tuple[str, str]], data_root: Path | None, out_dir: Path,
                    options: EvalOptions | None = None, registry=None, apart=None) -> Iterator[PairRun]:
    """`run_evaluation` of every (task id, encoder id) pair, one PairRun each, in the order of `pairs`.

    Each pair's folds are sent to the fit processes as soon as its design is made (runner.classify.out_of_fold
    .submit_many), and the next pairs are sampled, embedded and sent before an earlier pair's fits are read: the
    processes always have a queue, so no pair ends on a tail of its last folds with a core idle. Pairs are planned
    ahead while their unread fits hold less than MAX_PENDING_CELLS. Results are those of `run_evaluation` pair by
    pair, byte for byte (tests/test_evaluate_batch.py). `apart(task_id, encoder_id)` returns a function that runs a
    pair elsewhere (a TensorFlow encoder's child process) when its turn comes, or None to run it here.
    """
    options = options or EvalOptions()
    reg = registry or load_registry()
    todo = [(task_id, encoder_id, apart(task_id, encoder_id) if apart else None) for task_id, encoder_id in pairs]
    fits = {(t, e) for t, e, elsewhere in todo  # pairs whose result is not kept (for the fit processes' warm-up)
            if elsewhere is None and (options.recompute or not (Path(out_dir) / t / e / "result.json").is_file())}
    number = {pair: n for n, pair in enumerate(pairs, 1)}
    ahead: deque[list] = deque()  # [task id, encoder id, seconds so far, _Prepared | EvalRun | Exception | elsewhere]
    with reporting(options.progress):  # phase lines (runner.runtime.progress); a command's own reporter stays
        try:
            while todo or ahead:
                while todo and (not ahead or sum(_held(item[3]) for item in ahead) < MAX_PENDING_CELLS):
                    task_id, encoder_id, elsewhere = todo.pop(0)
                    t0 = time.perf_counter()
                    later = sum(1 for t, e, _ in todo if (t, e) in fits)
                    with phase(f"evaluating {task_id} x {encoder_id} ({number[task_id, encoder_id]} of {len(pairs)})"
                               + ("" if elsewhere else ": up to its folds, sent to the fit processes")):
                        state = elsewhere or _guarded(_prepare, task_id, encoder_id, data_root, Path(out_dir),
                                                      options, reg, later)
                    ahead.append([task_id, encoder_id, time.perf_counter() - t0, state])
                task_id, encoder_id, seconds, state = ahead.popleft()
                t0 = time.perf_counter()
                if isinstance(state, _Prepared):
                    with phase(f"finishing {task_id} x {encoder_id} ({number[task_id, encoder_id]} of "
                               f"{len(pairs)}): its fits, metrics, analyses and result"):
                        state = _guarded(_finish, state)
                elif callable(state):
                    state = _guarded(state)
                yield PairRun(task_id, encoder_id, seconds + time.perf_counter() - t0, state)
        finally:  # stopped early (an interrupt, or a caller that reads no further): drop the fits nobody will read
            for item in ahead:
                if isinstance(item[3], _Prepared):
                    item[3].pending.cancel()


@dataclass
class PairRun:
    """One pair of `run_evaluations`: its EvalRun, or the exception that stopped it (EvaluationError for the
    errors a user can act on)."""

    task_id: str
    encoder_id: str
    seconds: float  # this process's time on the pair: sampling, embedding, planning, waiting for its fits, scoring
    outcome: EvalRun | Exception


# Unread fits of the pairs planned ahead hold their binned rows here (float32): 256 M cells = 1 GiB.
MAX_PENDING_CELLS = 256 * 2**20


def _held(state) -> int:
    return state.pending.cells if isinstance(state, _Prepared) else 0


def _guarded(step, *args):
    """step(*args), or the exception it raised (a RegistryError as the EvaluationError run_evaluation raises)."""
    try:
        return step(*args)
    except EvaluationError as exc:
        return exc
    except RegistryError as exc:
        return EvaluationError(str(exc), exit_code=exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - one pair's failure is its own; the batch goes on
        return exc


@dataclass
class _Prepared:
    """A pair up to its classifier, its fits sent: what `_finish` scores and writes."""

    task: object
    encoder_card: object
    dataset: object
    reg: object
    options: EvalOptions
    out_dir: Path
    run_dir: Path
    roots: DataRoots
    encoder: object
    cache: object
    sides: list[_Side]
    design: object  # runner.classify.design.Design
    wanted: list[str]
    fingerprint: str
    reads_images: bool
    pending: object  # runner.classify.out_of_fold.PendingClassifications
    timings: dict[str, float]
    started: float


def _prepare(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path, options: EvalOptions,
             registry, later: int = 0) -> _Prepared | EvalRun:
    """Sample, embed and design one pair and send its fits (`later`: pairs that will fit after it in this batch);
    an EvalRun when nothing is to be fitted (a kept result, a task type that scores itself)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    reg = registry or load_registry()
    task = reg.get("task", task_id)
    encoder_card = reg.get("encoder", encoder_id)
    dataset = reg.get("dataset", task.data["dataset"])
    train_cards = _train_task_cards(reg, task)
    task_dir = out_dir / task.id
    run_dir = task_dir / encoder_card.id
    typed = scores_itself(task)  # a task type with its own score function: no classifier design, no analyses
    wanted = [] if typed else wanted_analyses(task, options.analyses)
    roots = DataRoots(task.spec.dataset, data_root, options.data_roots)
    settings = options.embed_settings()
    reads_images = reads_pixels(encoder_card.data)  # the metadata baseline reads no pixels: files are not verified

    # The encoder first: its adapter, custom-code permission and weight files (found and hashed by open_cache) are
    # checked before anything is sampled, so a missing file stops the run in seconds with no run folder written.
    encoder = open_encoder(encoder_card, settings)
    cache = open_cache(encoder_card, encoder, settings)

    t0 = time.perf_counter()
    cards = [(task, dataset, task_dir)] + ([(*train_cards, out_dir / train_cards[0].id)] if train_cards else [])
    manifests = []
    for side_task, side_dataset, side_dir in cards:
        with phase(_manifest_phase(side_task, roots.of(side_dataset.data), side_dir, reg.home.manifests_dir,
                                   options.resample)):
            manifests.append(manifest_for_run(side_task, side_dataset, roots.of(side_dataset.data), side_dir,
                                              reg.home.manifests_dir, resample=options.resample,
                                              defer_verify=not reads_images))
    timings["sample"] = time.perf_counter() - t0
    if not typed and (options.recompute or "transfer" in wanted or not (run_dir / "result.json").is_file()):
        _warm_fit_processes(task, encoder_card, manifests, later)

    t0 = time.perf_counter()
    augment = augmentations_needed(task, wanted)
    sides = []
    for (side_task, side_dataset, _), manifest in zip(cards, manifests):
        with phase(f"embedding {len(manifest.frame)} images of {side_task.id} with {encoder_card.id} (cached ones "
                   "are read, not computed)", live=True):
            sides.append(_Side(side_task, side_dataset, manifest,
                               embed_task(encoder, encoder_card, side_dataset.id, roots.of(side_dataset.data),
                                          manifest.frame, cache, augment, settings,
                                          side_dataset.data.get("metadata_features"))))
    for side in sides:  # past the card's budget the numbers are not the sample's
        check_budget(side.task.id, len(side.manifest.frame), side.embedded.exclusions,
                     max_excluded_fraction(side.task.data))
    timings["embed"] = time.perf_counter() - t0
    test_side, train_side = sides[0], (sides[1] if len(sides) > 1 else None)
    if typed:
        with phase(f"scoring {task.id} ({task.spec.type}) and writing the result"):
            path, result, reused = run_typed(task, encoder_card, dataset, test_side.manifest, test_side.embedded,
                                             encoder, run_dir, timings, started, device=options.device,
                                             reads_pixels=reads_images, recompute=options.recompute,
                                             made_by=cache.made_by)
        return EvalRun(path, result, _n_computed(sides), cache.hits, cache.misses, reused=reused)

    allow_missing = not reads_images  # metadata features may be missing (NaN); embeddings never
    design = (transfer_design(train_side.manifest, train_side.embedded, test_side.manifest, test_side.embedded,
                              allow_missing) if train_side else
              cross_validation_design(test_side.manifest, test_side.embedded, allow_missing))
    fingerprint = run_inputs_sha256(task, encoder_card, [(s.dataset, s.manifest, s.embedded) for s in sides], design,
                                    wanted, options.device, cache.made_by.record())
    if not options.recompute and "transfer" not in wanted:  # transfer targets are other data sets: not fingerprinted
        earlier, _ = reusable_result(run_dir, fingerprint)
        if earlier is not None:
            return EvalRun(run_dir / "result.json", earlier, _n_computed(sides), cache.hits, cache.misses, reused=True)

    t0 = time.perf_counter()
    try:
        pending = submit_many([design], task.spec.classifier)
    except RegistryError as exc:
        raise EvaluationError(f"{task.id} x {encoder_card.id}: {exc}", exit_code=1) from None
    timings["classify"] = time.perf_counter() - t0
    return _Prepared(task, encoder_card, dataset, reg, options, out_dir, run_dir, roots, encoder, cache, sides, design,
                     wanted, fingerprint, reads_images, pending, timings, started)


def _finish(prepared: _Prepared) -> EvalRun:
    """Read a prepared pair's fits, score them, run its analyses and write its result."""
    p = prepared
    task, encoder_card, dataset, reg, options, out_dir, run_dir = (p.task, p.encoder_card, p.dataset, p.reg,
                                                                   p.options, p.out_dir, p.run_dir)
    encoder, cache, sides, design, wanted, timings = p.encoder, p.cache, p.sides, p.design, p.wanted, p.timings
    roots, settings, reads_images, fingerprint, started = (p.roots, options.embed_settings(), p.reads_images,
                                                           p.fingerprint, p.started)
    test_side, train_side = sides[0], (sides[1] if len(sides) > 1 else None)
    t0 = time.perf_counter()
    try:
        with phase(f"fitting {task.spec.classifier.type} on {len(design.eval_folds)} fold(s)"):
            fitted = p.pending.collect()[0]
    except RegistryError as exc:
        raise EvaluationError(f"{task.id} x {encoder_card.id}: {exc}", exit_code=1) from None
    timings["classify"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    n_train = {fit.fold: fit.n_train for fit in fitted.folds}
    summary = summarize(fitted.predictions, task.spec.metrics, eval_folds=design.eval_folds, n_train=n_train)
    timings["metrics"] = time.perf_counter() - t0

    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    per_analysis: dict[str, float] = {}
    analyses = prediction_analyses(task, fitted.predictions, design.table, design.eval_folds, summary, wanted,
                                   per_analysis)
    analyses["classifier"] = {"trees_per_fold": [fit.n_trees for fit in fitted.folds],
                              "train_rows_per_fold": [fit.n_train_rows for fit in fitted.folds]}
    if getattr(test_side.embedded, "feature_names", None):  # the metadata baseline: which columns it used
        analyses["metadata_features"] = {"columns": test_side.embedded.feature_names}
    if train_side:  # the transfer block describes how a transfer task's numbers were made: always written
        analyses["transfer"] = transfer_block(train_side.task, train_side.dataset, train_side.manifest,
                                              train_side.embedded, task, dataset, test_side.manifest,
                                              test_side.embedded, summary)
        wanted = [name for name in wanted if name != "transfer"]
    if wanted:
        run = RunContext(task, reg, encoder, encoder_card, cache, roots, run_dir, out_dir, settings, options.resample)
        with phase(f"analyses: {', '.join(wanted)}"):
            analyses.update(run_task_analyses(wanted, run, design, fitted, per_analysis))
        timings["analyses"] = time.perf_counter() - t0
        timings.update({f"analysis.{name}": seconds for name, seconds in per_analysis.items()})
    timings["total"] = time.perf_counter() - started

    facts = RunFacts.of_run(test_side.embedded, timings, encoder.device, encoder.devices_used(),
                            cache.made_by.record())
    result = run_result(task, encoder_card, dataset, test_side.manifest, fitted.predictions,
                        test_side.embedded.exclusions, summary, analyses, facts)
    say(f"writing the result and predictions to {run_dir}")
    write_predictions(fitted.predictions, run_dir / "predictions.parquet")
    result["predictions_sha256"] = file_sha256(run_dir / "predictions.parquet")  # what submit recomputes from
    if options.save_embeddings and reads_images:  # what the registry refits from
        bundle = write_bundle(run_dir / BUNDLE_NAME, design.table["image_id"].astype(str).tolist(),
                              design.embeddings, design.augmented or {},
                              bundle_header(task, encoder_card, test_side.manifest,
                                            cache.made_by.weights_sha256))
        result["embeddings_sha256"] = file_sha256(bundle)
    result["inputs_sha256"] = fingerprint  # what a later run of the same pair compares (runner.results.reuse)
    path = write_result(result, run_dir / "result.json")
    return EvalRun(path, result, _n_computed(sides), cache.hits, cache.misses)


def _warm_fit_processes(task, encoder_card, manifests, later: int) -> None:
    """Start the fit processes now, while the embeddings load, when this pair's folds (and, in a batch, the `later`
    pairs' of about the same size) will go to them: rows x embedding width x folds, against the cells below which
    fits run here (runner.classify.fit_processes.MIN_POOL_CELLS)."""
    threads = pool_threads(task.spec.classifier)
    embedding = getattr(encoder_card.spec, "embedding", None)
    if threads < 2 or embedding is None:
        return
    transfer = len(manifests) > 1  # one fit on every row of the training task's manifest
    n_fits = 1 if transfer else len(manifests[0].meta.get("eval_folds") or [0])
    rows = len(manifests[-1].frame)
    if rows * embedding.dim * n_fits * 4 // 5 * (1 + later) >= fit_processes.MIN_POOL_CELLS:
        fit_processes.warm_up(threads)


def _manifest_phase(task, data_root: Path, task_dir: Path, manifests_dir: Path, resample: bool) -> str:
    """What the manifest step is about to do (runner.sample.run_manifest decides in the same order)."""
    if (task_dir / "manifest.json").is_file() and not resample:
        return f"checking the frozen manifest {task_dir / 'manifest.json'} against the data under {data_root}"
    if (manifests_dir / task.id).is_dir() and not resample:
        return f"checking the committed manifest {manifests_dir / task.id} against the data under {data_root}"
    sampling = task.spec.sampling
    counts = {"binary": f"{sampling.positives} positives + {sampling.negatives} negatives",
              "images": f"{sampling.images} images", "patients": f"{sampling.patients} patients"}[sampling.mode]
    check = {"decode": "each file decoded", "header": "each file's header checked"}.get(sampling.verify,
                                                                                      "files not checked")
    return f"sampling {task.id}: {counts} from {data_root}, {check} (sampling.verify: {sampling.verify})"


def _train_task_cards(reg, task) -> tuple | None:
    """(train task card, its dataset card) of a transfer task; None for a plain classification task."""
    if task.spec.type != "transfer":
        return None
    train_id = task.spec.transfer_train_task
    if not train_id:
        raise EvaluationError(f"{task.id}: a transfer task needs transfer.train_task", exit_code=2)
    train_task = reg.get("task", train_id)
    if train_task.spec.type == "transfer":
        raise EvaluationError(f"{task.id}: transfer.train_task {train_id!r} is itself a transfer task", exit_code=2)
    if train_task.spec.label.id != task.spec.label.id:
        raise EvaluationError(f"{task.id}: transfer.train_task {train_id!r} has label {train_task.spec.label.id!r}, "
                              f"this task {task.spec.label.id!r}; transfer needs the same label", exit_code=2)
    return train_task, reg.get("dataset", train_task.spec.dataset)


def _n_computed(sides: list[_Side]) -> int:
    """Images the sides' embedding step decoded and embedded in this run (the rest came from the cache)."""
    return sum(side.embedded.n_computed for side in sides)
