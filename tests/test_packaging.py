"""A normal (non-editable) install is a working registry: the wheel carries the cards, benchmarks, publications,
floors, filed results and committed manifests (registry.home, setup.py), so `runner` works from any folder.

The wheel is built from a copy of the checkout (pip wheel --no-deps) and run from its unpacked contents with the
working folder at `/` and no $CXR_REGISTRY_ROOT: nothing of the checkout can be found by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from registry.home import DATA_PATHS
from tests.support import REPO


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    return [f for f in listed if f and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel's contents unpacked into a folder (what `pip install .` puts into site-packages)."""
    source, wheels, site = (tmp_path_factory.mktemp(name) for name in ("source", "wheels", "site"))
    for rel in _tracked_files():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, source / rel)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "--disable-pip-version-check", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def _runner(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CXR_REGISTRY_ROOT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the checkout
    return subprocess.run([sys.executable, "-c", "from runner.cli.main import app; app()", *args], cwd="/", env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_wheel_carries_every_registry_data_path(installed):
    data = installed / "registry" / "data"
    for rel in DATA_PATHS:
        assert (data / rel).exists(), rel
    assert len(list((data / "tasks").glob("*.yaml"))) == len(list((REPO / "tasks").glob("*.yaml")))
    assert (data / "manifests" / "index.json").is_file()


def test_an_installed_runner_validates_and_lists_from_anywhere(installed):
    done = _runner(installed, "validate")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(list((REPO / 'tasks').glob('[!_]*.yaml')))} tasks" in done.stdout and str(installed / "registry" / "data") not in done.stderr
    listed = _runner(installed, "list", "benchmarks")
    assert listed.returncode == 0 and "paper-table1" in listed.stdout, listed.stderr[-2000:]
    code = ("import registry.cards as c, runner; print(c.load_registry().root); print(runner.__file__)")
    env = {**{k: v for k, v in os.environ.items() if k != "CXR_REGISTRY_ROOT"}, "PYTHONPATH": str(installed)}
    where = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True,
                           check=True).stdout.split("\n")
    assert where[0] == str(installed / "registry" / "data") and where[1].startswith(str(installed))


@pytest.mark.parametrize("make", ["empty", "tasks-a-file", "nowhere"])
def test_validate_refuses_an_empty_or_missing_registry(tmp_path, make):
    root = tmp_path / "reg"
    if make != "nowhere":
        root.mkdir()
    if make == "tasks-a-file":
        (root / "tasks").write_text("not a folder")
    env = {**os.environ, "CXR_REGISTRY_ROOT": str(root)}
    done = subprocess.run([sys.executable, "-m", "runner.cli.main", "validate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr and str(root) in done.stderr
    expected = {"empty": "tasks does not exist", "tasks-a-file": "tasks is not a folder", "nowhere": "does not exist"}
    assert expected[make] in done.stderr
    # the root's own problems only: checking cards against each other (or the project's benchmarks against no
    # encoders) in a root that is not one would only bury them
    assert "benchmarks.yaml" not in done.stderr and "problem(s) with the registry root" in done.stderr, done.stderr


def test_the_constraints_pin_every_dependency_within_its_range():
    """constraints.txt (what the Makefile installs) pins each requirement of pyproject.toml, core and extras, to a
    release its range allows, and torch to the Makefile's TORCH_PINS: a dependency added without `make lock` would
    float on a fresh machine again."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = [Requirement(r) for r in project["dependencies"]]
    required += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version.strip()
    problems = []
    for requirement in required:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement}: {f'pinned to {pinned}' if pinned else 'no pin'}")
    assert not problems, problems
    torch_pins = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("TORCH_PINS"))
    for pin in torch_pins.split(":=")[1].split():
        name, _, version = pin.partition("==")
        pinned = pins[canonicalize_name(name)]
        assert pinned == version, f"constraints.txt pins {name} {pinned}, the Makefile {pin}"
