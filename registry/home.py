"""Where the registry's data lives: the one place that knows the layout of a registry root.

A registry root is a folder laid out like this checkout:

    tasks/*.yaml                  task cards (files starting with "_" are defaults that cards extend)
    encoders/*.yaml               encoder cards
    registry/datasets/*.yaml      dataset cards
    registry/benchmarks.yaml      benchmark declarations (optional: the project's own are used when absent)
    leaderboard/publications/     publication records, the only source of reported results (optional)
    leaderboard/floors.yaml       which shortcut floors `python -m leaderboard.filing.file_floors` files (optional)
    leaderboard/results/          filed results, their predictions, and the manifests they were scored on
    manifests/                    committed manifests (content-addressed) and their index.json (optional)

Which root: `--registry DIR` (the CLI passes it as `root`), else $CXR_REGISTRY_ROOT, else the checkout this package
lives in, else the copy a wheel carries (`pip install .` puts the same tree under registry/data/, see setup.py).
Every path of a registry (cards, benchmarks, publications, floors, filed results, committed manifests) comes from
one `RegistryHome`, so switching the root switches all of them together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "CXR_REGISTRY_ROOT"
PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent  # the repository, when the package runs from a checkout (editable install)
INSTALLED_DATA = PACKAGE_DIR / "data"  # the registry tree a wheel carries (copied there by setup.py's build step)
PROJECT_BENCHMARKS = PACKAGE_DIR / "benchmarks.yaml"  # the declarations a root without its own falls back to

# Relative paths of a root's contents; setup.py copies these into the wheel (under registry/data/).
TASKS = Path("tasks")
ENCODERS = Path("encoders")
DATASETS = Path("registry/datasets")
BENCHMARKS = Path("registry/benchmarks.yaml")
PUBLICATIONS = Path("leaderboard/publications")
FLOORS = Path("leaderboard/floors.yaml")
RESULTS = Path("leaderboard/results")
MANIFESTS = Path("manifests")
DATA_PATHS = (TASKS, ENCODERS, DATASETS, BENCHMARKS, PUBLICATIONS, FLOORS, RESULTS, MANIFESTS)
CARD_DIRS = {"dataset": DATASETS, "task": TASKS, "encoder": ENCODERS}


@dataclass(frozen=True)
class RegistryHome:
    """The paths of one registry root."""

    root: Path

    def card_dir(self, kind: str) -> Path:
        return self.root / CARD_DIRS[kind]

    @property
    def benchmarks_file(self) -> Path:
        """The root's own declarations, or the project's when the root has none (a test or partial registry).
        Anything at that path counts as the root's own, so a FIFO, folder or broken link there is refused when read,
        never passed over for the project's file."""
        own = self.root / BENCHMARKS
        return own if own.exists() or own.is_symlink() else PROJECT_BENCHMARKS

    @property
    def publications_dir(self) -> Path:
        return self.root / PUBLICATIONS

    @property
    def floors_file(self) -> Path:
        return self.root / FLOORS

    @property
    def results_dir(self) -> Path:
        return self.root / RESULTS

    @property
    def manifests_dir(self) -> Path:
        return self.root / MANIFESTS

    def problems(self) -> list[str]:
        """Why this root cannot be a registry (empty when it can): missing, not a folder, a card folder missing or
        not a folder, no task or encoder card at all."""
        if not self.root.exists():
            return [f"registry root {self.root} does not exist"]
        if not self.root.is_dir():
            return [f"registry root {self.root} is not a folder"]
        found = []
        for kind, rel in CARD_DIRS.items():
            folder = self.root / rel
            if not folder.exists():
                found.append(f"{folder} does not exist: a registry root holds {', '.join(map(str, CARD_DIRS.values()))}")
            elif not folder.is_dir():
                found.append(f"{folder} is not a folder")
            elif kind != "dataset" and not any(p.suffix in (".yaml", ".yml") and not p.name.startswith("_")
                                               for p in folder.iterdir()):
                found.append(f"{folder} holds no {kind} card (*.yaml)")
        return found


def is_checkout(folder: Path) -> bool:
    """A source checkout of this project (not site-packages, where `tasks/` could belong to another package)."""
    return (folder / "pyproject.toml").is_file() and (folder / TASKS / "_defaults.yaml").is_file()


def default_root() -> Path:
    """$CXR_REGISTRY_ROOT, else this checkout, else the tree an installed wheel carries."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return CHECKOUT if is_checkout(CHECKOUT) else INSTALLED_DATA


def find_home(root: Path | None = None) -> RegistryHome:
    """The home of `root` (an explicit --registry), else of `default_root()`."""
    return RegistryHome(Path(root).expanduser().resolve() if root is not None else default_root())
