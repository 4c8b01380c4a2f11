"""What made an encoder's embeddings (issue 25 item 6): the weights' content hashed once per file version, a custom
adapter's local source, the package versions that change numbers; runner.embed.made_by and runner.encoders.weights."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest

from runner.embed.made_by import encoder_inputs, number_packages
from runner.encoders import EncoderError
from runner.encoders import weights as weights_module
from runner.encoders.weights import INDEX_NAME, FileHashes


def _forget_this_process():
    weights_module._KNOWN.clear()  # as a new process would start


def test_a_weight_file_is_hashed_once_per_version_and_again_when_it_changes(tmp_path):
    checkpoint = tmp_path / "w" / "model.safetensors"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"A" * 100_000)
    first = FileHashes(tmp_path / "cache")
    assert first.sha256(checkpoint) == hashlib.sha256(b"A" * 100_000).hexdigest() and first.computed == 1
    _forget_this_process()
    second = FileHashes(tmp_path / "cache")  # the next run: the index in the cache folder answers
    assert second.sha256(checkpoint) == hashlib.sha256(b"A" * 100_000).hexdigest() and second.computed == 0
    index = json.loads((tmp_path / "cache" / INDEX_NAME).read_text())
    assert list(index) == [os.path.realpath(checkpoint)]
    # the same size written in place, its mtime put back (cp -p over the old file): still hashed again
    stat = checkpoint.stat()
    with open(checkpoint, "r+b") as handle:
        handle.write(b"B")
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _forget_this_process()
    third = FileHashes(tmp_path / "cache")
    assert third.sha256(checkpoint) == hashlib.sha256(b"B" + b"A" * 99_999).hexdigest() and third.computed == 1


def test_a_garbage_index_is_hashed_over(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"x")
    (tmp_path / INDEX_NAME).write_text('{"' + os.path.realpath(tmp_path / "w.bin") + '": "nonsense"}')
    _forget_this_process()
    hashes = FileHashes(tmp_path)
    assert hashes.sha256(tmp_path / "w.bin") == hashlib.sha256(b"x").hexdigest() and hashes.computed == 1


def _timm_card(**weights):
    return {"id": "toy", "adapter": "timm", "model": {"name": "test_efficientnet"}, "embedding": {"dim": 8},
            "preprocess": {"size": 32}, "weights": {"files": ["model.safetensors"], **weights}}


def test_the_key_covers_every_weight_file_and_says_when_there_is_none(tmp_path):
    from registry import plugins

    timm = plugins.load("adapter", "timm")
    (tmp_path / "model.safetensors").write_bytes(b"one")
    made = encoder_inputs(_timm_card(), timm, tmp_path, FileHashes(tmp_path / "cache"))
    assert made.weights_sha256 == {"model.safetensors": hashlib.sha256(b"one").hexdigest()} and not made.no_weights
    assert {"timm", "torch", "numpy", "pydicom"} <= set(made.packages) and made.record()["sha256"] == made.sha256
    (tmp_path / "model.safetensors").write_bytes(b"two")
    assert encoder_inputs(_timm_card(), timm, tmp_path, FileHashes(tmp_path / "cache")).sha256 != made.sha256
    # a folder entry: every file under it
    (tmp_path / "saved" / "variables").mkdir(parents=True)
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "saved" / "variables" / "v.data").write_bytes(b"vars")
    folder = encoder_inputs({**_timm_card(), "weights": {"files": ["saved/"]}}, timm, tmp_path)
    assert sorted(folder.weights_sha256) == ["saved/saved_model.pb", "saved/variables/v.data"]
    random = encoder_inputs(_timm_card(random_init=True), timm, tmp_path / "nowhere")
    assert random.weights_sha256 == {} and "seeded random" in random.no_weights
    assert "no_weights" in random.record()
    pixels = encoder_inputs({"id": "pixels", "adapter": "pixels"}, plugins.load("adapter", "pixels"))
    assert pixels.weights_sha256 == {} and "loads no weight file" in pixels.no_weights


def test_packages_that_change_numbers_are_chosen_per_adapter():
    from registry import plugins

    radiomics = number_packages(plugins.load("adapter", "radiomics"))
    assert "scikit-image" in radiomics and "timm" not in radiomics and "tensorflow" not in radiomics
    xrv = number_packages(plugins.load("adapter", "torchxrayvision"))
    assert {"torchxrayvision", "torchvision", "torch", "pylibjpeg-openjpeg"} <= set(xrv)


LOCAL_HELPER = "SCALE = 2.0\n"
LOCAL_ENTRY = """
import numpy as np
from mine_helpers import SCALE


def build(card, device, weights):
    from mine_pkg.inner import offset  # a local import inside a function counts too
    return lambda batch: batch.reshape(len(batch), -1)[:, :4] * SCALE + offset()
"""


def test_custom_code_is_hashed_from_its_local_files_without_running_them(tmp_path, monkeypatch):
    from registry import plugins
    from runner.encoders.custom import local_code

    (tmp_path / "mine_entry.py").write_text(LOCAL_ENTRY)
    (tmp_path / "mine_helpers.py").write_text(LOCAL_HELPER)
    (tmp_path / "mine_pkg").mkdir()
    (tmp_path / "mine_pkg" / "__init__.py").write_text("")
    (tmp_path / "mine_pkg" / "inner.py").write_text("def offset():\n    return 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = local_code("mine_entry:build")
    assert sorted(code.files) == ["mine_entry", "mine_helpers", "mine_pkg", "mine_pkg.inner"]
    assert "numpy" in code.packages and not {"mine_entry", "mine_helpers"} & set(sys.modules)  # nothing ran
    card = {"id": "mine", "adapter": "custom", "entrypoint": "mine_entry:build"}
    made = encoder_inputs(card, plugins.load("adapter", "custom"))
    (tmp_path / "mine_pkg" / "inner.py").write_text("def offset():\n    return 1.0\n")
    changed = encoder_inputs(card, plugins.load("adapter", "custom"))
    assert changed.code_sha256["mine_pkg.inner"] != made.code_sha256["mine_pkg.inner"]
    assert changed.sha256 != made.sha256 and changed.code_sha256["mine_entry"] == made.code_sha256["mine_entry"]
    with pytest.raises(EncoderError, match="cannot find module"):
        local_code("no_such_module_here:build")


def test_the_filed_result_keeps_what_made_the_embeddings(tmp_path):
    """The registry regenerates a submitted result from its predictions and files the run's `environment` as the run
    reports it (leaderboard/filing/regenerate.py RUN_FACTS): the weights' sha256 stays in the filed result."""
    from leaderboard.filing.submit import filed_problems, submit
    from registry.cards import load_registry
    from tests.runs import edit_result, shared_run

    reg = load_registry()
    made = {"sha256": "a" * 64, "weights_sha256": {"model.safetensors": "b" * 64}, "code_sha256": {},
            "packages": {"torch": "2.14.1", "pylibjpeg-libjpeg": None}}
    path = shared_run(tmp_path / "run", reg)
    edit_result(path, lambda r: r["environment"].update(encoder_inputs=made))
    filed = submit(path, reg, tmp_path / "results").path
    assert json.loads(filed.read_text())["environment"]["encoder_inputs"] == made
    assert filed_problems(filed, json.loads(filed.read_text()), reg) == []
