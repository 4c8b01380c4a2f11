"""docs/adding-an-encoder.md runs as written: its walk-through (a random-weight timm card outside the repository:
validate, check, demo data, eval, submit, build) is executed block by block in a fresh folder."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

# Before the other files (tests/conftest.py): the longest single test (the guide's runner processes, one by one).
RUN_EARLY = True

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "adding-an-encoder.md"
BLOCK = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```", re.DOTALL | re.MULTILINE)


def guide_blocks(text: str) -> tuple[dict[str, str], list[str]]:
    """({path: content} of ```yaml file=PATH and ```python file=PATH blocks, [command] of ```bash tested blocks), in
    document order."""
    files, commands = {}, []
    for match in BLOCK.finditer(text):
        info = match["info"].split()
        if info[:1] in (["yaml"], ["python"]) and any(w.startswith("file=") for w in info):
            files[next(w for w in info if w.startswith("file="))[5:]] = match["body"]
        elif info[:2] == ["bash", "tested"]:
            commands += [line for line in match["body"].splitlines() if line.strip() and not line.startswith("#")]
    return files, commands


def test_the_guide_has_a_tested_walk_through():
    files, commands = guide_blocks(GUIDE.read_text(encoding="utf-8"))
    assert files and len(commands) >= 5
    assert any("eval" in c for c in commands) and any("submit" in c for c in commands)
    assert any("leaderboard build" in c for c in commands)


def test_the_guide_runs_as_written(tmp_path):
    pytest.importorskip("timm")
    files, commands = guide_blocks(GUIDE.read_text(encoding="utf-8"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # -P: like the installed `runner` script, the current folder is not on sys.path (the guide says how to add it)
    (bin_dir / "runner").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -P -m runner.cli.main \"$@\"\n")
    (bin_dir / "runner").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    for rel, content in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(content, encoding="utf-8")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "CXR_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("CXR_REGISTRY_ROOT", None)
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, command
    encoders_page = (work / "site" / "encoders.html").read_text(encoding="utf-8")
    assert "my-resnet18" in encoders_page and "my-patch-means" in encoders_page
    assert (work / "results" / "effusion-demo__my-resnet18__reproduced.json").is_file()
    custom = json.loads((work / "results" / "effusion-demo__my-patch-means__reproduced.json").read_text())
    assert custom["encoder"]["id"] == "my-patch-means" and 0.0 <= custom["metrics"]["auroc"]["mean"] <= 1.0
    assert (work / "results" / "cards" / "encoders" / "my-patch-means.yaml").is_file()  # filed beside the results


def test_the_custom_example_needs_the_flag_and_an_importable_module(tmp_path):
    """What the guide says happens without --trust-custom-code, and when Python cannot import the module: one line,
    before anything is sampled."""
    files, _ = guide_blocks(GUIDE.read_text(encoding="utf-8"))
    for rel in ("my_encoders/patch_means.py", "my-cards/my-patch-means.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(files[rel], encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CXR_CACHE_DIR": str(tmp_path / "cache")}
    base = [sys.executable, "-P", "-m", "runner.cli.main", "eval", "--task", "effusion-demo", "--encoder",
            "my-cards/my-patch-means.yaml", "--data-root", str(tmp_path / "no-data"), "--out", "runs"]
    for extra, expected in (([], "--trust-custom-code"), (["--trust-custom-code"], "my_encoders.patch_means")):
        done = subprocess.run(base + extra, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 2, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and expected in errors[0], done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()
