"""`runner bench`: how fast the embedding pipeline is, against the per-image loop users run and the encoder's ceiling.

Entry: `run_bench(BenchConfig) -> dict` (JSON-ready; `markdown_table(result)` renders it).

On the same generated images (1024² 8-bit PNGs and uncompressed 16-bit MONOCHROME1 DICOMs, `make_bench_inputs`), per format:
  (a) naive    load_image -> to_encoder_input -> embed, one image at a time (the reference notebooks' loop)
  (b) pipeline what `runner eval` runs, into a fresh cache: runner.embed.embed_manifest on a lazily built encoder;
               its plan picks the device path on CUDA (read on CPU workers, preprocess + forward on the device) and
               the CPU pool elsewhere (decode + prepare in worker processes)
  (c) forward  the encoder alone on pre-made device tensors at the pipeline's batch size
  (d) warm     the same embed_manifest call again through the now-filled cache
  stages       the fast path's reading alone (DataLoader workers) and device preprocessing alone (incl. host->device)
  memory       peak RSS of this process (and of the reader workers), GPU peak; with `rss_sizes`, peak RSS of a fresh
               process embedding N and k*N images, to show memory does not grow with N.
Ratios: b/a (pipeline over naive) and b/c (pipeline over the encoder's ceiling).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = ("png", "dicom")


@dataclass
class BenchConfig:
    encoder_card: dict  # resolved encoder card
    encoder_sha256: str
    n: int = 64
    size: int = 1024
    formats: tuple[str, ...] = FORMATS
    device: str = "auto"
    workers: int | None = None  # None: what runner eval uses (runner.embed.default_workers)
    batch_size: int | None = None
    naive_limit: int = 32  # the naive loop is measured on the first images only (a rate; it is slow)
    repeat: int = 1  # (b)-(d) embed the n files this many times over (distinct rows), so fixed start-up costs amortise
    rss_sizes: tuple[int, ...] = ()  # e.g. (256, 1024): peak RSS of a fresh process embedding that many images
    inputs: Path | None = None  # where the generated images go (default: a temporary folder)
    machine: str = ""  # how the report names the machine ("2-core CPU dev machine", "1x H100", ...)


# ---------------------------------------------------------------------------------------------- inputs


def make_bench_inputs(out_dir: Path, n: int, size: int = 1024, formats=FORMATS, workers: int | None = None) -> dict:
    """n images per format under out_dir/<format>/ (kept if already there) -> {format: manifest DataFrame}."""
    out_dir = Path(out_dir)
    jobs = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
        (out_dir / fmt).mkdir(parents=True, exist_ok=True)
        jobs += [(out_dir, fmt, i, size) for i in range(n) if not (out_dir / _rel(fmt, i)).exists()]
    if jobs:
        with ProcessPoolExecutor(max_workers=workers or min(os.cpu_count() or 1, 16)) as pool:
            list(pool.map(_write_one, jobs, chunksize=max(len(jobs) // 64, 1)))
    return {fmt: pd.DataFrame({"image_id": [f"{fmt}-{i:06d}" for i in range(n)],
                               "path": [_rel(fmt, i) for i in range(n)]}) for fmt in formats}


def _rel(fmt: str, i: int) -> str:
    return f"{fmt}/img{i:06d}.{'png' if fmt == 'png' else 'dcm'}"


def _write_one(job) -> None:
    out_dir, fmt, i, size = job
    from PIL import Image

    rng = np.random.default_rng([20261127, i])
    coarse = Image.fromarray(rng.random((16, 16), dtype=np.float32), mode="F").resize((size, size), Image.BICUBIC)
    image = np.clip(np.asarray(coarse) * 0.8 + rng.random((size, size), dtype=np.float32) * 0.2, 0, 1)
    path = out_dir / _rel(fmt, i)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "png":
        Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(tmp, format="PNG")
    else:
        _write_dicom(tmp, np.round((1.0 - image) * 32767).astype(np.uint16), i)
    os.replace(tmp, path)


def _write_dicom(path: Path, stored: np.ndarray, i: int) -> None:
    """Uncompressed 16-bit MONOCHROME1 CR with a window, like the real pydicom-data chest CR (RG1_UNCR)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["bench", str(i)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.ImageComments = "CR", f"BENCH{i:06d}", "SYNTHETIC BENCHMARK IMAGE"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 14, 0
    ds.WindowCenter, ds.WindowWidth = 15000, 30000
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


# ---------------------------------------------------------------------------------------------- measuring


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _rate(n: int, seconds: float) -> float | None:
    return round(n / seconds, 3) if n and seconds > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _peak_rss_mb() -> dict:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child (reader workers)
    return {"self_mb": round(self_kb / 1024, 1), "largest_child_mb": round(children_kb / 1024, 1)}


def measure_naive(encoder, paths: list[str]) -> dict:
    """(a) one image at a time, everything on the CPU until the forward pass."""
    from runner.imaging import load_image

    start = time.perf_counter()
    for path in paths:
        encoder.embed(encoder.prepare(load_image(path))[None])
    seconds = time.perf_counter() - start
    return {"images": len(paths), "seconds": round(seconds, 4), "images_per_s": _rate(len(paths), seconds)}


def measure_forward(embedder, n: int) -> dict:
    """(c) the encoder alone on pre-made device tensors, in batches of the pipeline's size, after one warm-up batch."""
    import torch

    spec = embedder.preprocess.spec
    h, w = spec.size or (embedder.encoder.contract.get("size", 224),) * 2
    batch = min(embedder.batch_size, n)
    x = torch.randn((batch, spec.channels, h, w), device=embedder.device)
    embedder.forward(x).cpu()  # warm-up: kernels chosen, memory allocated
    _sync(embedder.device.type)
    repeats = max(1, -(-n // batch))
    start = time.perf_counter()
    for _ in range(repeats):
        out = embedder.forward(x)
    out.cpu()
    _sync(embedder.device.type)
    seconds = time.perf_counter() - start
    return {"images": repeats * batch, "batch": batch, "seconds": round(seconds, 4),
            "images_per_s": _rate(repeats * batch, seconds)}


def measure_stages(embedder, paths: list[str], workers: int) -> dict:
    """Reading alone (worker processes, wall clock and CPU per image) and device preprocessing alone."""
    from runner.fastpath import raw_batches

    pin = embedder.device.type == "cuda"
    start = time.perf_counter()
    read_cpu, first = 0.0, None
    for batch in raw_batches(paths, embedder.batch_size, workers, pin):
        read_cpu += batch.read_s
        first = first or batch
    read_s = time.perf_counter() - start
    stages = {"read": {"images_per_s": _rate(len(paths), read_s), "cpu_ms_per_image": round(1000 * read_cpu / len(paths), 3),
                       "workers": workers}}
    if first is not None and not first.failures:
        embedder.preprocess.from_groups(first.groups, first.size)  # warm-up
        _sync(embedder.device.type)
        repeats = max(1, -(-len(paths) // first.size))
        start = time.perf_counter()
        for _ in range(repeats):
            x = embedder.preprocess.from_groups(first.groups, first.size)
        x.sum().item()
        _sync(embedder.device.type)
        seconds = time.perf_counter() - start
        stages["preprocess"] = {"images_per_s": _rate(repeats * first.size, seconds), "includes": "host->device copy"}
    return stages


def measure_pipeline(manifest, data_root: Path, encoder, sha256: str, cache_root: Path, workers: int, batch_size):
    """(b) what `runner eval` runs: runner.embed.embed_manifest with pipeline auto on a lazily built encoder (the
    backend is runner.embed.plan_embedding's choice, the same call eval makes), into an empty cache; then (d) the same
    call through the filled cache."""
    from runner.cache import EmbeddingCache
    from runner.embed import embed_manifest, plan_embedding
    from runner.encoders import adapter_class

    name = plan_embedding(adapter_class(encoder), str(encoder.device)).backend

    def embed(*args, **kwargs):
        return embed_manifest(*args, pipeline="auto", **kwargs)

    runs = []
    for _ in range(2):  # cold, warm: a new cache object each time, as a second `runner eval` process would have
        cache = EmbeddingCache(sha256, encoder.contract, root=cache_root)
        start = time.perf_counter()
        emb = embed(manifest, data_root, "bench", encoder, cache, workers=workers, batch_size=batch_size, progress=False)
        _sync(str(encoder.device))
        runs.append((time.perf_counter() - start, emb))
    (cold_s, cold), (warm_s, warm) = runs
    if cold.exclusions:
        raise RuntimeError(f"benchmark images were excluded: {cold.exclusions[:3]}")
    same = bool(np.array_equal(cold.original, warm.original))
    return (
        {"pipeline": name, "images": len(cold.image_ids), "seconds": round(cold_s, 4),
         "images_per_s": _rate(len(cold.image_ids), cold_s)},
        {"seconds": round(warm_s, 5), "speedup": _ratio(cold_s, warm_s), "recomputed": warm.n_computed,
         "identical": same},
    )


def run_bench(cfg: BenchConfig) -> dict:
    """Run every measurement for each format; JSON-ready dict (no NaN: a rate that cannot be computed is null)."""
    import torch

    from runner.embed import supports_device_preprocessing
    from runner.encoders import adapter_class, load_encoder, resolve_device
    from runner.fastpath import DeviceEmbedder

    device = resolve_device(cfg.device)
    encoder = load_encoder(cfg.encoder_card, device=device)
    # The pipeline measurement gets its own encoder built as `runner eval` builds it (lazily), so it takes eval's path.
    eval_encoder = load_encoder(cfg.encoder_card, device=device, lazy=True)
    if not supports_device_preprocessing(adapter_class(encoder)):
        raise ValueError(f"encoder {encoder.id!r} prepares its own inputs ({type(encoder).__name__}.prepare); "
                         "the fast pipeline does not apply to it")
    embedder = DeviceEmbedder(encoder, cfg.batch_size)
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        inputs = Path(cfg.inputs) if cfg.inputs else Path(tmp) / "inputs"
        manifests = make_bench_inputs(inputs, cfg.n, cfg.size, cfg.formats)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        forward = measure_forward(embedder, cfg.n * cfg.repeat)
        results = {}
        for fmt, manifest in manifests.items():
            paths = [str(inputs / p) for p in manifest["path"]]
            pipeline, warm = measure_pipeline(_repeated(manifest, cfg.repeat), inputs, eval_encoder, cfg.encoder_sha256,
                                              Path(tmp) / f"cache-{fmt}", cfg.workers, embedder.batch_size)
            naive = measure_naive(encoder, paths[: cfg.naive_limit])
            results[fmt] = {
                "naive": naive, "pipeline": pipeline, "forward": forward, "warm_cache": warm,
                "stages": measure_stages(embedder, paths, cfg.workers),
                "ratios": {"pipeline_over_naive": _ratio(pipeline["images_per_s"], naive["images_per_s"]),
                           "pipeline_over_forward": _ratio(pipeline["images_per_s"], forward["images_per_s"])},
            }
            if cfg.rss_sizes:
                results[fmt]["rss_by_n"] = [rss_in_fresh_process(cfg, inputs, manifest, k) for k in cfg.rss_sizes]
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": cfg.machine or platform.node(),
        "environment": _environment(device),
        "encoder": {"id": encoder.id, "sha256": cfg.encoder_sha256, "contract": encoder.contract,
                    "precision": encoder.card["precision"]},
        "device": device, "n": cfg.n, "repeat": cfg.repeat, "size": cfg.size, "workers": cfg.workers, "batch_size": embedder.batch_size,
        "results": results,
        "memory": {"peak_rss": _peak_rss_mb(),
                   "gpu_peak_mb": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                                   if device.startswith("cuda") else None)},
    }


def _repeated(manifest: pd.DataFrame, repeat: int) -> pd.DataFrame:
    """The manifest's files listed `repeat` times under distinct image ids (each row is read and embedded)."""
    if repeat <= 1:
        return manifest
    return pd.DataFrame({"image_id": [f"{i}~{r}" for r in range(repeat) for i in manifest["image_id"]],
                         "path": [p for _ in range(repeat) for p in manifest["path"]]})


def _environment(device: str) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "platform": platform.platform()}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name()
    return env


# ---------------------------------------------------------------------------------------------- memory vs N


def rss_in_fresh_process(cfg: BenchConfig, inputs: Path, manifest: pd.DataFrame, n: int) -> dict:
    """Peak RSS of a new Python process that embeds n images (the inputs repeated) through the fast pipeline.

    ru_maxrss only ever grows, so each size needs its own process."""
    rows = [manifest["path"][i % len(manifest)] for i in range(n)]
    job = {"card": cfg.encoder_card, "sha256": cfg.encoder_sha256, "device": cfg.device, "workers": cfg.workers,
           "batch_size": cfg.batch_size, "inputs": str(inputs), "paths": rows}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(job, fh)
    try:
        done = subprocess.run([sys.executable, "-c", "import sys, runner.bench as b; b._rss_child(sys.argv[1])", fh.name],
                              capture_output=True, text=True, check=False)
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe for n={n} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rss_child(job_file: str) -> None:
    from runner.cache import EmbeddingCache
    from runner.embed import embed_manifest
    from runner.encoders import load_encoder

    job = json.loads(Path(job_file).read_text())
    encoder = load_encoder(job["card"], device=job["device"])
    # Repeated paths, so each row gets its own (distinct) image id; the cache goes to a throw-away folder.
    manifest = pd.DataFrame({"image_id": [f"r{i}" for i in range(len(job["paths"]))], "path": job["paths"]})
    before = _peak_rss_mb()["self_mb"]
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(job["sha256"], encoder.contract, root=Path(tmp))
        emb = embed_manifest(manifest, Path(job["inputs"]), "bench-rss", encoder, cache, pipeline="fast",
                             workers=job["workers"], batch_size=job["batch_size"], progress=False)
    print(json.dumps({"n": len(job["paths"]), "embedded": len(emb.image_ids), "rss_before_mb": before,
                      **_peak_rss_mb()}))


# ---------------------------------------------------------------------------------------------- report


def markdown_table(result: dict) -> str:
    """One row per format: the three rates, the ratios, warm-cache speedup, stages and memory."""
    enc, mem = result["encoder"]["id"], result["memory"]
    lines = [
        (f"Machine: {result['machine']} ({result['device']}); encoder `{enc}`; N = {result['n']} images of "
         f"{result['size']}² (embedded {result.get('repeat', 1)}× over in b-d); batch {result['batch_size']}; {result['workers']} reader workers; {result['created_at']}."),
        "",
        ("| format | (a) naive img/s | (b) pipeline img/s | (c) forward img/s | b/a | b/c | read img/s | "
         "preprocess img/s | warm-cache speedup | peak RSS by images embedded (MB) |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for fmt, r in result["results"].items():
        rss = " → ".join(f"{p['self_mb']:.0f} (n={p['n']})" for p in r.get("rss_by_n", [])) or "–"
        fmt = f"{fmt} ({r['pipeline']['pipeline']} pipeline)"
        lines.append(
            f"| {fmt} | {_fmt(r['naive']['images_per_s'])} | {_fmt(r['pipeline']['images_per_s'])} | "
            f"{_fmt(r['forward']['images_per_s'])} | {_fmt(r['ratios']['pipeline_over_naive'])} | "
            f"{_fmt(r['ratios']['pipeline_over_forward'])} | {_fmt(r['stages']['read']['images_per_s'])} | "
            f"{_fmt(r['stages'].get('preprocess', {}).get('images_per_s'))} | {_fmt(r['warm_cache']['speedup'])}× | {rss} |"
        )
    gpu = f", GPU peak {mem['gpu_peak_mb']} MB" if mem.get("gpu_peak_mb") is not None else ""
    lines += ["", (f"Peak RSS of the benchmark process {mem['peak_rss']['self_mb']} MB "
                   f"(largest reader worker {mem['peak_rss']['largest_child_mb']} MB){gpu}.")]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
