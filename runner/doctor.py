"""`runner doctor`: what this machine has for a run, and what an asked-for run is missing.

Entry: `diagnose(registry, DoctorRequest) -> dict`, the report (`runner doctor --json` prints it as it is, the table
view is made from it). Sections: python and packages; torch (its version, the CUDA and cuDNN it was built for, the
GPUs it sees with their free memory); tensorflow (the same, checked in a child process started the way TensorFlow
encoders run, runner.encoders.isolation, because only such a process has TensorFlow's CUDA-12 libraries on its
LD_LIBRARY_PATH); nvidia-smi (driver, every GPU's free memory, without starting a CUDA context); every encoder card
(the packages its adapter needs, where its weights are, whether their pinned sizes and sha256s match); every dataset
card's data root (its environment variable, the folder, which of the card's tables and image folders it holds); the
embedding cache and weights folders with their free space.

`problems` lists what the asked-for run (`--encoder`, `--task`, `--dataset`, `--device`) needs and does not have; the
command exits 1 when there is any. Fast on purpose: TensorFlow is imported only when installed (and not skipped),
in its child, and its import time is reported; sha256s are computed only for the asked-for encoders (or all with
`--hashes`), sizes always.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from registry.errors import RegistryError
from registry.hashing import installed_version
from runner.data.tables import DataError, locate_table
from runner.embed.cache import default_cache_dir
from runner.encoders.base import EncoderError
from runner.encoders.isolation import adapter_of, call_in_child, child_environment
from runner.encoders.tf_runtime import build_info, has_tensorflow_text, import_tensorflow, tf_cuda_dir
from runner.encoders.weights import find_local, verify_pins

PACKAGES = ("cxr-embedding-registry", "numpy", "pandas", "scikit-learn", "lightgbm", "pydicom", "pillow", "torch",
            "torchvision", "timm", "transformers", "open_clip_torch", "torchxrayvision", "medimageinsights",
            "tensorflow", "tensorflow-text", "huggingface_hub", "safetensors", "ray", "umap-learn", "jsonschema")


@dataclass
class DoctorRequest:
    """What the user asked about: the run whose needs become `problems`."""

    encoders: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)  # --dataset, and the data sets of --task
    device: str = "auto"
    data_root: Path | None = None  # --data-root (for the one asked data set)
    weights_dir: Path | None = None
    hashes: bool = False  # sha256 of every encoder's files, not only the asked-for ones
    tensorflow: bool = True  # probe TensorFlow (in a child) when it is installed


def diagnose(reg, request: DoctorRequest) -> dict:
    started = time.perf_counter()
    report: dict = {"runner": installed_version("cxr-embedding-registry"), "python": platform.python_version(),
                    "platform": platform.platform(), "packages": {n: installed_version(n) for n in PACKAGES}}
    report["torch"] = torch_facts()
    report["tensorflow"] = tensorflow_facts() if request.tensorflow else {"checked": False}
    report["nvidia_smi"] = nvidia_smi()
    report["encoders"] = [encoder_facts(card.data, request) for _, card in sorted(reg.encoders.items())]
    report["datasets"] = [dataset_facts(card.data, request) for _, card in sorted(reg.datasets.items())]
    report["folders"] = folder_facts(request.weights_dir)
    report["problems"] = problems(report, request)
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


# ---------------------------------------------------------------------------------------------------------------
# frameworks and GPUs


def torch_facts() -> dict:
    if importlib.util.find_spec("torch") is None:
        return {"installed": False}
    started = time.perf_counter()
    import torch

    facts = {"installed": True, "version": torch.__version__, "import_s": round(time.perf_counter() - started, 2),
             "cuda_built": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.version.cuda else None,
             "gpus": []}
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            facts["gpus"].append({"index": index, "name": torch.cuda.get_device_name(index),
                                  "free_mib": free // 2**20, "total_mib": total // 2**20})
    return facts


def _tensorflow_probe() -> dict:
    """In the TensorFlow child process: what TensorFlow sees there."""
    started = time.perf_counter()
    tf = import_tensorflow()
    import_s = round(time.perf_counter() - started, 2)
    gpus = tf.config.list_physical_devices("GPU")
    names = [(tf.config.experimental.get_device_details(g) or {}).get("device_name", g.name) for g in gpus]
    built = build_info(tf)
    folder = tf_cuda_dir()
    return {"installed": True, "checked": True, "version": tf.__version__, "import_s": import_s,
            "cuda_built": built["cuda"], "cudnn_built": built["cudnn"], "gpus": names,
            "tensorflow_text": has_tensorflow_text(), "cuda12_libraries": str(folder) if folder else None}


def tensorflow_facts() -> dict:
    """TensorFlow as a TensorFlow encoder's child process sees it (see the module docstring)."""
    if importlib.util.find_spec("tensorflow") is None:
        return {"installed": False, "checked": True}
    started = time.perf_counter()
    try:
        facts = call_in_child(_tensorflow_probe, env=child_environment(), what="the TensorFlow check", quiet=True)
    except RegistryError as exc:
        return {"installed": True, "checked": True, "error": str(exc)}
    facts["child_s"] = round(time.perf_counter() - started, 2)
    return facts


def nvidia_smi() -> dict | None:
    """Driver and every GPU's free memory from nvidia-smi (no CUDA context); None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    query = ["--query-gpu=index,name,driver_version,memory.free,memory.total", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run([exe, *query], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    gpus = []
    for line in done.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 5:
            gpus.append({"index": int(parts[0]), "name": parts[1], "driver": parts[2], "free_mib": int(parts[3]),
                         "total_mib": int(parts[4])})
    return {"gpus": gpus}


# ---------------------------------------------------------------------------------------------------------------
# encoders, data roots, folders


def encoder_facts(card: dict, request: DoctorRequest) -> dict:
    cls = adapter_of(card)
    facts = {"id": card["id"], "adapter": card["adapter"], "framework": getattr(cls, "framework", None),
             "missing_packages": [], "weights": "not needed", "pins": None}
    facts["missing_packages"] = [p for p in getattr(cls, "requires", ()) if importlib.util.find_spec(p) is None]
    spec = card.get("weights") or {}
    if spec.get("random_init") or not spec.get("files"):
        return facts
    facts["revision"] = spec.get("revision")
    found = find_local(card, request.weights_dir)
    if found is None:
        facts["weights"] = "missing"
        return facts
    facts["weights"] = found.source
    hashes = request.hashes or card["id"] in request.encoders
    if not (spec.get("sizes") or spec.get("sha256")):
        facts["pins"] = "none pinned"
        return facts
    started = time.perf_counter()
    try:
        verify_pins(found.root, spec, hashes=hashes)
    except (EncoderError, OSError) as exc:
        facts["pins"] = f"MISMATCH: {exc}"
        return facts
    checked = ["size"] * bool(spec.get("sizes")) + ["sha256"] * bool(hashes and spec.get("sha256"))
    facts["pins"] = " and ".join(checked) + " match" + (
        f" ({time.perf_counter() - started:.1f} s)" if "sha256" in checked else "") + (
        "; sha256 not checked (--hashes)" if spec.get("sha256") and not hashes else "")
    return facts


def dataset_facts(card: dict, request: DoctorRequest) -> dict:
    env = card.get("root_env")
    facts = {"id": card["id"], "root_env": env, "root": None, "holds": None}
    root = request.data_root if (request.data_root and card["id"] in request.datasets) else (
        Path(os.environ[env]) if env and os.environ.get(env) else None)
    if root is None:
        return facts
    facts["root"] = str(root)
    if not root.is_dir():
        facts["holds"] = "not a folder"
        return facts
    facts["holds"] = _holdings(card, root)
    return facts


def _holdings(card: dict, root: Path) -> dict:
    """Which of the card's tables (first alternative found, or the fallback package) and image folders are there."""
    held: dict = {"entries": sum(1 for _ in zip(range(100_000), os.scandir(root)))}
    for table, alternatives in (card.get("files") or {}).items():
        if table == "image_dirs":
            dirs = [str(p.relative_to(root)) or "." for pattern in alternatives for p in sorted(root.glob(pattern))
                    if p.is_dir()]
            held[table] = dirs[:5] + ([f"... {len(dirs) - 5} more"] if len(dirs) > 5 else [])
            continue
        try:
            paths = locate_table(card, root, table)
        except DataError as exc:  # e.g. a table that links outside the root
            paths, held[table] = None, f"refused: {exc}"
        if paths is not None:
            inside = all(p.resolve().is_relative_to(root.resolve()) for p in paths)
            held[table] = " + ".join(p.name for p in paths) + ("" if inside else " (fallback package)")
        else:
            held.setdefault(table, None)
    return held


def _space(path: Path) -> dict:
    probe = next((p for p in [path, *path.parents] if p.exists()), None)
    usage = shutil.disk_usage(probe) if probe else None
    return {"path": str(path), "exists": path.is_dir(),
            "free_gib": round(usage.free / 2**30, 1) if usage else None}


def folder_facts(weights_dir: Path | None) -> dict:
    folders = {"embedding_cache": _space(default_cache_dir())}
    hub = os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    folders["huggingface_cache"] = _space(Path(hub) if os.environ.get("HF_HUB_CACHE") else Path(hub) / "hub")
    for label, value in (("weights_dir", weights_dir), ("CXR_WEIGHTS_DIR", os.environ.get("CXR_WEIGHTS_DIR"))):
        if value:
            folders[label] = _space(Path(value))
    return folders


# ---------------------------------------------------------------------------------------------------------------
# what the asked-for run is missing


def problems(report: dict, request: DoctorRequest) -> list[str]:
    found = []
    torch, tf = report["torch"], report["tensorflow"]
    device = request.device
    if device == "auto":  # as load_encoder decides it: CUDA when torch sees a GPU
        device = "cuda" if torch.get("gpus") else "cpu"
    index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else None
    encoders = {e["id"]: e for e in report["encoders"]}
    for encoder_id in request.encoders:
        facts = encoders[encoder_id]
        if facts["missing_packages"]:
            found.append(f"{encoder_id}: needs package(s) {', '.join(facts['missing_packages'])}")
        if facts["weights"] == "missing":
            found.append(f"{encoder_id}: weights not on this machine (runner encoders check {encoder_id} says how "
                         "to get them)")
        if str(facts.get("pins") or "").startswith("MISMATCH"):
            found.append(f"{encoder_id}: {facts['pins']}")
        if index is not None and facts["framework"] == "torch" and index >= len(torch.get("gpus", [])):
            found.append(f"{encoder_id}: --device {device}, but torch sees {len(torch.get('gpus', []))} GPU(s) "
                         f"(built for CUDA {torch.get('cuda_built')})")
        if index is not None and facts["framework"] == "tensorflow":
            if not tf.get("checked"):
                found.append(f"{encoder_id}: --device {device} needs TensorFlow's GPU, not checked (--no-tensorflow)")
            elif index >= len(tf.get("gpus") or []):
                why = tf.get("error") or (
                    f"TensorFlow {tf.get('version')} sees {len(tf.get('gpus') or [])} GPU(s), built for CUDA "
                    f"{tf.get('cuda_built')}" + ("" if tf.get("cuda12_libraries") else
                                                 "; its CUDA-12 libraries are not installed: make install-gpu")
                    if tf.get("installed") else "tensorflow is not installed")
                found.append(f"{encoder_id}: --device {device}: {why}")
    datasets = {d["id"]: d for d in report["datasets"]}
    for dataset_id in request.datasets:
        facts = datasets[dataset_id]
        if facts["root"] is None:
            found.append(f"{dataset_id}: no data root: set ${facts['root_env']} or pass --data-root"
                         if facts["root_env"] else f"{dataset_id}: no data root: pass --data-root")
        elif facts["holds"] == "not a folder":
            found.append(f"{dataset_id}: data root {facts['root']} is not a folder")
        else:
            missing = [t for t, v in facts["holds"].items()
                       if v in (None, []) or (isinstance(v, str) and v.startswith("refused"))]
            if missing:
                found.append(f"{dataset_id}: {facts['root']} has no {' and no '.join(missing)} "
                             "(see the dataset card's `files`)")
    return found
