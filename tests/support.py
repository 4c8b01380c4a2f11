"""What many tests share: the project's own registry paths (registry.home), in one place, and what tests/conftest.py
builds once per session."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from registry.home import find_home

REPO = Path(__file__).resolve().parents[1]
HOME = find_home(REPO)  # the project's own registry, whatever $CXR_REGISTRY_ROOT says
RESULTS_DIR = HOME.results_dir  # the filed results (the paper's Table 1, the shortcut floors, the demo)
TABLE_PATH = HOME.publications_dir / "shin2025-table1.yaml"  # the paper's Table 1 as a publication record


def shared_folder(tmp_path_factory, name: str, build) -> Path:
    """`build(folder)` run once per test session, also when pytest-xdist runs the session in several workers
    (xdist's documented recipe: a file lock in the folder the workers' temporary folders share). Without xdist: a
    folder of this process. A build that failed half way is removed and tried again by the next worker that asks."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / name
    done = folder.with_name(name + ".done")
    with FileLock(str(folder) + ".lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@dataclass(frozen=True)
class RealSite:
    """The site of the project's own cards and filed results (tests/conftest.py `real_site`). Read-only."""

    index: Path  # OUT/index.html
    summary: dict  # OUT/leaderboard.json, what the pages were rendered from

    @property
    def out(self) -> Path:
        return self.index.parent
