"""make test's parallel runner (tests/fork_workers.py), run on small suites of its own: what the workers report is
pytest's own output, each file runs whole in one worker, and a worker that dies or is orphaned loses no test silently
and leaves nothing running."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support import REPO

SUITE = {
    "test_a.py": """
        import os, pathlib
        def test_one(): pathlib.Path(os.environ["PIDS"], "a1").write_text(str(os.getpid()))
        def test_two(): pathlib.Path(os.environ["PIDS"], "a2").write_text(str(os.getpid()))
    """,
    "test_b.py": """
        import warnings
        def test_fails():
            print("captured in b")
            warnings.warn("b warns", DeprecationWarning)
            assert 1 == 2
        def test_passes(): pass
    """,
    "conftest.py": """
        import os, pathlib, pytest
        def count(name):
            with open(pathlib.Path(os.environ["PIDS"], name), "a") as f:
                f.write(f"{os.getpid()}\\n")
        @pytest.fixture(scope="session")
        def per_session():
            count("session-setups")
            yield
            count("session-teardowns")
    """,
    "test_c.py": """
        import pytest
        from conftest import count
        @pytest.fixture(scope="module")
        def per_file():
            count("module-setups")
        @pytest.mark.parametrize("n", range(3))
        def test_uses_both(per_file, per_session, n): pass
    """,
    "test_d.py": "def test_too(per_session): pass",
}


def _write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))


def _pytest(folder: Path, *args: str, env_extra: dict | None = None, **popen):
    # A fixed width: the child's output must not depend on the terminal the suite runs in.
    env = {**os.environ, "PYTHONPATH": str(REPO), "PIDS": str(folder / "pids"), "COLUMNS": "80",
           **(env_extra or {})}
    env.pop("PYTEST_XDIST_WORKER", None)
    (folder / "pids").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "pytest", "-p", "tests.fork_workers", "-p", "no:cacheprovider", "-rA",
               "--rootdir", str(folder), *args, str(folder / "suite")]
    if popen:
        return subprocess.Popen(command, cwd=folder, env=env, **popen)
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_workers_report_through_pytest_and_run_each_file_whole(tmp_path):
    _write(tmp_path / "suite", SUITE)
    done = _pytest(tmp_path, "--fork-workers", "2", "--durations=3")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "fork workers: 2 [8 items]" in out
    assert out.count("%]") == 1  # one line of progress: the workers print nothing themselves
    assert "1 failed, 7 passed, 1 warning" in out
    assert "assert 1 == 2" in out and "captured in b" in out  # the failure, as pytest shows it
    assert "DeprecationWarning: b warns" in out  # the warnings summary
    assert "slowest 3 durations" in out
    pids = tmp_path / "pids"
    assert (pids / "a1").read_text() == (pids / "a2").read_text()  # one file, one worker
    assert len((pids / "module-setups").read_text().split()) == 1  # a module fixture: once for its file
    setups = (pids / "session-setups").read_text().split()
    assert len(setups) == len(set(setups)) <= 2  # a session fixture: once in each worker that asks for it, ...
    assert sorted((pids / "session-teardowns").read_text().split()) == sorted(setups)  # ... kept until its last file


def test_on_a_terminal_the_workers_print_nothing_themselves(tmp_path):
    """On a terminal a worker's own output would show at once (in a pipe it is block-buffered and lost at os._exit):
    only the collecting process prints: one progress line, one mark per test."""
    _write(tmp_path / "suite", SUITE)
    leader, follower = os.openpty()
    run = _pytest(tmp_path, "--fork-workers", "2", stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if not select.select([leader], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(leader, 1 << 16)
            except OSError:  # EIO: the run and its workers have all closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        run.wait(timeout=60)
    finally:
        os.close(leader)
        run.kill()
    out = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode("utf-8", "replace"))  # colours off
    assert run.returncode == 1, out
    assert "fork workers: 2 [8 items]" in out and "1 failed, 7 passed" in out
    (progress,) = [line for line in out.splitlines() if "%]" in line]
    assert len(re.findall(r"[.FE]", progress.split("[")[0])) == 8, progress  # each test once: the workers add none


def test_without_fork_workers_the_run_is_pytests_own(tmp_path):
    _write(tmp_path / "suite", SUITE)
    done = _pytest(tmp_path)
    assert done.returncode == 1 and "fork workers" not in done.stdout
    assert "1 failed, 7 passed, 1 warning" in done.stdout
    assert len((tmp_path / "pids" / "session-setups").read_text().split()) == 1


def test_each_worker_captures_its_own_output(tmp_path):
    _write(tmp_path / "suite", {f"test_{name}.py": f"""
        import time
        def test_prints():
            for _ in range(20):
                print("from {name}")
                time.sleep(0.01)
            assert False
    """ for name in ("p", "q")})
    out = _pytest(tmp_path, "--fork-workers", "2").stdout
    assert "2 failed" in out
    sections = re.findall(r"-+ Captured stdout call -+\n(.*?)(?:\n=|\n_)", out, re.DOTALL)
    assert sorted(sorted(set(section.split("\n"))) for section in sections) == [["from p"], ["from q"]], out


def test_a_worker_that_dies_loses_no_test_silently(tmp_path):
    _write(tmp_path / "suite", {
        "test_dies.py": """
            import os
            def test_before(): pass
            def test_exits(): os._exit(3)
            def test_after(): pass
        """,
        "test_other.py": "\n".join(f"def test_{i}(): pass" for i in range(4)),
    })
    done = _pytest(tmp_path, "--fork-workers", "2")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "2 failed, 5 passed" in out
    reason = r"this test did not finish: fork worker fw\d ended \(exit status 3\) while running " \
             r"suite/test_dies.py::test_exits"
    # The failure of each test the dead worker had not finished, counted above the short summary: its lines carry the
    # reason too when pytest sees a CI variable (it then does not truncate them) or a wide terminal.
    failures = out.split("short test summary info")[0]
    assert len(re.findall(reason, failures)) == 2
    assert "FAILED suite/test_dies.py::test_exits" in out and "FAILED suite/test_dies.py::test_after" in out


def test_x_stops_every_worker_after_the_first_failure(tmp_path):
    ran = """
        import os, pathlib, time
        def test_{name}(request):
            time.sleep(0.5)
            pathlib.Path(os.environ["PIDS"], request.node.name).touch()
    """
    _write(tmp_path / "suite", {
        "test_a.py": "def test_fails(): assert 0\n" + textwrap.dedent(ran.format(name="after_the_failure")),
        **{f"test_{f}.py": "".join(textwrap.dedent(ran.format(name=f"{f}{i}")) for i in range(3)) for f in "bcdef"},
    })
    done = _pytest(tmp_path, "--fork-workers", "2", "-x")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "stopping after 1 failures" in out and "1 failed" in out
    assert "did not finish" not in out  # tests never started are not run, as in pytest's own loop
    ran_tests = {p.name for p in (tmp_path / "pids").iterdir()}
    assert "test_after_the_failure" not in ran_tests  # the failing worker stops at once
    assert len(ran_tests) < 5  # the other worker stops after the test it was running (15 would run without -x)
    assert f"{len(ran_tests)} passed" in out


def test_workers_end_when_the_run_is_killed(tmp_path):
    _write(tmp_path / "suite", {f"test_{name}.py": """
        import os, pathlib, time
        def test_waits():
            pathlib.Path(os.environ["PIDS"], str(os.getpid())).touch()
            time.sleep(120)
    """ for name in ("one", "two")})
    run = _pytest(tmp_path, "--fork-workers", "2", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = tmp_path / "pids"
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [int(p.name) for p in pids.iterdir()]
    assert len(workers) == 2
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "a fork worker outlived the run"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_collection_error_stops_the_run_before_any_worker_starts(tmp_path):
    _write(tmp_path / "suite", {"test_ok.py": "def test_ok(): pass", "test_broken.py": "import no_such_module"})
    done = _pytest(tmp_path, "--fork-workers", "2")
    assert done.returncode == 2 and "1 error during collection" in done.stdout
    assert "fork workers" not in done.stdout


def test_a_bad_worker_count_is_a_usage_error(tmp_path):
    _write(tmp_path / "suite", {"test_ok.py": "def test_ok(): pass"})
    for value in ("two", "-1"):
        done = _pytest(tmp_path, "--fork-workers", value)
        assert done.returncode == 4 and "--fork-workers must be" in done.stderr, done.stdout + done.stderr
