"""The `cxr-core` benchmark's runtime per encoder, measured on this machine's CPU with a random-weight encoder that has a
text tower (clip-random: CLIP ViT-B/32 + its text transformer), and the GPU time estimated from it.

The NIH images are not on this machine, so the run is measured in its three parts and added up:
  1. images: the union of the image ids of every cxr-core task's committed manifest (tasks share NIH images: the
     Effusion variants draw the same 2,000), each decoded once and embedded once (the cache serves the rest);
     per-image cost measured on NIH-shaped PNGs (1024 x 1024, 8-bit, written here) through the runner's own decode and
     preprocessing (runner.data.imaging.load_image + the encoder's prepare) and the encoder's `embed`, in batches;
  2. scoring: each task type's score function on the task's real manifest (its rows, folds and labels) with
     random embeddings of the encoder's width: what runs after the embeddings are cached (for the classification task
     the probe and the metrics with both CIs);
  3. text: embedding the zero-shot task's prompts with the text tower.
GPU estimate: the embedding step divided by the measured H100 ceiling of a ViT-B-class encoder (reference/cxr-facts:
994 images/s at 518 px for ViT-B/14; a ViT-B/32 at 224 px does ~20x fewer FLOPs, so the GPU is not the bottleneck)
and the decode step spread over 16 CPU cores; scoring as measured here (it runs on the CPU in both cases).

    .venv/bin/python benchmarks/bench_cxr_core.py [--encoder clip-random] [--images 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry.benchmarks import tasks_of
from registry.cards import load_registry
from runner.sample.manifest import read_manifest
from runner.sample.store import committed_folder
from runner.task_types import task_type_of
from runner.task_types.run import score_inputs

H100_VIT_B_IMAGES_PER_S = 994  # reference/cxr-facts.md: vit_base_patch14_dinov2 at 518 px, bf16, one H100
GPU_HOST_CORES = 16


def per_image_seconds(encoder, n: int, folder: Path) -> tuple[float, float]:
    """(decode + prepare, embed) seconds per image on NIH-shaped 1024 x 1024 8-bit PNGs."""
    from PIL import Image

    from runner.data.imaging import load_image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        pixels = (rng.random((1024, 1024)) * 40 + np.linspace(60, 200, 1024)[None, :]).astype(np.uint8)
        path = folder / f"{i:05d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    start = time.perf_counter()
    prepared = [encoder.prepare(load_image(path)) for path in paths]
    decode = (time.perf_counter() - start) / n
    batch = int(encoder.card.get("batch_size") or 32)
    encoder.embed(np.stack(prepared[:2]))  # warm-up (first-call allocations)
    start = time.perf_counter()
    for i in range(0, n, batch):
        encoder.embed(np.stack(prepared[i:i + batch]))
    return decode, (time.perf_counter() - start) / n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", default="clip-random")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from runner.encoders import load_encoder

    reg = load_registry()
    encoder_card = reg.encoders[args.encoder]
    encoder = load_encoder(encoder_card.data, device="cpu")
    tasks = tasks_of("cxr-core", reg.tasks)
    manifests, images = {}, set()
    for task_id in tasks:
        manifest = read_manifest(committed_folder(reg.home.manifests_dir, task_id))
        manifests[task_id] = manifest
        images |= set(manifest.frame["image_id"].astype(str))
    with tempfile.TemporaryDirectory() as folder:
        decode, embed = per_image_seconds(encoder, args.images, Path(folder))

    rng = np.random.default_rng(0)
    scoring, texts = {}, {}
    for task_id in tasks:
        task, manifest = reg.tasks[task_id], manifests[task_id]
        x = rng.normal(size=(len(manifest.frame), encoder.dim)).astype(np.float32)
        kind = task_type_of(task)
        start = time.perf_counter()
        if kind.needs_text:
            texts = {f"{label}:{side}": encoder.embed_text(list(getattr(prompts, side)))
                     for label, prompts in task.spec.prompts.items() for side in ("positive", "negative")}
            scoring["(prompts)"] = time.perf_counter() - start
            start = time.perf_counter()
        if kind.score is not None:
            kind.score(score_inputs(task, encoder_card, manifest, manifest.frame["image_id"], x, texts=texts))
        else:  # classification: the card's probe and the metrics (both CIs), as runner eval runs them
            from types import SimpleNamespace

            from runner.classify.design import cross_validation_design
            from runner.classify.out_of_fold import classify_many
            from runner.metrics.summary import summarize

            embedded = SimpleNamespace(image_ids=list(manifest.frame["image_id"]), original=x, augmented={})
            design = cross_validation_design(manifest, embedded)
            fitted = classify_many([design], task.spec.classifier)[0]
            summarize(fitted.predictions, task.spec.metrics, eval_folds=design.eval_folds)
        scoring[task_id] = time.perf_counter() - start

    n = len(images)
    cpu = {"images": n, "decode_s_per_image": decode, "embed_s_per_image": embed,
           "embed_s": n * (decode + embed), "scoring_s": sum(scoring.values())}
    cpu["total_s"] = cpu["embed_s"] + cpu["scoring_s"]
    gpu_embed = n / H100_VIT_B_IMAGES_PER_S
    gpu_decode = n * decode / GPU_HOST_CORES
    gpu = {"embed_s": gpu_embed, "decode_s": gpu_decode, "scoring_s": cpu["scoring_s"],
           "total_s": max(gpu_embed, gpu_decode) + cpu["scoring_s"],
           "how": f"embedding at the measured H100 ViT-B ceiling ({H100_VIT_B_IMAGES_PER_S} img/s, an upper bound on "
                  f"a ViT-B/32 at 224 px), decoding over {GPU_HOST_CORES} cores at this machine's per-image decode "
                  "time (overlapped with embedding), scoring as measured on this CPU"}
    out = {"encoder": args.encoder, "tasks": tasks, "scoring_s_per_task": scoring, "cpu": cpu, "gpu_estimate": gpu,
           "machine": f"{os.cpu_count()} cores visible, load {os.getloadavg()[0]:.1f}"}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
