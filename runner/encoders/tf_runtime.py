"""TensorFlow beside PyTorch: its CUDA-12 libraries, the device it really uses, and its GPU memory.

Why a folder of its own for TensorFlow's CUDA libraries: TensorFlow 2.21 is built for CUDA 12.5 (`tf.sysconfig.
get_build_info()`), torch 2.14's wheels bring CUDA 13. TensorFlow's own `and-cuda` extra cannot sit in the same
environment: its nvidia-cudnn-cu12 and nvidia-nccl-cu12 wheels write the very files torch's cu13 wheels own
(site-packages/nvidia/cudnn/lib/libcudnn*.so.9, nvidia/nccl/lib/libnccl.so.2). Measured in a fresh venv: after
`pip install tensorflow[and-cuda]==2.21.0` 74 of torch's files were overwritten and torch reported cuDNN 92800 (the
CUDA-12 build) instead of its own 92400. So `make install-gpu` puts exactly the libraries that extra lists (read from
the installed TensorFlow's metadata: `python -m runner.encoders.tf_runtime requirements`) into `<venv>/tf-cuda12`
(or `$CXR_TF_CUDA_DIR`), and TensorFlow encoders run in a child process (runner.encoders.isolation) whose
LD_LIBRARY_PATH starts with that folder's lib directories: the dynamic loader reads LD_LIBRARY_PATH once, at process
start, and searches it before TensorFlow's RUNPATH (site-packages/nvidia/*), so that child loads the CUDA-12 builds
and the torch process keeps its own.

`select_device` is the one place that decides where TensorFlow runs: `--device cuda[:N]` needs a GPU TensorFlow
itself sees (else one line says why, and how to get it or run on the CPU); memory growth is switched on for it, so
TensorFlow takes GPU memory as it needs it instead of ~all of it at its first op; `--device cpu` hides the GPUs.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from runner.encoders.base import EncoderError

TF_CUDA_DIR_ENV = "CXR_TF_CUDA_DIR"
TF_CUDA_FOLDER = "tf-cuda12"  # under the virtual environment (sys.prefix); `make install-gpu` fills it


def tf_cuda_dir() -> Path | None:
    """The folder holding TensorFlow's CUDA-12 libraries: $CXR_TF_CUDA_DIR, else <venv>/tf-cuda12; None if absent."""
    named = os.environ.get(TF_CUDA_DIR_ENV)
    folder = Path(named).expanduser() if named else Path(sys.prefix) / TF_CUDA_FOLDER
    return folder if folder.is_dir() else None


def library_dirs(root: Path | None = None) -> list[str]:
    """The lib directories of the nvidia-*-cu12 wheels installed (pip --target) under `root`."""
    root = tf_cuda_dir() if root is None else root
    return sorted(glob.glob(str(Path(root) / "nvidia" / "*" / "lib"))) if root else []


def child_environment(base: dict | None = None) -> dict[str, str]:
    """The environment a TensorFlow child process starts with: the CUDA-12 lib dirs first on LD_LIBRARY_PATH, memory
    growth on (read by TensorFlow's GPU allocator; select_device also sets it per device), C++ info logs off."""
    env = dict(os.environ if base is None else base)
    dirs = library_dirs()
    if dirs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*dirs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def and_cuda_requirements() -> list[str]:
    """The requirement strings of the installed TensorFlow's `and-cuda` extra (what `make install-gpu` installs)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        listed = requires("tensorflow") or []
    except PackageNotFoundError as exc:
        raise EncoderError("tensorflow is not installed; install the `tf` extra first (pip install -e '.[tf]')") from exc
    return [r.split(";")[0].strip() for r in listed if "and-cuda" in r.partition(";")[2]]


def import_tensorflow():
    """TensorFlow, imported so that it can share the process with PyTorch, with TF-Text's ops registered.

    Loading triton (which torch._dynamo, timm and transformers import) after TensorFlow kills the process (a native
    library clash; tensorflow 2.21 + triton 3.8 here); triton first, then TensorFlow, works. tensorflow_text is
    imported when installed, as Google's clients do before loading the SavedModels: it registers the TF-Text custom
    ops a graph may hold (ELIXR-B's text side does), without which loading fails with "Op type not registered".
    """
    try:
        import triton  # noqa: F401
    except ImportError:
        pass
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ info logs off the user's terminal
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # before the GPU is initialised, whoever does it
    import tensorflow as tf

    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass
    return tf


def has_tensorflow_text() -> bool:
    return "tensorflow_text" in sys.modules


@dataclass(frozen=True)
class TFDevice:
    """Where TensorFlow runs: `name` for the result ("cuda:0 (NVIDIA H100 80GB HBM3)" or "cpu"), `scope` for tf.device."""

    name: str
    scope: str


def build_info(tf) -> dict:
    info = dict(tf.sysconfig.get_build_info())
    return {"cuda": info.get("cuda_version"), "cudnn": info.get("cudnn_version"), "cuda_build": info.get("is_cuda_build")}


def _no_gpu_hint() -> str:
    if tf_cuda_dir() is None:
        return (f"TensorFlow's CUDA-12 libraries are not installed (make install-gpu puts them in <venv>/{TF_CUDA_FOLDER}, "
                f"or set ${TF_CUDA_DIR_ENV})")
    dirs = library_dirs()
    if dirs and dirs[0] not in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        return ("this process did not start with them on LD_LIBRARY_PATH (runner eval and runner encoders check run "
                "TensorFlow encoders in a child process that does)")
    return "the libraries are there but TensorFlow registered no GPU (driver too old for CUDA 12.5?)"


def select_device(tf, device: str) -> TFDevice:
    """Make TensorFlow use `device` (cpu | cuda | cuda:N) in this process and say which device that is.

    Visible devices and memory growth can be set only before TensorFlow initialises its GPUs; in a process where that
    already happened (a second TensorFlow encoder) they are left as they are, and memory growth is checked.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if not str(device).startswith("cuda"):
        if gpus:
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # already initialised with the GPUs visible: tf.device pins the ops to the CPU
                pass
        return TFDevice("cpu", "/CPU:0")
    index_text = str(device).partition(":")[2]
    index = int(index_text) if index_text.isdigit() else 0
    if not gpus:
        built = build_info(tf)
        raise EncoderError(
            f"--device {device}: TensorFlow {tf.__version__} sees no GPU (it is built for CUDA {built['cuda']}, "
            f"cuDNN {built['cudnn']}; {_no_gpu_hint()}). `runner doctor` shows what each framework sees; "
            "to run this encoder on the CPU say so: --device cpu")
    if index >= len(gpus):
        raise EncoderError(f"--device {device}: TensorFlow sees {len(gpus)} GPU(s)")
    chosen = gpus[index]
    try:
        tf.config.set_visible_devices([chosen], "GPU")
        tf.config.experimental.set_memory_growth(chosen, True)
    except RuntimeError:  # initialised earlier in this process: the settings made then stay
        if not tf.config.experimental.get_memory_growth(chosen):
            raise EncoderError(f"TensorFlow already holds {device} without memory growth; run this encoder in a "
                               "process of its own (runner eval does)") from None
    details = tf.config.experimental.get_device_details(chosen) or {}
    return TFDevice(f"cuda:{index} ({details.get('device_name', 'GPU')})", "/GPU:0")


def main(argv: list[str] | None = None) -> int:
    """`python -m runner.encoders.tf_runtime requirements|libdir`: what `make install-gpu` installs, and where."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["requirements"]:
        try:
            print("\n".join(and_cuda_requirements()))
        except EncoderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args == ["libdir"]:
        print(os.environ.get(TF_CUDA_DIR_ENV) or Path(sys.prefix) / TF_CUDA_FOLDER)
        return 0
    print("usage: python -m runner.encoders.tf_runtime requirements|libdir", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
