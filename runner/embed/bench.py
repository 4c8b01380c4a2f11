"""`runner bench`: how fast `runner eval`'s embedding stage is, against the per-image loop users run and the encoder's
ceiling, measured honestly: eval's own call and defaults, realistic files, read from disk rather than the page cache.

Entry: `run_bench(BenchConfig) -> dict` (JSON-ready; `markdown_table(result)` renders it).

Inputs (`make_bench_inputs`): 1024² 8-bit greyscale PNGs (like NIH ChestX-ray14) and uncompressed 16-bit-allocated,
15-bit-stored MONOCHROME1 DICOMs with a window at 1955 x 1841 (rows x columns), the geometry of the real pydicom-data
chest CR RG1_UNCR (3.6 Mpx). Both sizes are options so tests can use tiny images.

Per format, in this order (every pass marked "uncached" starts after `evict_from_page_cache` on its files):
  (a) naive    uncached: load_image -> prepare -> embed, one image at a time (the reference notebooks' loop)
  (b) pipeline uncached: what `runner eval` runs, into a fresh cache: runner.embed.embedding.embed_manifest on a lazily built
               encoder, with eval's defaults (workers from runner.embed.plan.default_workers unless given, the card's own
               precision); its plan picks the device path on CUDA and the CPU pool elsewhere (and for adapters that
               prepare their own inputs, such as CXR Foundation)
  (c) forward  the encoder alone on pre-made device tensors at the pipeline's batch size (device-path encoders only)
  (d) warm     the same embed_manifest call again through the now-filled cache (stage only, inside this process)
  whole        a fresh Python process doing what eval's embedding stage does (import, build lazily, embed into a
               cache, exit): wall clock, interpreter start-up included, with an empty cache (cold, uncached files)
               and then the filled one (warm); reported beside (d)'s stage-only speedup
  stages       uncached: the fast path's reading alone (reader workers); device preprocessing alone (device path only)
  memory       peak RSS of this process (and of the reader workers), GPU peak; with `rss_sizes`, peak RSS of a fresh
               process embedding N and k*N images, to show memory does not grow with N.
Ratios: b/a (pipeline over naive), b/c (pipeline over the encoder's ceiling), whole-command cold/warm.
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
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from runner.data.imaging import load_image
from runner.embed.cache import EmbeddingCache
from runner.embed.device.embedder import DeviceEmbedder
from runner.embed.embedding import embed_manifest
from runner.embed.plan import default_workers, plan_embedding, supports_device_preprocessing
from runner.encoders import adapter_class, load_encoder, resolve_device
from runner.runtime.signals import start_owned_worker

FORMATS = ("png", "dicom")
DICOM_SIZE = (1955, 1841)  # rows x columns of RG1_UNCR, the real chest CR in pydicom-data
DROPPED_BELOW = 0.05  # fraction of pages still resident under which the page cache counts as dropped


@dataclass
class BenchConfig:
    encoder_card: dict  # resolved encoder card
    encoder_sha256: str
    n: int = 64
    size: int = 1024  # PNG side
    dicom_size: tuple[int, int] = DICOM_SIZE  # DICOM rows x columns
    formats: tuple[str, ...] = FORMATS
    device: str = "auto"
    workers: int | None = None  # None: what runner eval uses (runner.embed.plan.default_workers)
    batch_size: int | None = None
    naive_limit: int = 32  # the naive loop is measured on the first images only (a rate; it is slow)
    rss_sizes: tuple[int, ...] = ()  # e.g. (256, 1024): peak RSS of a fresh process embedding that many images
    whole_command: bool = True  # time a fresh process cold and warm (two interpreter start-ups per format)
    drop_cache: bool = True  # evict the inputs from the page cache before each uncached pass
    weights_dir: Path | None = None  # as runner eval's --weights-dir
    inputs: Path | None = None  # where the generated images go (default: a temporary folder)
    machine: str = ""  # how the report names the machine ("2-core CPU dev machine", "1x H100", ...)


# ---------------------------------------------------------------------------------------------- inputs


def make_bench_inputs(out_dir: Path, n: int, size: int = 1024, formats=FORMATS, workers: int | None = None,
                      dicom_size: tuple[int, int] = DICOM_SIZE) -> dict:
    """n images per format under out_dir/<format>-<rows>x<cols>/ (kept if already there) -> {format: manifest}."""
    out_dir = Path(out_dir)
    shapes = {"png": (size, size), "dicom": tuple(dicom_size)}
    jobs = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
        (out_dir / _folder(fmt, shapes[fmt])).mkdir(parents=True, exist_ok=True)
        jobs += [(out_dir, fmt, i, shapes[fmt]) for i in range(n)
                 if not (out_dir / _rel(fmt, i, shapes[fmt])).exists()]
    if jobs:
        with ProcessPoolExecutor(max_workers=workers or min(os.cpu_count() or 1, 16), initializer=start_owned_worker,
                                 initargs=(os.getpid(),)) as pool:
            list(pool.map(_write_one, jobs, chunksize=max(len(jobs) // 64, 1)))
    return {fmt: pd.DataFrame({"image_id": [f"{fmt}-{i:06d}" for i in range(n)],
                               "path": [_rel(fmt, i, shapes[fmt]) for i in range(n)]}) for fmt in formats}


def _folder(fmt: str, shape: tuple[int, int]) -> str:
    # The geometry is in the folder name, so a reused --inputs folder never serves images of another size.
    return f"{fmt}-{shape[0]}x{shape[1]}"


def _rel(fmt: str, i: int, shape: tuple[int, int]) -> str:
    return f"{_folder(fmt, shape)}/img{i:06d}.{'png' if fmt == 'png' else 'dcm'}"


def _write_one(job) -> None:
    out_dir, fmt, i, (rows, cols) = job
    from PIL import Image

    rng = np.random.default_rng([20261127, i])
    coarse = Image.fromarray(rng.random((16, 16), dtype=np.float32), mode="F").resize((cols, rows), Image.BICUBIC)
    image = np.clip(np.asarray(coarse) * 0.8 + rng.random((rows, cols), dtype=np.float32) * 0.2, 0, 1)
    path = out_dir / _rel(fmt, i, (rows, cols))
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "png":
        Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(tmp, format="PNG")
    else:
        _write_dicom(tmp, np.round((1.0 - image) * 32767).astype(np.uint16), i)
    os.replace(tmp, path)


def _write_dicom(path: Path, stored: np.ndarray, i: int) -> None:
    """Uncompressed MONOCHROME1 CR, 16 bits allocated, 15 stored, with a window: the layout of RG1_UNCR."""
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


# ---------------------------------------------------------------------------------------------- page cache


def evict_from_page_cache(paths: list[str]) -> dict:
    """Ask the kernel to drop the files' cached pages, then check how many are still resident.

    fsync first: posix_fadvise(DONTNEED) drops clean pages only (no root needed), and freshly written files are dirty.
    Returns {"dropped": bool, "resident_after_pct": float | None, "note": one line for the report}."""
    if not hasattr(os, "posix_fadvise"):
        return {"dropped": False, "resident_after_pct": None,
                "note": "could not drop: os.posix_fadvise is not available on this platform"}
    try:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    except OSError as exc:
        return {"dropped": False, "resident_after_pct": None, "note": f"could not drop: {exc}"}
    try:
        resident = resident_fraction(paths)
    except (OSError, AttributeError) as exc:  # AttributeError: no mincore in this libc
        return {"dropped": True, "resident_after_pct": None,
                "note": f"dropped (posix_fadvise DONTNEED; not verified: {exc})"}
    if resident is None:
        return {"dropped": False, "resident_after_pct": None, "note": "could not drop: the files are empty"}
    pct = round(100 * resident, 1)
    if resident < DROPPED_BELOW:
        return {"dropped": True, "resident_after_pct": pct, "note": f"dropped (verified {pct}% resident after)"}
    return {"dropped": False, "resident_after_pct": pct,
            "note": f"could not drop: {pct}% still resident after posix_fadvise DONTNEED (tmpfs or a filesystem "
                    "that ignores it?)"}


def resident_fraction(paths: list[str]) -> float | None:
    """Fraction of the files' pages in the page cache (mincore(2) on a read-only mapping; mapping reads nothing)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    failed = ctypes.c_void_p(-1).value  # MAP_FAILED
    resident = total = 0
    for path in paths:
        size = os.path.getsize(path)
        if not size:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr is None or addr == failed:
                raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
            try:
                vec = ctypes.create_string_buffer(-(-size // mmap.PAGESIZE))
                if libc.mincore(addr, size, vec) != 0:
                    raise OSError(ctypes.get_errno(), "mincore failed")
                resident += int((np.frombuffer(vec.raw, np.uint8) & 1).sum())
                total += len(vec.raw)
            finally:
                libc.munmap(addr, size)
        finally:
            os.close(fd)
    return resident / total if total else None


def _uncached(cfg: BenchConfig, paths: list[str], notes: dict, name: str) -> None:
    """Evict before the pass `name` and keep the outcome in `notes`; --keep-page-cache says so instead."""
    notes[name] = (evict_from_page_cache(paths) if cfg.drop_cache else
                   {"dropped": False, "resident_after_pct": None, "note": "not dropped (--keep-page-cache)"})


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
    start = time.perf_counter()
    read_cpu, first = 0.0, None
    for batch in embedder.read(paths, workers):  # the reads eval makes
        read_cpu += batch.read_s
        first = first or batch.detached()  # a staged batch's slot is reused a few batches later
    read_s = time.perf_counter() - start
    stages = {"read": {"images_per_s": _rate(len(paths), read_s),
                       "cpu_ms_per_image": round(1000 * read_cpu / len(paths), 3), "workers": workers}}
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


def measure_pipeline(manifest, data_root: Path, encoder, sha256: str, cache_root: Path, workers: int | None,
                     batch_size, before_cold=None):
    """(b) what `runner eval` runs: runner.embed.embedding.embed_manifest with backend auto on a lazily built encoder (the
    backend is runner.embed.plan.plan_embedding's choice, the same call eval makes), into an empty cache; then (d) the same
    call through the filled cache. `before_cold` runs untimed just before (b) (the page-cache eviction)."""

    name = plan_embedding(adapter_class(encoder), str(encoder.device)).backend

    def embed(*args, **kwargs):
        return embed_manifest(*args, backend="auto", **kwargs)

    runs = []
    for step in ("cold", "warm"):  # a new cache object each time, as a second `runner eval` process would have
        cache = EmbeddingCache(sha256, encoder.contract, root=cache_root)
        if step == "cold" and before_cold is not None:
            before_cold()
        start = time.perf_counter()
        emb = embed(manifest, data_root, "bench", encoder, cache, workers=workers, batch_size=batch_size, progress=False)
        _sync(str(encoder.device))
        runs.append((time.perf_counter() - start, emb))
    (cold_s, cold), (warm_s, warm) = runs
    if cold.exclusions:
        raise RuntimeError(f"benchmark images were excluded: {cold.exclusions[:3]}")
    same = bool(np.array_equal(cold.original, warm.original))
    return (
        {"backend": name, "images": len(cold.image_ids), "seconds": round(cold_s, 4),
         "images_per_s": _rate(len(cold.image_ids), cold_s)},
        {"seconds": round(warm_s, 5), "speedup": _ratio(cold_s, warm_s), "recomputed": warm.n_computed,
         "identical": same, "scope": "embedding stage only, inside this process"},
    )


def measure_whole_command(cfg: BenchConfig, inputs: Path, manifest: pd.DataFrame, cache_root: Path, workers: int,
                          batch_size: int, evict) -> dict:
    """A fresh process doing eval's embedding stage, cold (empty cache, files evicted) then warm (filled cache):
    wall clock from exec to exit, so interpreter start-up, imports and the lazy build count."""
    job = _child_job(cfg, inputs, list(manifest["image_id"]), list(manifest["path"]), workers, batch_size, cache_root)
    runs = {}
    evict()  # before the cold run; the warm one follows it directly
    for step in ("cold", "warm"):
        start = time.perf_counter()
        out = _run_child(job, f"whole-command {step} run")
        runs[step] = (time.perf_counter() - start, out)
    (cold_s, cold), (warm_s, warm) = runs["cold"], runs["warm"]
    return {"cold_s": round(cold_s, 3), "warm_s": round(warm_s, 3), "ratio": _ratio(cold_s, warm_s),
            "computed": [cold["computed"], warm["computed"]],
            "includes": "python start-up, import runner.cli.main, lazy encoder build, embed_manifest into a cache, exit"}


def run_bench(cfg: BenchConfig) -> dict:
    """Run every measurement for each format; JSON-ready dict (no NaN: a rate that cannot be computed is null)."""
    import torch


    device = resolve_device(cfg.device)
    # Built as `runner eval` builds it (lazily) for (b), (d); the naive loop and (c) need a model in this process.
    eval_encoder = load_encoder(cfg.encoder_card, device=device, weights_dir=cfg.weights_dir, lazy=True)
    encoder = load_encoder(cfg.encoder_card, device=device, weights_dir=cfg.weights_dir)
    plan = plan_embedding(adapter_class(eval_encoder), device)
    workers = default_workers(plan) if cfg.workers is None else cfg.workers  # resolved once, as eval does
    on_device = supports_device_preprocessing(adapter_class(eval_encoder))
    embedder = None
    if on_device:

        embedder = DeviceEmbedder(encoder, cfg.batch_size)
    batch_size = int(cfg.batch_size or encoder.card["batch_size"])  # DeviceEmbedder's own choice, too
    not_applicable = (None if on_device else
                      f"{type(encoder).__name__} prepares its own inputs (its prepare), so there is no device "
                      "preprocessing or tensor forward pass to time apart; (b) runs the CPU pool")
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        inputs = Path(cfg.inputs) if cfg.inputs else Path(tmp) / "inputs"
        manifests = make_bench_inputs(inputs, cfg.n, cfg.size, cfg.formats, dicom_size=cfg.dicom_size)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        forward = measure_forward(embedder, cfg.n) if embedder else None
        paths_of = {fmt: [str(inputs / p) for p in manifest["path"]] for fmt, manifest in manifests.items()}
        results = {}
        for fmt, manifest in manifests.items():
            paths = paths_of[fmt]
            page_cache: dict = {}
            _uncached(cfg, paths[: cfg.naive_limit], page_cache, "naive")
            naive = measure_naive(encoder, paths[: cfg.naive_limit])
            pipeline, warm = measure_pipeline(manifest, inputs, eval_encoder, cfg.encoder_sha256,
                                              Path(tmp) / f"cache-{fmt}", workers, batch_size,
                                              before_cold=partial(_uncached, cfg, paths, page_cache, "pipeline"))
            r = {"naive": naive, "pipeline": pipeline, "forward": forward, "warm_cache": warm, "stages": None,
                 "not_applicable": not_applicable,
                 "ratios": {"pipeline_over_naive": _ratio(pipeline["images_per_s"], naive["images_per_s"]),
                            "pipeline_over_forward": _ratio(pipeline["images_per_s"],
                                                            forward and forward["images_per_s"])}}
            if embedder:
                _uncached(cfg, paths, page_cache, "read")
                r["stages"] = measure_stages(embedder, paths, workers)
            results[fmt] = r | {"page_cache": page_cache}
        # Before any fresh process runs: ru_maxrss of children would count those too, not only the reader workers.
        peak_rss = _peak_rss_mb()
        for fmt, manifest in manifests.items():  # the fresh-process measurements
            paths = paths_of[fmt]
            if cfg.whole_command:
                results[fmt]["whole_command"] = measure_whole_command(
                    cfg, inputs, manifest, Path(tmp) / f"cache-whole-{fmt}", workers, batch_size,
                    partial(_uncached, cfg, paths, results[fmt]["page_cache"], "whole_command_cold"))
            if cfg.rss_sizes:
                results[fmt]["rss_by_n"] = [rss_in_fresh_process(cfg, inputs, manifest, k, workers, batch_size)
                                            for k in cfg.rss_sizes]
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": cfg.machine or platform.node(),
        "environment": _environment(device),
        "encoder": {"id": encoder.id, "sha256": cfg.encoder_sha256, "contract": encoder.contract,
                    "precision": encoder.card["precision"], "runs_as": _runs_as(encoder.card["precision"], device)},
        "device": device, "n": cfg.n, "size": cfg.size, "dicom_size": list(cfg.dicom_size),
        "inputs": {"png": f"{cfg.size}x{cfg.size} 8-bit greyscale PNG",
                   "dicom": (f"{cfg.dicom_size[0]}x{cfg.dicom_size[1]} uncompressed MONOCHROME1, 16 bits allocated, "
                             "15 stored, windowed")},
        "pipeline": {"backend": plan.backend, "reason": plan.reason},
        "workers": workers, "workers_from": "runner.embed.plan.default_workers" if cfg.workers is None else "--workers",
        "batch_size": batch_size,
        "results": results,
        "memory": {"peak_rss": peak_rss,
                   "gpu_peak_mb": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                                   if device.startswith("cuda") else None)},
    }


def _runs_as(precision: dict, device: str) -> str:
    """What the card's precision block means here: the adapters and the fast path autocast to bf16 on CUDA only."""
    cuda = device.startswith("cuda")
    parts = ["bf16 autocast" if precision.get("bf16") and cuda else "fp32"]
    if precision.get("channels_last") and cuda:
        parts.append("channels_last")
    return " + ".join(parts)


def _environment(device: str) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "platform": platform.platform()}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name()
    return env


# ---------------------------------------------------------------------------------------------- fresh processes


def rss_in_fresh_process(cfg: BenchConfig, inputs: Path, manifest: pd.DataFrame, n: int, workers: int,
                         batch_size: int) -> dict:
    """Peak RSS of a new Python process that embeds n images (the inputs repeated) the way eval does.

    ru_maxrss only ever grows, so each size needs its own process."""
    rows = [manifest["path"][i % len(manifest)] for i in range(n)]
    with tempfile.TemporaryDirectory() as cache_root:  # throw-away cache
        job = _child_job(cfg, inputs, [f"r{i}" for i in range(n)], rows, workers, batch_size, Path(cache_root))
        out = _run_child(job, f"memory probe for n={n}")
    return {key: out[key] for key in ("n", "embedded", "rss_before_mb", "self_mb", "largest_child_mb")}


def _child_job(cfg: BenchConfig, inputs: Path, ids: list[str], paths: list[str], workers: int, batch_size: int,
               cache_root: Path) -> dict:
    return {"card": cfg.encoder_card, "sha256": cfg.encoder_sha256, "device": cfg.device, "workers": workers,
            "batch_size": batch_size, "inputs": str(inputs), "ids": ids, "paths": paths, "cache": str(cache_root),
            "weights_dir": str(cfg.weights_dir) if cfg.weights_dir else None}


def _run_child(job: dict, what: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(job, fh)
    try:
        # The child imports the CLI first: the import cost a `runner eval` process pays before it embeds anything
        # (in the command line, so this module does not depend on the CLI).
        done = subprocess.run([sys.executable, "-c", "import sys, runner.cli.main, runner.embed.bench as b; b._embed_child(sys.argv[1])",
                               fh.name], capture_output=True, text=True, check=False)
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _embed_child(job_file: str) -> None:
    """What `runner eval`'s embedding stage does, in a fresh process (started by _run_child, which imports the CLI
    first): lazy build, embed into the cache."""

    job = json.loads(Path(job_file).read_text())
    weights = Path(job["weights_dir"]) if job["weights_dir"] else None
    encoder = load_encoder(job["card"], device=job["device"], weights_dir=weights, lazy=True)
    manifest = pd.DataFrame({"image_id": job["ids"], "path": job["paths"]})
    before = _peak_rss_mb()["self_mb"]
    cache = EmbeddingCache(job["sha256"], encoder.contract, root=Path(job["cache"]))
    emb = embed_manifest(manifest, Path(job["inputs"]), "bench", encoder, cache, backend="auto",
                         workers=job["workers"], batch_size=job["batch_size"], progress=False)
    print(json.dumps({"n": len(job["paths"]), "embedded": len(emb.image_ids), "computed": emb.n_computed,
                      "rss_before_mb": before, **_peak_rss_mb()}))


# ---------------------------------------------------------------------------------------------- report


def markdown_table(result: dict) -> str:
    """One row per format: rates, ratios, warm-cache speedups (stage and whole command), stages, memory; then notes."""
    enc, mem = result["encoder"]["id"], result["memory"]
    rows, cols = result["dicom_size"]
    lines = [
        (f"Machine: {result['machine']} ({result['device']}); encoder `{enc}` ({result['encoder']['runs_as']}, the card's precision); "
         f"N = {result['n']} files per format: {result['size']}² 8-bit PNG, {rows}x{cols} 15-bit DICOM; "
         f"batch {result['batch_size']}; {result['workers']} decode workers ({result['workers_from']}); "
         f"pipeline {result['pipeline']['backend']}; {result['created_at']}."),
        "",
        ("| format | (a) naive img/s | (b) pipeline img/s | (c) forward img/s | b/a | b/c | read img/s | "
         "preprocess img/s | warm-cache speedup, stage | whole command cold / warm (s) | whole command cold/warm | "
         "peak RSS by images embedded (MB) |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    notes = []
    for fmt, r in result["results"].items():
        rss = " → ".join(f"{p['self_mb']:.0f} (n={p['n']})" for p in r.get("rss_by_n", [])) or "–"
        stages = r["stages"] or {}
        whole = r.get("whole_command") or {}
        lines.append(
            f"| {fmt} ({r['pipeline']['backend']} backend) | {_fmt(r['naive']['images_per_s'])} | "
            f"{_fmt(r['pipeline']['images_per_s'])} | {_fmt((r['forward'] or {}).get('images_per_s'))} | "
            f"{_fmt(r['ratios']['pipeline_over_naive'])} | {_fmt(r['ratios']['pipeline_over_forward'])} | "
            f"{_fmt(stages.get('read', {}).get('images_per_s'))} | "
            f"{_fmt(stages.get('preprocess', {}).get('images_per_s'))} | {_fmt(r['warm_cache']['speedup'], '×')} | "
            f"{_fmt(whole.get('cold_s'))} / {_fmt(whole.get('warm_s'))} | {_fmt(whole.get('ratio'), '×')} | {rss} |"
        )
        cache_notes = sorted({n["note"] for n in r["page_cache"].values()})
        notes.append(f"Page cache ({fmt}), before each uncached pass ({', '.join(r['page_cache'])}): "
                     f"{'; '.join(cache_notes) or 'not touched'}.")
    first = next(iter(result["results"].values()), {})
    if first.get("not_applicable"):
        notes.append(f"(c), read and preprocess not applicable: {first['not_applicable']}.")
    gpu = f", GPU peak {mem['gpu_peak_mb']} MB" if mem.get("gpu_peak_mb") is not None else ""
    notes.append(f"Peak RSS of the benchmark process {mem['peak_rss']['self_mb']} MB "
                 f"(largest reader worker {mem['peak_rss']['largest_child_mb']} MB; before any fresh process ran){gpu}.")
    return "\n".join(lines + [""] + notes) + "\n"


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "–"
    return (f"{value:,.1f}" if value < 1000 else f"{value:,.0f}") + unit
