"""`make test`'s parallel runner: whole test files in N processes forked from the collected session
(`pytest --fork-workers N|auto`; tests/conftest.py loads this plugin; 0, the default, runs the usual serial loop).

Why not pytest-xdist's workers (the suite still runs under `-n`): each xdist worker is a new interpreter that imports
pytest, torch, scikit-learn and every test module and collects all 1163 tests again, ~7 CPU-s a worker before its
first test, and then imports the libraries its own tests need. A forked worker starts from the session that collected
once, with those modules already loaded (copy-on-write). On the 2-core machine beside two busy loops the suite took
327–346 s in 6 fork workers against 372 s in 6 xdist workers (docs/benchmarks.md, "Fifth round").

How it runs:
- Files are claimed whole and in collection order (tests/conftest.py puts the long files first and the real-site files
  last) from one counter in shared memory, so a file's module fixtures are built once and a free worker takes the next.
- A worker keeps its session fixtures from file to file (the last test of a file tears down to the session, not past
  it) and finalizes them when no file is left.
- Each worker sends its test reports, warnings and progress as JSON lines through a pipe; this process hands them to
  pytest's own hooks (pytest_report_from_serializable, pytest_runtest_logreport, pytest_warning_recorded), so the
  terminal, `--durations` and the exit status are pytest's own. Workers print nothing themselves.
- A worker that dies (a segfault, os._exit, the OOM killer) loses nothing silently: each test it had not finished is
  reported failed, saying which worker ended how and what it was running. Workers ignore Ctrl-C (this process stops
  them) and end when this process is killed (runner.runtime.signals.start_owned_worker).

`-x`/`--maxfail` count failures over all workers, as pytest's own loop does: once this process has seen enough, it
raises a flag in shared memory, and each worker finishes the test it is running, tears its fixtures down and claims
nothing more; the tests never started are not run (pytest's "stopping after N failures"). Forking is safe here because
collection starts no threads (the suite's threads and pools start inside tests, after the fork).
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import selectors
import signal
import sys
import warnings
from dataclasses import dataclass, field

import pytest
from _pytest.terminal import TerminalWriter

from runner.runtime.signals import start_owned_worker
from tests.worker_count import auto_workers

_WORKER_COUNT = pytest.StashKey[int]()


def pytest_addoption(parser):
    parser.getgroup("fork workers").addoption(
        "--fork-workers", default="0", metavar="N",
        help="run whole test files in N processes forked after collection; auto: tests/worker_count.py's count")


def fork_workers_requested(config) -> int:
    """How many workers --fork-workers asks for (0: none)."""
    value = str(config.getoption("fork_workers", "0"))
    if value == "auto":
        return auto_workers()
    try:
        count = int(value)
    except ValueError:
        raise pytest.UsageError(f"--fork-workers must be a number or 'auto', not {value!r}") from None
    if count < 0:
        raise pytest.UsageError(f"--fork-workers must be 0 or more, not {count}")
    return count


@dataclass
class _Worker:
    name: str
    pid: int
    fd: int
    pending: bytes = b""
    running: str | None = None  # the test it last started
    status: int | None = None  # its wait status once it has ended
    done: bool = False  # it said it had no file left


@dataclass
class _Run:
    files: list[list]  # the items of each file, in collection order
    stop: object  # a multiprocessing.Value, set to 1 once -x/--maxfail has seen enough failures in all the workers
    workers: list[_Worker] = field(default_factory=list)
    finished: set[str] = field(default_factory=set)  # tests whose teardown was reported


def pytest_sessionstart(session):
    """The worker count, read before collection: the real site's build (tests/conftest.py), which collection starts,
    would otherwise count as another process that wants the CPU (tests/worker_count.py)."""
    session.config.stash[_WORKER_COUNT] = fork_workers_requested(session.config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    config = session.config
    if config.option.collectonly or not session.items:
        return None
    if session.testsfailed and not config.option.continue_on_collection_errors:
        return None  # pytest's own loop stops with its collection-error message
    count = config.stash[_WORKER_COUNT]
    if count < 1:
        return None
    files: dict[str, list] = {}
    for item in session.items:
        files.setdefault(str(item.path), []).append(item)
    run = _Run(list(files.values()), multiprocessing.Value("i", 0))
    terminal = config.pluginmanager.getplugin("terminalreporter")
    if terminal is not None:
        terminal.showfspath = False  # files from several workers interleave: progress dots only
        terminal.write_line(f"fork workers: {min(count, len(run.files))} [{len(session.items)} items]")
    claim = multiprocessing.Value("i", 0)  # the index of the next file nobody has taken
    try:
        for index in range(min(count, len(run.files))):
            run.workers.append(_start_worker(session, run, claim, f"fw{index}"))
        _relay(session, run)
    except BaseException:  # Ctrl-C here (or a bug): stop the workers rather than leave them running
        for worker in run.workers:
            if worker.status is None:
                _stop(worker)
        raise
    _report_unfinished(session, run)
    return True


def _start_worker(session, run: _Run, claim, name: str) -> _Worker:
    read_end, write_end = os.pipe()
    sys.stdout.flush()  # what this process has buffered would otherwise be written again by the worker
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        code = 1
        try:
            os.close(read_end)
            for other in run.workers:
                os.close(other.fd)
            start_owned_worker(parent)
            code = _work(session, run, claim, os.fdopen(write_end, "w", buffering=1, encoding="utf-8"))
        except BaseException as error:  # noqa: BLE001 -- reported through stderr; the parent reports its tests
            print(f"fork worker {name}: {type(error).__name__}: {error}", file=sys.__stderr__, flush=True)
        finally:
            os._exit(code)
    os.close(write_end)
    return _Worker(name, pid, read_end)


def _work(session, run: _Run, claim, pipe) -> int:
    config = session.config
    _quiet_terminal(config)
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:  # its files were made before the fork: shared with every worker, so make this worker's own
        capture.stop_global_capturing()
        capture.start_global_capturing()
        capture.suspend_global_capture()
    config.pluginmanager.register(_Sender(config, pipe), "fork-worker-sender")
    while not _stopping(session, run) and (index := _claim(claim)) < len(run.files):
        items = run.files[index]
        for position, item in enumerate(items):
            if _stopping(session, run):
                break
            # The last test of a file tears down to the session: its module fixtures go, the session's stay for the
            # next file this worker claims.
            nextitem = items[position + 1] if position + 1 < len(items) else session
            config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
    session._setupstate.teardown_exact(None)  # the session fixtures (and a stopped file's), once no file is left
    pipe.write(json.dumps({"kind": "done"}) + "\n")
    pipe.close()
    return 0


def _stopping(session, run: _Run) -> bool:
    """-x/--maxfail has seen enough failures: this worker's own (its session counts them) or all workers' (the flag
    the collecting process raises)."""
    return bool(run.stop.value or session.shouldfail or session.shouldstop)


def _claim(claim) -> int:
    with claim.get_lock():
        index = claim.value
        claim.value += 1
    return index


def _quiet_terminal(config) -> None:
    """The worker's terminal reporter writes to /dev/null: the collecting process prints every report once. It stays
    registered, since pytest's assertion messages ask it for the terminal's settings."""
    terminal = config.pluginmanager.getplugin("terminalreporter")
    if terminal is not None:
        # the file stays open as long as the worker lives
        terminal._tw = TerminalWriter(open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


class _Sender:
    """In a worker: what pytest reports, as JSON lines to the collecting process."""

    def __init__(self, config, pipe):
        self.config = config
        self.pipe = pipe

    def _send(self, message: dict) -> None:
        self.pipe.write(json.dumps(message) + "\n")

    def pytest_runtest_logstart(self, nodeid, location):
        self._send({"kind": "logstart", "nodeid": nodeid, "location": location})

    def pytest_runtest_logreport(self, report):
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self._send({"kind": "report", "data": data})

    def pytest_runtest_logfinish(self, nodeid, location):
        self._send({"kind": "logfinish", "nodeid": nodeid, "location": location})

    def pytest_warning_recorded(self, warning_message, when, nodeid, location):
        message = warning_message.message
        self._send({"kind": "warning", "when": when, "nodeid": nodeid, "location": location,
                    "message": str(message), "category": _qualified(warning_message.category),
                    "filename": warning_message.filename, "lineno": warning_message.lineno})


def _qualified(category) -> str | None:
    return f"{category.__module__}:{category.__qualname__}" if category is not None else None


def _warning_category(name: str | None) -> type[Warning]:
    """The warning class by its "module:qualname" (UserWarning where it cannot be imported here)."""
    if name:
        module, _, qualname = name.partition(":")
        try:
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            if isinstance(found, type) and issubclass(found, Warning):
                return found
        except (ImportError, AttributeError):
            pass
    return UserWarning


def _relay(session, run: _Run) -> None:
    """Hand every worker's messages to pytest's hooks until every worker has ended; raise the stop flag once pytest's
    session (which counts the failures of all the workers) says -x/--maxfail has seen enough."""
    selector = selectors.DefaultSelector()
    for worker in run.workers:
        selector.register(worker.fd, selectors.EVENT_READ, worker)
    while selector.get_map():
        for key, _ in selector.select():
            worker = key.data
            chunk = os.read(worker.fd, 1 << 16)
            if not chunk:
                selector.unregister(worker.fd)
                os.close(worker.fd)
                worker.status = os.waitpid(worker.pid, 0)[1]
                continue
            *lines, worker.pending = (worker.pending + chunk).split(b"\n")
            for line in lines:
                _deliver(session.config, run, worker, json.loads(line))
            if session.shouldfail or session.shouldstop:
                run.stop.value = 1


def _deliver(config, run: _Run, worker: _Worker, message: dict) -> None:
    kind = message["kind"]
    if kind == "logstart":
        worker.running = message["nodeid"]
        config.hook.pytest_runtest_logstart(nodeid=message["nodeid"], location=tuple(message["location"]))
    elif kind == "report":
        report = config.hook.pytest_report_from_serializable(config=config, data=message["data"])
        config.hook.pytest_runtest_logreport(report=report)
        if report.when == "teardown":
            run.finished.add(report.nodeid)
    elif kind == "logfinish":
        config.hook.pytest_runtest_logfinish(nodeid=message["nodeid"], location=tuple(message["location"]))
    elif kind == "warning":
        category = _warning_category(message["category"])
        warning = warnings.WarningMessage(category(message["message"]), category, message["filename"],
                                          message["lineno"])
        location = tuple(message["location"]) if message["location"] else None
        config.hook.pytest_warning_recorded.call_historic(
            kwargs={"warning_message": warning, "when": message["when"], "nodeid": message["nodeid"],
                    "location": location})
    elif kind == "done":
        worker.done = True


def _report_unfinished(session, run: _Run) -> None:
    """Every test no worker finished, reported failed with the reason: a worker that died takes no test with it
    silently. After -x/--maxfail stopped the run, only the tests a dead worker was running: the others were never
    started, as in pytest's own loop."""
    config = session.config
    ended = [w for w in run.workers if not (w.done and w.status == 0)]
    stopped = session.shouldfail or session.shouldstop
    cut_short = {w.running for w in ended}
    for items in run.files:
        for item in items:
            if item.nodeid in run.finished or (stopped and item.nodeid not in cut_short):
                continue
            reason = "; ".join(f"fork worker {w.name} ended ({_describe(w.status)}) while running {w.running}"
                               for w in ended) or "no fork worker ran it"
            report = pytest.TestReport(item.nodeid, item.location, {}, "failed",
                                       f"this test did not finish: {reason}", "call")
            config.hook.pytest_runtest_logreport(report=report)


def _describe(status: int | None) -> str:
    if status is None:
        return "still running"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _stop(worker: _Worker) -> None:
    try:
        os.kill(worker.pid, signal.SIGTERM)
        worker.status = os.waitpid(worker.pid, 0)[1]
    except (ProcessLookupError, ChildProcessError):
        pass
