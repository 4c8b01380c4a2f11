"""What the session builds once (tests/support.py shared_folder): two xdist workers asking at the same moment get one
build between them; a build that failed half way is not handed out but built again. The order files are handed to the
workers in (tests/conftest.py): long files first, files that read the shared real site last."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support import REPO, shared_folder


class _Factory:
    """The part of pytest's tmp_path_factory shared_folder uses: workers' base folders under one parent."""

    def __init__(self, parent: Path, worker: str):
        self.base = parent / worker

    def getbasetemp(self) -> Path:
        return self.base


WORKER = """
import sys, time
from pathlib import Path
from tests.support import shared_folder

class Factory:
    def getbasetemp(self):
        return Path(sys.argv[1]) / sys.argv[3]

log = Path(sys.argv[2])

def build(folder):
    with log.open("a") as f:
        f.write("built\\n")
    time.sleep(1.0)  # long enough for the other worker to arrive while this one builds
    (folder / "site.html").write_text("the one build")

print(shared_folder(Factory(), "real-site", build))
"""


def test_two_workers_asking_at_once_get_one_build(tmp_path):
    log = tmp_path / "builds.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTEST_XDIST_WORKER": "gw0"}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(log), name], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("gw0", "gw1")]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-2000:] for _, err in outputs]
    folders = {out.strip() for out, _ in outputs}
    assert folders == {str(tmp_path / "real-site")}
    assert log.read_text() == "built\n"  # without the lock both would have built
    assert (tmp_path / "real-site" / "site.html").read_text() == "the one build"


def test_a_failed_build_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    factory = _Factory(tmp_path, "gw1")

    def broken(folder):
        (folder / "half.html").write_text("half")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        shared_folder(factory, "site", broken)
    folder = shared_folder(factory, "site", lambda f: (f / "whole.html").write_text("whole"))
    assert sorted(p.name for p in folder.iterdir()) == ["whole.html"]
    assert shared_folder(factory, "site", lambda f: pytest.fail("built twice")) == folder


def test_files_that_say_run_early_go_first_and_real_site_files_last():
    from tests.conftest import pytest_collection_modifyitems

    def item(name, fixtures=(), **flags):
        return SimpleNamespace(path=Path(name), fixturenames=list(fixtures), module=SimpleNamespace(**flags), name=name)

    items = [item("a"), item("b", ["real_site"]), item("c", RUN_EARLY=True), item("d", RUN_LATE=True), item("e"),
             item("f", RUN_EARLY=True)]
    pytest_collection_modifyitems(items)
    assert [i.name for i in items] == ["c", "f", "a", "e", "b", "d"]
