"""runner.encoders.tf_runtime: where TensorFlow runs (GPU branches behind a mocked device list), its CUDA-12 library
folder and the child environment, and the isolation of TensorFlow encoders in a child process."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from registry.errors import RegistryError
from runner.encoders import EncoderError, tf_runtime
from runner.encoders.isolation import ChildError, call_in_child
from tests.support import children_after_sigkill

# Before the other files (tests/conftest.py): TensorFlow child processes, one by one (~14 CPU-s, ~1 min when busy).
RUN_EARLY = True

REPO = Path(__file__).resolve().parents[1]


class FakeConfig:
    """tf.config with a given list of physical GPUs; records what the runtime sets, can refuse like an initialised TF."""

    def __init__(self, gpus, initialised=False, growth=True):
        self.gpus, self.initialised, self.growth = list(gpus), initialised, growth
        self.visible, self.memory_growth = None, {}
        self.experimental = self

    def list_physical_devices(self, kind):
        return list(self.gpus) if kind == "GPU" else ["/physical_device:CPU:0"]

    def set_visible_devices(self, devices, kind):
        if self.initialised:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        self.visible = (list(devices), kind)

    def set_memory_growth(self, device, enable):
        if self.initialised:
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        self.memory_growth[device] = enable

    def get_memory_growth(self, device):
        return self.growth

    def get_device_details(self, device):
        return {"device_name": f"NVIDIA Fake {device[-1]}", "compute_capability": (9, 0)}


class FakeTF:
    __version__ = "2.21.0"

    def __init__(self, gpus=(), **kw):
        self.config = FakeConfig(gpus, **kw)

        class Sysconfig:
            @staticmethod
            def get_build_info():
                return {"cuda_version": "12.5.1", "cudnn_version": "9", "is_cuda_build": True}

        self.sysconfig = Sysconfig


GPUS = ("/physical_device:GPU:0", "/physical_device:GPU:1")


def test_cuda_on_a_gpu_tensorflow_sees_turns_memory_growth_on_for_that_gpu_only():
    tf = FakeTF(GPUS)
    used = tf_runtime.select_device(tf, "cuda:1")
    assert used == tf_runtime.TFDevice("cuda:1 (NVIDIA Fake 1)", "/GPU:0")
    assert tf.config.visible == ([GPUS[1]], "GPU") and tf.config.memory_growth == {GPUS[1]: True}
    assert tf_runtime.select_device(FakeTF(GPUS), "cuda").name == "cuda:0 (NVIDIA Fake 0)"


def test_cuda_without_a_gpu_tensorflow_sees_is_one_line_with_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setenv(tf_runtime.TF_CUDA_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(EncoderError) as err:
        tf_runtime.select_device(FakeTF(), "cuda")
    message = str(err.value)
    assert "\n" not in message and "TensorFlow 2.21.0 sees no GPU" in message and "CUDA 12.5.1" in message
    assert "make install-gpu" in message and "--device cpu" in message
    with pytest.raises(EncoderError, match="TensorFlow sees 2 GPU"):
        tf_runtime.select_device(FakeTF(GPUS), "cuda:2")


def test_cpu_hides_the_gpus_from_tensorflow():
    tf = FakeTF(GPUS)
    assert tf_runtime.select_device(tf, "cpu") == tf_runtime.TFDevice("cpu", "/CPU:0")
    assert tf.config.visible == ([], "GPU")
    already = FakeTF(GPUS, initialised=True)  # too late to hide them: tf.device pins the ops to the CPU instead
    assert tf_runtime.select_device(already, "cpu").scope == "/CPU:0"


def test_a_tensorflow_initialised_without_memory_growth_is_refused():
    assert tf_runtime.select_device(FakeTF(GPUS, initialised=True, growth=True), "cuda").scope == "/GPU:0"
    with pytest.raises(EncoderError, match="without memory growth"):
        tf_runtime.select_device(FakeTF(GPUS, initialised=True, growth=False), "cuda")


def test_the_child_environment_puts_the_cuda12_libraries_first(monkeypatch, tmp_path):
    for name in ("cudnn", "cublas"):
        (tmp_path / "nvidia" / name / "lib").mkdir(parents=True)
    monkeypatch.setenv(tf_runtime.TF_CUDA_DIR_ENV, str(tmp_path))
    env = tf_runtime.child_environment({"LD_LIBRARY_PATH": "/opt/other"})
    assert env["LD_LIBRARY_PATH"].split(os.pathsep) == [
        str(tmp_path / "nvidia" / "cublas" / "lib"), str(tmp_path / "nvidia" / "cudnn" / "lib"), "/opt/other"]
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    monkeypatch.setenv(tf_runtime.TF_CUDA_DIR_ENV, str(tmp_path / "absent"))
    assert "LD_LIBRARY_PATH" not in tf_runtime.child_environment({})


def _needs_tensorflow():
    # find_spec, not importorskip: importing TensorFlow here, before triton, would make a later triton import crash
    # this process (runner.encoders.tf_runtime.import_tensorflow keeps the order)
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed (the `tf` extra)")


def test_install_gpu_reads_tensorflows_own_cuda_requirements():
    _needs_tensorflow()
    requirements = tf_runtime.and_cuda_requirements()
    names = {r.split("<")[0].split(">")[0].split("=")[0] for r in requirements}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= names
    assert all(";" not in r for r in requirements)


# --------------------------------------------------------------------------------------------------------------------
# runner.encoders.isolation


def _pid_and_mark():
    return os.getpid(), getattr(tf_runtime, "TEST_MARK", None)


def _raise_registry_error():
    raise RegistryError("the child says no", exit_code=2)


def _raise_value_error():
    raise ValueError("bad thing")


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def test_call_in_child_runs_in_another_process_and_carries_errors_back(monkeypatch):
    monkeypatch.setattr(tf_runtime, "TEST_MARK", "set in the parent", raising=False)
    pid, mark = call_in_child(_pid_and_mark)
    assert pid != os.getpid() and mark is None  # a fresh interpreter, not a fork of this one
    with pytest.raises(ChildError, match="the child says no") as err:
        call_in_child(_raise_registry_error)
    assert err.value.exit_code == 2
    with pytest.raises(ChildError, match="unexpected ValueError: bad thing"):
        call_in_child(_raise_value_error)
    with pytest.raises(EncoderError, match=r"the test child ended without an answer \(signal SIGKILL"):
        call_in_child(_die, what="the test child")


EVAL_BOTH = """\
import json, sys
from pathlib import Path
from registry.cards import load_registry
from runner.cli.commands.evaluate import run_many
from runner.evaluate import EvalOptions
root, data, out, snapshot = map(Path, sys.argv[1:5])
options = EvalOptions(device="cpu", workers=0, progress=False, cache_dir=out / "cache", weights_dir=snapshot)
outcomes = run_many(["effusion-tiny"], ["cxr-foundation-native", "random-cnn"], data, out / "runs", options, load_registry(root),
                    quiet_stdout=True)
print(json.dumps({"outcomes": [o.__dict__ for o in outcomes],
                  "tensorflow_in_parent": any(m.split(".")[0] == "tensorflow" for m in sys.modules)}))
"""


def test_eval_runs_a_tensorflow_encoder_in_a_child_and_the_torch_encoder_after_it_without_tensorflow(
        tmp_path, demo_data_dir):
    """`runner eval --encoder all`'s loop (run_many): the TensorFlow encoder in a process of its own, then a torch
    encoder in a parent process that never imported TensorFlow (so on a GPU it gets the memory TensorFlow held)."""
    import json
    import subprocess

    _needs_tensorflow()
    import cxr_foundation_models as models

    from tests.support import TINY_TASK, make_registry_root

    small = TINY_TASK.replace("positives: 70, negatives: 70", "positives: 30, negatives: 30")  # speed only
    small += "classifier: {params: {n_estimators: 60}}\n"  # likewise: 48 training images never stop early
    root = make_registry_root(tmp_path / "reg", {"effusion-tiny": small})
    for name in ("cxr-foundation", "cxr-foundation-native"):  # the real cards, on the stand-in SavedModels
        (root / "encoders" / f"{name}.yaml").write_text((REPO / "encoders" / f"{name}.yaml").read_text())
    snapshot = models.save_snapshot(tmp_path / "snapshot")
    done = subprocess.run([sys.executable, "-c", EVAL_BOTH, root, demo_data_dir, tmp_path, snapshot],
                          capture_output=True, text=True, timeout=900, cwd=REPO, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])})
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["tensorflow_in_parent"] is False
    outcomes = {o["encoder"]: o for o in answer["outcomes"]}
    assert [o["status"] for o in answer["outcomes"]] == ["ok", "ok"], [o.get("error") for o in answer["outcomes"]]
    results = {e: json.loads(Path(o["result"]).read_text()) for e, o in outcomes.items()}
    assert results["cxr-foundation-native"]["environment"]["frameworks"] == {"tensorflow": "cpu"}
    assert results["random-cnn"]["environment"]["frameworks"] == {"torch": "cpu"}
    assert results["cxr-foundation-native"]["environment"]["device"] == "cpu"


def test_the_child_of_a_parent_killed_with_sigkill_ends_too(tmp_path):
    """A `runner eval` killed with SIGKILL cannot end the encoder's process (call_in_child): Linux ends it."""
    started = tmp_path / "started"
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from runner.encoders.isolation import call_in_child
        call_in_child(exec, "import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(600)")
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    children, alive = children_after_sigkill(parent, started)
    assert len(children) == 1
    assert not alive, "the encoder's child process outlived its parent killed with SIGKILL"
