"""The CLI as a newcomer meets it: --version, -h, --json, selection by glob and benchmark, --encoder all, every pair
run with a summary, cards outside the repo (--card, --registry), --device cuda without CUDA, one error handler."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.cards import clear_cache
from runner.cli.main import app
from tests.support import TINY_TASK, make_registry_root

# Before the other files (tests/conftest.py): ~20 CPU-s, most of it `runner` child processes one by one.
RUN_EARLY = True

REPO = Path(__file__).resolve().parents[1]
BOX = set("━│┃┏┓┗┛─╇╈┡┩")


def invoke(*args, env=None):
    clear_cache()
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return make_registry_root(tmp_path_factory.mktemp("cli-reg"), {"effusion-tiny": TINY_TASK})


LOCAL_ONLY_CARD = """\
id: {id}
title: A local-weights-only timm card
adapter: timm
model: {{name: resnet18}}
weights: {{files: [model.safetensors], local_dir_env: NO_SUCH_DIR_FOR_TESTS}}
preprocess: {{size: 64, channels: 3, interpolation: bilinear, normalize: imagenet, bit_depth: 8}}
embedding: {{dim: 512, pooling: none}}
license: Apache-2.0
"""


def test_version_and_short_help():
    version = invoke("--version")
    assert version.exit_code == 0 and version.output.startswith("runner ")
    for args in (["-h"], ["eval", "-h"], ["leaderboard", "build", "-h"], ["encoders", "check", "-h"]):
        shown = invoke(*args)
        assert shown.exit_code == 0 and "Usage" in shown.output, args


def test_list_piped_prints_full_ids_without_box_drawing_and_json():
    piped = invoke("list", "encoders")  # CliRunner's stdout is not a terminal
    assert piped.exit_code == 0
    assert not BOX & set(piped.output)
    lines = piped.output.splitlines()
    assert lines[0].split("\t")[:2] == ["id", "adapter"]
    assert any(line.split("\t")[0] == "xrv-densenet121-random" for line in lines)  # full id, not cut
    as_json = json.loads(invoke("list", "tasks", "--json").output)
    assert {t["id"]: t["benchmarks"] for t in as_json}["effusion-nih"] == ["paper-table1"]
    benchmarks = {b["id"]: b for b in json.loads(invoke("list", "benchmarks", "--json").output)}
    assert len(benchmarks["paper-table1"]["tasks"]) == 8 and "view-matched" in benchmarks
    shown = json.loads(invoke("show", "task", "effusion-nih", "--json").output)
    assert shown["id"] == "effusion-nih" and len(shown["sha256"]) == 64


def test_task_selection_by_id_glob_benchmark_and_all():
    from registry.cards import load_registry
    from runner.cli.app import CLIError
    from runner.cli.commands.evaluate import select_tasks

    reg = load_registry(REPO)
    nih = select_tasks("*-nih", reg)  # the NIH tasks (every type), then the four MIMIC -> NIH transfer tasks
    assert {"atelectasis-nih", "edema-nih", "effusion-nih", "opacity-nih"} <= set(nih[:-4])
    assert all(t.endswith("-nih") and "-to-" not in t for t in nih[:-4])
    assert nih[-4:] == [f"{d}-mimic-to-nih" for d in ("atelectasis", "edema", "effusion", "opacity")]
    assert len(select_tasks("paper-table1", reg)) == 8
    demo = select_tasks("demo", reg)
    assert demo[-1] == "effusion-demo-transfer" and "effusion-demo" in demo  # transfer after what it trains on
    assert select_tasks("effusion-nih,*-nih", reg)[0] == "effusion-nih"  # no duplicates, order kept
    assert len(select_tasks("all", reg)) == len(reg.tasks)
    with pytest.raises(CLIError, match="did you mean 'effusion-nih'") as bad:
        select_tasks("efusion-nih", reg)
    assert bad.value.exit_code == 2
    with pytest.raises(CLIError, match="matches no task"):
        select_tasks("*-nowhere", reg)


def test_encoder_all_leaves_out_controls_and_absent_weights(monkeypatch, tmp_path):
    from registry.cards import load_registry
    from runner.cli.commands.evaluate import select_encoders

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache: no hub weights are present
    reg = load_registry(REPO)
    controls = {e for e, c in reg.encoders.items() if c.data.get("control")}
    chosen = select_encoders("all", reg, include_controls=True)
    assert set(chosen.ids) == controls  # nothing with real weights is on this machine
    assert chosen.left_out["medimageinsight"].startswith("weights not on this machine")
    with pytest.raises(Exception, match="selects no encoder"):
        select_encoders("all", reg)
    assert select_encoders("pixels", reg).ids == ["pixels"]  # asked by name: always run
    assert select_encoders("xrv-*", reg, include_controls=True).ids == ["xrv-densenet121-random"]
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"x")  # present (not loaded by the selection)
    chosen = select_encoders("timm-*", reg, weights_dir=weights)
    assert chosen.ids == ["timm-resnet50-imagenet"]


def test_eval_without_encoder_says_how_to_pick_one(tiny_root):
    out = invoke("--registry", tiny_root, "eval", "--task", "effusion-tiny")
    assert out.exit_code == 2
    assert "no --encoder given" in out.output and "pixels" in out.output and "--encoder all" not in out.output
    assert "Traceback" not in out.output


def test_device_cuda_without_cuda_exits_2_before_sampling(tiny_root, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = invoke("--registry", tiny_root, "eval", "--task", "effusion-tiny", "--encoder", "pixels", "--device", "cuda",
                 "--data-root", tmp_path / "data", "--out", tmp_path / "runs")
    assert out.exit_code == 2 and "CUDA is not available" in out.output
    assert not (tmp_path / "runs").exists()  # nothing was sampled


def test_eval_runs_every_pair_and_summarises_as_json(tiny_root, demo_data_dir, tmp_path, capsys):
    card = tmp_path / "cards" / "local-only.yaml"
    card.parent.mkdir()
    card.write_text(LOCAL_ONLY_CARD.format(id="local-only"))
    out = CliRunner().invoke(app, ["--registry", str(tiny_root), "eval", "--task", "effusion-tiny", "--encoder",
                                   f"{card},pixels", "--data-root", str(demo_data_dir), "--out", str(tmp_path / "runs"),
                                   "--analyses", "transfer", "--json", "--workers", "0"],
                             env={"CXR_CACHE_DIR": str(tmp_path / "cache")})
    assert out.exit_code == 2, out.output  # one pair failed for missing input (its weights), the other ran
    summary = json.loads(out.stdout)
    runs = {r["encoder"]: r for r in summary["runs"]}
    assert runs["local-only"]["status"] == "failed" and "missing weights" in runs["local-only"]["error"]
    assert "no weights folder given" in runs["local-only"]["error"]
    assert runs["pixels"]["status"] == "ok" and 0.0 <= runs["pixels"]["auroc"]["mean"] <= 1.0
    assert Path(runs["pixels"]["result"]).is_file()
    assert summary["n_failed"] == 1 and summary["n_ok"] == 1
    assert runs["pixels"]["skipped_analyses"] and runs["pixels"]["skipped_analyses"][0]["name"] == "transfer"
    assert "analysis transfer skipped: " in out.stderr  # listed on the terminal, with the reason
    assert "1 of 2 evaluation(s) done, 1 failed" in out.stderr
    assert "KeyError" not in out.output and "Traceback" not in out.output


def test_encoders_check_on_a_local_weights_only_card_is_one_line(tmp_path):
    card = tmp_path / "local-only.yaml"
    card.write_text(LOCAL_ONLY_CARD.format(id="local-only"))
    out = invoke("encoders", "check", card)
    assert out.exit_code == 1, out.output
    errors = [line for line in out.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "model.safetensors" in errors[0] and "KeyError" not in out.output


def test_card_outside_the_registry_with_card_and_duplicates_refused(tmp_path):
    card = tmp_path / "my-enc.yaml"
    card.write_text(LOCAL_ONLY_CARD.format(id="my-enc"))
    shown = invoke("--card", card, "show", "encoder", "my-enc", "--json")
    assert shown.exit_code == 0 and json.loads(shown.output)["id"] == "my-enc"
    assert invoke("show", "encoder", "my-enc").exit_code == 2  # only for the command that names it
    clash = tmp_path / "pixels.yaml"
    clash.write_text(LOCAL_ONLY_CARD.format(id="pixels"))
    refused = invoke("--card", clash, "list", "encoders")
    assert refused.exit_code == 2 and "already defined" in refused.output


def test_registry_option_and_undeclared_benchmark(tiny_root, tmp_path):
    import shutil

    root = tmp_path / "reg"
    shutil.copytree(tiny_root, root)
    listed = invoke("--registry", root, "list", "tasks")
    assert listed.exit_code == 0 and "effusion-tiny" in listed.output and "effusion-nih" not in listed.output
    (root / "tasks" / "effusion-tiny.yaml").write_text(TINY_TASK + "benchmarks: [paper-tabel1]\n")
    bad = invoke("--registry", root, "validate")
    assert bad.exit_code == 2
    assert "benchmark 'paper-tabel1' is not declared" in bad.output and "did you mean 'paper-table1'" in bad.output
    assert "effusion-tiny.yaml:" in bad.output  # file and line
    (root / "tasks" / "demo.yaml").write_text(TINY_TASK.replace("effusion-tiny", "demo"))
    (root / "tasks" / "effusion-tiny.yaml").write_text(TINY_TASK)
    clash = invoke("--registry", root, "validate")
    assert clash.exit_code == 2 and "also a benchmark id" in clash.output
    assert invoke("--registry", tmp_path / "nowhere", "list", "tasks").exit_code == 2


def test_a_registry_with_its_own_benchmarks_file(tiny_root, tmp_path):
    import shutil

    root = tmp_path / "reg"
    shutil.copytree(tiny_root, root)
    (root / "registry" / "benchmarks.yaml").write_text("benchmarks:\n  - {id: mine, title: Mine}\n")
    (root / "tasks" / "effusion-tiny.yaml").write_text(TINY_TASK + "benchmarks: [mine]\n")
    listed = json.loads(invoke("--registry", root, "list", "benchmarks", "--json").output)
    assert listed == [{"id": "mine", "tasks": ["effusion-tiny"], "title": "Mine", "description": ""}]
    (root / "registry" / "benchmarks.yaml").write_text("benchmarks:\n  - {id: mine}\n")  # no title
    broken = invoke("--registry", root, "validate")
    assert broken.exit_code == 2 and "title" in broken.output


def test_submit_replace_says_what_changed(tmp_path):
    from runs import shared_run

    from leaderboard.filing.submit import submit
    from tests.support import fake_registry

    reg = fake_registry()
    first_run = shared_run(tmp_path / "a", reg, separation=1.0)  # verifiable runs: numbers recompute from files
    first = submit(first_run, reg, results_dir=tmp_path / "results")
    assert first.changes(json.loads(first_run.read_text())) == []
    second_run = shared_run(tmp_path / "b", reg, separation=2.0)
    filed = submit(second_run, reg, results_dir=tmp_path / "results", replace=True)
    assert filed.replaced
    changes = filed.changes(json.loads(second_run.read_text()))
    assert any(c.startswith("auroc mean") for c in changes), changes


def test_every_error_type_is_a_registry_error_with_an_exit_code():
    from leaderboard.filing.submit import SubmitError
    from registry.errors import CardError, RegistryError
    from runner.classify.out_of_fold import ClassifyError
    from runner.data.imaging import ImageDecodeError
    from runner.data.synthetic import DemoDataError
    from runner.data.tables import DataError
    from runner.encoders import EncoderError, WeightsNotFoundError
    from runner.evaluate import EvaluationError
    from runner.metrics.scores import MetricsInputError
    from runner.results.result import ResultError
    from runner.sample.manifest import ManifestError
    from runner.sample.sampler import SamplingError

    expected = {CardError: 2, DataError: 2, SamplingError: 2, ManifestError: 2, ClassifyError: 2, MetricsInputError: 2,
                ImageDecodeError: 2, DemoDataError: 2, EncoderError: 1, WeightsNotFoundError: 1, ResultError: 1,
                EvaluationError: 1}
    for cls, code in expected.items():
        assert issubclass(cls, RegistryError), cls
        assert cls.exit_code == code, cls
    assert issubclass(ClassifyError, ValueError) and issubclass(MetricsInputError, ValueError)  # callers catch those
    assert EvaluationError("x", exit_code=2).exit_code == 2 and SubmitError("x", 1).exit_code == 1


def test_the_handler_prints_one_line_and_exits_with_the_code():
    import typer

    from runner.cli.app import handle_errors
    from runner.sample.manifest import ManifestError

    @handle_errors
    def command():
        raise ManifestError("manifest.json: sha256 mismatch")

    with pytest.raises(typer.Exit) as done:
        command()
    assert done.value.exit_code == 2
    out = invoke("sample", "--task", "effusion-demo", "--data-root", "/nonexistent/demo")
    assert out.exit_code == 2 and out.output.startswith("error: ") and "Traceback" not in out.output


def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path):
    """`runner list tasks | head -1`: the reader closed the pipe, which is not the command's failure. No message,
    the shell's SIGPIPE status (141), as `git log | head` gives; the same pipe of a child process stays an error."""
    import os
    import subprocess
    import sys

    from runner.cli.app import EXIT_READER_GONE, stdout_reader_gone

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: every write fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "runner.cli.main", "list", "tasks"], cwd=REPO, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (EXIT_READER_GONE, "")
    assert not stdout_reader_gone()  # pytest's captured stdout is no closed pipe


def test_log_progress_lines(capsys):
    from runner.runtime.progress import LogProgress

    with LogProgress(every_s=0.0) as bar:
        task = bar.add_task("embedding with x", total=4)
        bar.advance(task, 2)
        bar.advance(task, 2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("embedding with x: 2/4 (50%)") and lines[-1].startswith("embedding with x: 4/4 (100%)")


# --------------------------------------------------------------------------------------------------------------------
# runner doctor


def _doctor(*args, env=None):
    done = invoke("doctor", *args, env=env)
    return done, (json.loads(done.output) if "--json" in args and done.output.startswith("{") else None)


def test_doctor_prints_every_section_and_the_same_as_json():
    table, _ = _doctor("--no-tensorflow")
    assert table.exit_code == 0, table.output  # nothing asked for: nothing can be missing
    for heading in ("packages", "frameworks", "encoders", "data roots", "folders", "checked in"):
        assert f"\n{heading}" in table.output, heading
    assert "tensorflow  not checked (--no-tensorflow)" in table.output
    done, report = _doctor("--no-tensorflow", "--json")
    assert done.exit_code == 0 and report["problems"] == []
    assert report["torch"]["version"].startswith("2.") and report["packages"]["numpy"]
    encoders = {e["id"]: e for e in report["encoders"]}
    assert encoders["cxr-foundation"]["framework"] == "tensorflow" and encoders["random-cnn"]["framework"] == "torch"
    assert encoders["pixels"]["weights"] == "not needed"
    assert encoders["rad-dino"]["revision"] == "110cbc18d5133582e320b43d53bf5c44e410c936"
    assert {"embedding_cache", "huggingface_cache"} <= set(report["folders"])
    assert report["folders"]["embedding_cache"]["free_gib"] > 0


FAKE_GPU = {"index": 0, "name": "NVIDIA Fake", "free_mib": 80000, "total_mib": 81559}


def _fake_frameworks(monkeypatch, torch_gpus, tf_gpus):
    from runner import doctor

    monkeypatch.setattr(doctor, "torch_facts", lambda: {
        "installed": True, "version": "2.14.1", "import_s": 0.0, "cuda_built": "13.0", "cudnn": 92400,
        "gpus": list(torch_gpus)})
    monkeypatch.setattr(doctor, "tensorflow_facts", lambda: {
        "installed": True, "checked": True, "version": "2.21.0", "import_s": 0.0, "child_s": 0.0,
        "cuda_built": "12.5.1", "cudnn_built": "9", "gpus": list(tf_gpus), "tensorflow_text": True,
        "cuda12_libraries": None})


def test_doctor_exit_code_follows_what_the_asked_run_needs(monkeypatch, tmp_path):
    for name in ("elixr-c-v2-pooled", "pax-elixr-b-text"):  # where the files are; doctor loads nothing
        (tmp_path / "cxr" / name).mkdir(parents=True)
    ask = ("--encoder", "cxr-foundation", "--weights-dir", tmp_path / "cxr", "--device", "cuda", "--json")
    _fake_frameworks(monkeypatch, torch_gpus=[FAKE_GPU], tf_gpus=[])  # torch's CUDA-13 GPU, none for TensorFlow
    done, report = _doctor(*ask)
    assert done.exit_code == 1
    [problem] = report["problems"]
    assert problem.startswith("cxr-foundation: --device cuda: TensorFlow 2.21.0 sees 0 GPU(s)")
    assert "make install-gpu" in problem
    table, _ = _doctor(*ask[:-1])
    assert table.exit_code == 1 and "missing for the asked-for run:\n  - cxr-foundation: --device cuda" in table.output
    assert "torch       2.14.1" in table.output and "0: NVIDIA Fake, 80,000 of 81,559 MiB free" in table.output
    _fake_frameworks(monkeypatch, torch_gpus=[FAKE_GPU], tf_gpus=["NVIDIA Fake"])
    done, report = _doctor(*ask)
    assert done.exit_code == 0 and report["problems"] == []
    done, report = _doctor("--encoder", "cxr-foundation", "--device", "cpu", "--json",
                           env={"CXR_WEIGHTS_DIR": str(tmp_path / "none"), "HF_HUB_OFFLINE": "1",
                                "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert done.exit_code == 1 and report["problems"][0].startswith("cxr-foundation: weights not on this machine")
    _fake_frameworks(monkeypatch, torch_gpus=[], tf_gpus=["NVIDIA Fake"])
    done, report = _doctor("--encoder", "random-cnn", "--device", "cuda:0", "--json")
    assert done.exit_code == 1 and "torch sees 0 GPU(s) (built for CUDA 13.0)" in report["problems"][0]
    done, _ = _doctor("--encoder", "random-cnn", "--device", "cpu", "--json")
    assert done.exit_code == 0


def test_doctor_checks_pinned_sizes_and_the_asked_encoders_sha256(tmp_path):
    import hashlib

    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_bytes(b"0123456789")
    good = hashlib.sha256(b"0123456789").hexdigest()
    card = tmp_path / "pinned.yaml"
    pins = f"local_dir_env: NO_SUCH_DIR_FOR_TESTS, sizes: {{model.safetensors: 10}}, sha256: {{model.safetensors: {good}}}"
    card.write_text(LOCAL_ONLY_CARD.format(id="pinned").replace("local_dir_env: NO_SUCH_DIR_FOR_TESTS", pins))
    base = ("--card", card, "doctor", "--no-tensorflow", "--weights-dir", tmp_path / "w", "--device", "cpu", "--json")
    done = invoke(*base)
    pinned = {e["id"]: e for e in json.loads(done.output)["encoders"]}["pinned"]
    assert pinned["pins"] == "size match; sha256 not checked (--hashes)"  # not asked for: size only
    done = invoke(*base, "--encoder", "pinned")
    pinned = {e["id"]: e for e in json.loads(done.output)["encoders"]}["pinned"]
    assert done.exit_code == 0 and pinned["pins"].startswith("size and sha256 match")
    (tmp_path / "w" / "model.safetensors").write_bytes(b"01234567890")  # one byte more
    done = invoke(*base, "--encoder", "pinned")
    report = json.loads(done.output)
    assert done.exit_code == 1
    expected = (f"pinned: MISMATCH: size mismatch for {tmp_path / 'w' / 'model.safetensors'}: the card pins 10 bytes, "
                "the file has 11 (an interrupted download, or other weights than the card describes) — re-download it "
                "or fix the pin")
    assert report["problems"] == [expected]


def test_doctor_says_what_a_data_root_holds(tiny_root, demo_data_dir, tmp_path):
    ask = ("--registry", tiny_root, "doctor", "--no-tensorflow", "--task", "effusion-tiny", "--json")
    done = invoke(*ask, env={"DEMO_CXR_ROOT": ""})
    report = json.loads(done.output)
    assert done.exit_code == 1 and report["problems"] == [
        "demo-cxr: no data root: set $DEMO_CXR_ROOT or pass --data-root"]
    done = invoke(*ask, "--data-root", demo_data_dir)
    demo = {d["id"]: d for d in json.loads(done.output)["datasets"]}["demo-cxr"]
    assert done.exit_code == 0 and demo["root"] == str(demo_data_dir)
    assert demo["holds"]["metadata"] == "metadata.csv" and demo["holds"]["entries"] >= 3
    done = invoke(*ask, "--data-root", tmp_path)  # an empty folder
    assert done.exit_code == 1 and "has no metadata" in json.loads(done.output)["problems"][0]


def test_doctor_asks_tensorflow_in_the_process_tensorflow_encoders_run_in():
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:  # not imported here: doctor asks a child process
        pytest.skip("tensorflow is not installed (the `tf` extra)")
    done, report = _doctor("--encoder", "cxr-foundation-native", "--device", "cuda", "--json",
                           env={"CXR_WEIGHTS_DIR": "/nonexistent"})
    tf = report["tensorflow"]
    assert tf["checked"] and tf["version"] and tf["cuda_built"] and tf["import_s"] > 0
    assert tf["child_s"] >= tf["import_s"]  # measured in the child that probed it
    if not tf["gpus"]:  # a CPU machine: the asked-for GPU run cannot happen, and doctor says why
        assert done.exit_code == 1
        assert any(p.startswith("cxr-foundation-native: --device cuda: TensorFlow") for p in report["problems"])


# --------------------------------------------------------------------------------------------------------------------
# issue 29: every phase visible, failures first; out-of-tree cards everywhere; CLI details


def _timed_lines(args: list[str], env: dict, cwd: Path) -> tuple[list[tuple[float, str, str]], float, int]:
    """Run `runner ARGS` with stdout and stderr as pipes (not terminals); every line as read, with the seconds since
    the start: ([(t, stream, line)], seconds at the end of both streams, exit code).

    The seconds leave out the time the runner's main thread sat ready to run while other processes held every CPU
    (its run-queue delay, /proc/PID/schedstat): on a loaded machine that wait stretches every gap, and it is not
    silence the runner chose. On a quiet machine it is close to zero, and the seconds are the wall clock's."""
    import subprocess
    import sys
    import threading
    import time

    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli.main", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1)
    lines, lock, last_delay = [], threading.Lock(), [0.0]

    def seconds() -> float:
        try:  # the second field: nanoseconds spent runnable but waiting for a CPU
            last_delay[0] = int(Path(f"/proc/{proc.pid}/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):  # gone (reaped) or no schedstat: keep the last reading
            pass
        return time.monotonic() - start - last_delay[0]

    def read(stream, name):
        for line in stream:
            with lock:
                lines.append((seconds(), name, line.rstrip("\n")))

    readers = [threading.Thread(target=read, args=(proc.stdout, "out")),
               threading.Thread(target=read, args=(proc.stderr, "err"))]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=600)
    end = seconds()  # both pipes closed: the runner has exited (not yet reaped, so /proc still has it)
    code = proc.wait(timeout=60)
    return sorted(lines), end, code


def _env(tmp_path, **extra) -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(REPO), "CXR_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200",
            **extra}


def test_eval_in_a_pipe_prints_every_phase_with_no_silence_over_5_s(tiny_root, demo_data_dir, tmp_path):
    """#29 item 5: sampling and checking files, loading the model, embedding (a progress line after the first batch,
    before the last), fitting, writing; never more than 5 s without a line, from the start to the end of output."""
    lines, end, code = _timed_lines(
        ["--registry", str(tiny_root), "eval", "--task", "effusion-tiny", "--encoder", "random-cnn", "--data-root",
         str(demo_data_dir), "--out", str(tmp_path / "runs"), "--batch-size", "32", "--workers", "1"],
        _env(tmp_path), tmp_path)
    text = "\n".join(line for _, _, line in lines)
    assert code == 0, text
    phases = ["reading the cards", "checking encoder random-cnn", "sampling effusion-tiny: 70 positives + 70 negatives",
              "embedding 140 images of effusion-tiny with random-cnn", "loading random-cnn on cpu",
              "embedding with random-cnn: 32/", "fitting lightgbm on 5 fold(s)", "writing the result"]
    found = [next((i for i, (_, _, line) in enumerate(lines) if phase in line), None) for phase in phases]
    assert None not in found, (phases[found.index(None)], text)
    assert found == sorted(found), text  # in the order they happen
    assert any(stream == "out" and "AUROC" in line for _, stream, line in lines)  # the result line, on stdout
    times = [0.0] + [t for t, _, _ in lines] + [end]
    gaps = [(b - a, lines[i - 1][2] if i else "(start)") for i, (a, b) in enumerate(itertools.pairwise(times))]
    assert max(gaps)[0] <= 5.0, (max(gaps), text)


def test_the_heartbeat_speaks_while_a_phase_runs_long():
    import io
    import time

    from runner.runtime import progress

    stream = io.StringIO()
    with progress.reporting("log", stream=stream) as reporter:
        reporter.every_s = 0.2
        with progress.phase("sampling x: 10 files"):
            time.sleep(0.7)
        for _ in progress.counted(range(3), "verifying 3 results"):
            time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "sampling x: 10 files ..." and lines[1].startswith("  ... still sampling x (")
    assert any(line.startswith("  ... still verifying 3 results (") and "/3)" in line for line in lines)
    assert progress.active() is None  # gone with its block
    with progress.phase("nobody listens"):  # no reporter: nothing printed, nothing raised
        pass


def test_eval_with_missing_weights_fails_before_sampling_and_says_it_once(tiny_root, demo_data_dir, tmp_path):
    card = tmp_path / "cards" / "local-only.yaml"
    card.parent.mkdir()
    card.write_text(LOCAL_ONLY_CARD.format(id="local-only"))
    lines, _, code = _timed_lines(
        ["--registry", str(tiny_root), "eval", "--task", "effusion-tiny", "--encoder", str(card), "--data-root",
         str(demo_data_dir), "--out", str(tmp_path / "runs")], _env(tmp_path), tmp_path)
    text = "\n".join(line for _, _, line in lines)
    assert code == 2, text
    assert not (tmp_path / "runs").exists()  # no manifest, no run folder
    assert "sampling" not in text and "Traceback" not in text
    assert sum("model.safetensors" in line for _, _, line in lines) == 1, text  # the error once, no summary echo
    assert next(line for _, _, line in lines if line.startswith("error: ")).startswith("error: missing weights")


def test_a_custom_encoder_without_the_flag_stops_before_sampling(tiny_root, tmp_path):
    card = tmp_path / "mine.yaml"
    card.write_text(LOCAL_ONLY_CARD.format(id="mine").replace("adapter: timm", 'adapter: custom\nentrypoint: "x.y:z"'))
    out = invoke("--registry", tiny_root, "eval", "--task", "effusion-tiny", "--encoder", card, "--data-root",
                 tmp_path / "nowhere", "--out", tmp_path / "runs")
    assert out.exit_code == 2 and "--trust-custom-code" in out.output and not (tmp_path / "runs").exists()
    out = invoke("--registry", tiny_root, "eval", "--task", "effusion-tiny", "--encoder", card, "--trust-custom-code",
                 "--data-root", tmp_path / "nowhere", "--out", tmp_path / "runs")
    assert out.exit_code == 2 and "cannot import 'x.y'" in out.output and not (tmp_path / "runs").exists()


def test_eval_copies_an_out_of_tree_card_that_show_finds(tiny_root, demo_data_dir, tmp_path):
    """#29 item 6: the card given as a path is copied (resolved) into the run folder; `show encoder RUN-FOLDER` and
    `show encoder PATH` read it; the run's card copy is what the registry loads back, same sha256."""
    from registry.cards import load_card
    from runner.cli.run_cards import cards_in

    card = tmp_path / "cards" / "my-cnn.yaml"
    card.parent.mkdir()
    card.write_text((REPO / "encoders" / "random-cnn.yaml").read_text().replace("id: random-cnn", "id: my-cnn"))
    done = invoke("--registry", tiny_root, "eval", "--task", "effusion-tiny", "--encoder", card, "--data-root",
                  demo_data_dir, "--out", tmp_path / "runs", "--workers", "0",
                  env={"CXR_CACHE_DIR": str(tmp_path / "cache")})
    assert done.exit_code == 0, done.output
    run = tmp_path / "runs" / "effusion-tiny" / "my-cnn"
    [(copy, kind)] = cards_in(run)
    assert kind == "encoder" and copy == run / "cards" / "encoders" / "my-cnn.yaml"
    assert load_card(copy, kind="encoder").sha256 == load_card(card).sha256
    for where in (run, run / "result.json", card):
        shown = invoke("--registry", tiny_root, "show", "encoder", where, "--json")
        assert shown.exit_code == 0 and json.loads(shown.output)["id"] == "my-cnn", (where, shown.output)
    assert not (tmp_path / "runs" / "effusion-tiny" / "random-cnn").exists()
    reused = invoke("--registry", tiny_root, "eval", "--task", "effusion-tiny", "--encoder", "random-cnn",
                    "--data-root", demo_data_dir, "--out", tmp_path / "runs", "--workers", "0",
                    env={"CXR_CACHE_DIR": str(tmp_path / "cache")})
    assert reused.exit_code == 0 and not (tmp_path / "runs" / "effusion-tiny" / "random-cnn" / "cards").exists()


def test_a_global_option_after_the_command_says_where_it_goes(tmp_path):
    for args in (["show", "task", "effusion-nih", "--card", "my.yaml"], ["list", "tasks", "--registry=/r"],
                 ["leaderboard", "build", "--card", "my.yaml", "--out", "site"]):
        out = invoke(*args)
        assert out.exit_code == 2 and "No such option" not in out.output, out.output
        assert f"{args[-2] if '=' not in args[-1] else '--registry'} is a global option" in out.output or \
            "--card is a global option" in out.output, out.output
        assert "goes before the command" in " ".join(out.output.split()), out.output
    out = invoke("show", "task", "effusion-nih", "--card", "my.yaml")
    assert "runner --card my.yaml show task effusion-nih" in " ".join(out.output.replace("│", " ").split())


def test_help_shows_no_python_types_and_v_prints_the_version():
    import re

    from typer.main import get_command

    python_type = re.compile(r"<(bool|str|int|float|path|Path|list\[[^\]]*\])>")

    def commands(command, path=()):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, (*path, name))

    for path in commands(get_command(app)):
        shown = invoke(*path, "--help", env={"COLUMNS": "200"})
        assert shown.exit_code == 0 and not python_type.search(shown.output), (path, python_type.search(shown.output))
    for flag in ("-V", "--version"):
        version = invoke(flag)
        assert version.exit_code == 0 and version.output.startswith("runner ")


@pytest.mark.parametrize("args, close", [
    (["show", "task", "efusion-nih"], "effusion-nih"), (["show", "dataset", "nih-cxr"], "nih-cxr14"),
    (["encoders", "check", "rad-din"], "rad-dino"), (["doctor", "--encoder", "rad-din", "--no-tensorflow"], "rad-dino"),
    (["sample", "--task", "efusion-demo", "--data-root", "/nonexistent"], "effusion-demo"),
    (["eval", "--task", "effusion-demo", "--encoder", "pixls"], "pixels")])
def test_did_you_mean_in_every_command_that_takes_an_id(args, close):
    out = invoke(*args)
    errors = [line for line in out.output.splitlines() if line.startswith("error: ")]
    assert out.exit_code == 2 and len(errors) == 1, out.output
    assert f"(did you mean {close!r}?)" in errors[0] and len(errors[0]) < 120, errors[0]  # not the list of every id


def test_list_fits_the_terminal_and_wraps_between_words(monkeypatch):
    import re
    from types import SimpleNamespace

    from registry.cards import load_registry
    from runner.cli.commands import cards as cards_command

    reg = load_registry(REPO)
    for kind, width in ((cards_command.CardKind.tasks, 80), (cards_command.CardKind.encoders, 100),
                        (cards_command.CardKind.tasks, 160)):
        records = cards_command.listing(kind, reg)
        columns = list(records[0])
        text = cards_command.table_text("t", columns, records, width)
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width
        words = {w for r in records for c in columns for w in cards_command._text(r[c], ", ").split()}
        bottom = next(i for i, line in enumerate(lines) if line.startswith("└"))
        words |= set(columns) | set(" ".join(lines[bottom + 1:]).split()) | {"t"}  # headers, the caption, the title
        for line in lines[1:bottom]:
            for token in re.split(r"[\s\u2500-\u257f]+", line):  # box drawing characters and blanks
                assert not token or token in words, (width, token, line)  # every piece is a whole word
        ids = [line.split("│")[1].strip() for line in lines if line.startswith("│") and line.split("│")[1].strip()]
        assert set(ids) == {r["id"] for r in records}  # every id whole, on one line
    monkeypatch.setattr(cards_command, "sys", SimpleNamespace(stdout=SimpleNamespace(isatty=lambda: True)))
    shown = invoke("list", "tasks", env={"COLUMNS": "80"})
    assert shown.exit_code == 0 and max(len(line) for line in shown.output.splitlines()) <= 80


def test_list_encoders_and_show_task_read_well():
    piped = invoke("list", "encoders").output
    assert "None" not in piped
    assert {line.split("\t")[0]: line.split("\t")[2] for line in piped.splitlines()[1:]}["metadata"] == "per data set"
    shown = invoke("show", "task", "effusion-nih").output.splitlines()
    assert shown[0] == "# task effusion-nih: Effusion (NIH ChestX-ray14)"
    body = [line for line in shown if not line.startswith("#")]
    assert body[:2] == ["id: effusion-nih", "title: Effusion (NIH ChestX-ray14)"]
