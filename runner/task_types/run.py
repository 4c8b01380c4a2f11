"""The scoring stage of `runner eval` for a task type with its own score function, and the result it writes.

`run_typed(...)`: the frozen manifest and its embeddings -> ScoreInputs -> the type's `score` -> the result
(`typed_result`), written with the embeddings bundle the registry regenerates it from (always: a result of these types
is filed only as the registry's own computation from its embeddings, leaderboard.filing.regenerate). The registry
builds the same ScoreInputs from the bundle (`inputs_from_bundle`) and calls the same `score` and `typed_result`.

Zero-shot tasks also embed their prompts with the encoder's text tower (`prompt_embeddings`); the bundle carries them
(one "text:<label>:<side>" array per prompt side), so the registry's regeneration needs no model either.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from runner.classify.design import cross_validation_design
from runner.data.fingerprint import file_sha256
from runner.results.bundle import NAME as BUNDLE_NAME
from runner.results.bundle import bundle_header, write_bundle
from runner.results.result import build_result, write_result
from runner.results.reuse import reusable_result, run_inputs_sha256
from runner.results.run_result import RunFacts, exclusion_entry
from runner.sample.exclusion_budget import EMBEDDING_PREFIX
from runner.task_types import ScoreInputs, TaskTypeError, task_type_of


def score_inputs(task, encoder_card, manifest, image_ids, original, augmented=None, texts=None,
                 reads_pixels: bool = True) -> ScoreInputs:
    """The type's inputs: the manifest rows that were embedded, in embedding order, with their embeddings."""
    rows = manifest.frame.set_index(manifest.frame["image_id"].astype(str)).loc[[str(i) for i in image_ids]]
    return ScoreInputs(task, encoder_card, rows.reset_index(drop=True), np.asarray(original, dtype=np.float32),
                       tuple(int(f) for f in manifest.meta["eval_folds"]), dict(augmented or {}), dict(texts or {}),
                       reads_pixels)


def prompt_embeddings(encoder, task) -> dict[str, np.ndarray]:
    """"<label>:positive" / "<label>:negative" -> the text tower's embeddings of that side's prompts (zero-shot)."""
    embed_text = getattr(encoder, "embed_text", None)
    if not callable(embed_text) or not getattr(encoder, "has_text_tower", False):
        raise TaskTypeError(f"{task.id} is a zero-shot task: encoder {encoder.id!r} declares no text tower "
                            "(encoder card `text`)")
    out = {}
    for label, prompts in task.spec.prompts.items():
        for side in ("positive", "negative"):
            out[f"{label}:{side}"] = np.asarray(embed_text(list(getattr(prompts, side))), dtype=np.float32)
    return out


def typed_result(task, encoder_card, dataset, manifest, embedding_exclusions: list[dict], scores, facts: RunFacts
                 ) -> dict:
    """The result object of a task type with its own score function (runner eval and the registry's regeneration)."""
    meta, spec = manifest.meta, task.spec
    exclusions = [exclusion_entry(e, "") for e in meta.get("exclusions", [])]
    exclusions += [exclusion_entry(e, EMBEDDING_PREFIX) for e in embedding_exclusions]
    return build_result(
        provenance="reproduced", task_card=task, encoder_card=encoder_card, created_at=facts.created_at,
        manifest={"sha256": meta["sha256"], "n_images": int(meta.get("n_images", len(manifest.frame)))},
        metrics=scores.metrics, details=scores.details,
        counts={**scores.counts, "excluded": len(exclusions), "exclusions": exclusions},
        timings_s=facts.timings_s, throughput=facts.throughput, environment=facts.environment, code=facts.code,
        seeds={"sampling": None if meta.get("seed") is None else int(meta["seed"]),
               "split": (meta.get("split") or {}).get("seed"), "classifier": spec.classifier.seed,
               "encoder": encoder_card.spec.seed, "bootstrap": spec.metrics.bootstrap_seed},
        synthetic=bool(meta.get("synthetic", dataset.spec.synthetic)))


def run_typed(task, encoder_card, dataset, manifest, embedded, encoder, run_dir: Path, timings: dict, started: float,
              *, device: str, reads_pixels: bool, recompute: bool, made_by) -> tuple[Path, dict, bool]:
    """Score one run of a typed task and write result.json and embeddings.npz into run_dir; returns (result path,
    result, reused): a result in run_dir computed from these very inputs is kept (runner.results.reuse). `made_by`:
    what made the embeddings (runner.embed.made_by: the weights' sha256 among it), recorded and fingerprinted."""
    kind = task_type_of(task)
    design = cross_validation_design(manifest, embedded, allow_missing=not reads_pixels)
    fingerprint = run_inputs_sha256(task, encoder_card, [(dataset, manifest, embedded)], design, [], device,
                                    made_by.record())
    if not recompute:
        earlier, _ = reusable_result(run_dir, fingerprint)
        if earlier is not None:
            return run_dir / "result.json", earlier, True
    t0 = time.perf_counter()
    texts = prompt_embeddings(encoder, task) if kind.needs_text else {}
    if texts:
        timings["embed_text"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    inputs = score_inputs(task, encoder_card, manifest, embedded.image_ids, embedded.original, embedded.augmented,
                          texts, reads_pixels)
    scores = kind.score(inputs)
    timings["score"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started
    facts = RunFacts.of_run(embedded, timings, encoder.device, encoder.devices_used(), made_by.record())
    result = typed_result(task, encoder_card, dataset, manifest, embedded.exclusions, scores, facts)
    run_dir.mkdir(parents=True, exist_ok=True)
    if reads_pixels:  # what the registry regenerates the result from (the metadata baseline's are the manifest's)
        header = bundle_header(task, encoder_card, manifest, made_by.weights_sha256)
        bundle = write_bundle(run_dir / BUNDLE_NAME, list(embedded.image_ids), embedded.original,
                              dict(embedded.augmented), header, texts)
        result["embeddings_sha256"] = file_sha256(bundle)
    result["inputs_sha256"] = fingerprint
    return write_result(result, run_dir / "result.json"), result, False
