"""Run a function in a fresh Python process and bring back its result: how TensorFlow encoders are kept apart.

Why: TensorFlow keeps the GPU memory it has mapped until its process ends, and it needs its CUDA-12 libraries on
LD_LIBRARY_PATH from the process's start (runner.encoders.tf_runtime). So `runner eval` evaluates each
(task, TensorFlow encoder) pair in a child process started with that environment, and the torch encoders after it
run in a parent process that never imported TensorFlow and gets the whole GPU back.

`call_in_child(func, *args)` pickles the call, starts `python -c` (the runner package this process runs first on
PYTHONPATH, then this process's sys.path), and returns what `func` returned there. An error the project raises there (a RegistryError) is raised
here with the same one-line message and exit code; anything else becomes one line naming its type; a child that
dies without answering (killed, out of memory, a native crash) is an EncoderError with its exit status.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

from registry import plugins
from registry.errors import RegistryError
from runner.encoders.base import EncoderError
from runner.encoders.tf_runtime import child_environment as tf_environment
from runner.runtime.signals import die_with_parent
from runner.runtime.signals import install as install_signal_handlers

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding runner/ (this checkout)


class ChildError(RegistryError):
    """An error raised in the child process: its message and exit code, carried over."""


def adapter_of(card: dict) -> type | None:
    """The card's adapter class (its module imported, not its framework); None when the name is unknown or its
    module cannot be imported: load_encoder names which when the run builds it."""
    try:
        return plugins.load("adapter", card.get("adapter", ""))
    except plugins.PluginError:
        return None


def framework_of(card: dict) -> str | None:
    """The framework the card's adapter runs on ("torch", "tensorflow"; None for numpy-only adapters)."""
    return getattr(adapter_of(card), "framework", None)


def needs_own_process(card: dict) -> bool:
    """TensorFlow encoders run in a child process (see the module docstring)."""
    return framework_of(card) == "tensorflow"


def child_environment(card: dict | None = None) -> dict[str, str]:
    """The child's environment: this process's, the runner package first on PYTHONPATH, and for a TensorFlow card
    TensorFlow's CUDA-12 libraries on LD_LIBRARY_PATH."""
    env = tf_environment() if card is None or needs_own_process(card) else dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def call_in_child(func, *args, env: dict[str, str] | None = None, what: str = "the child process",
                  quiet: bool = False, **kwargs):
    """func(*args, **kwargs) in a new Python process; its return value, or its error raised here (module docstring).

    quiet: the child's stderr goes nowhere (TensorFlow's C++ start-up lines, for a check whose answer says it all)."""
    # this process's import path first, so that the function's module is found there as it is here
    payload = pickle.dumps(list(sys.path)) + pickle.dumps((func, args, kwargs))
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import runner.encoders.isolation as i; i._child_main()", str(write_fd),
             str(os.getpid())],
            stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env if env is not None else child_environment(),
            stderr=subprocess.DEVNULL if quiet else None)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as answer:
            try:
                proc.stdin.write(payload)
                proc.stdin.close()
            except BrokenPipeError:  # the child died before reading its task; its exit status says more
                pass
            data = answer.read()
        status = proc.wait()
    except BaseException:  # Ctrl-C or SIGTERM here: the child goes too, then the interrupt goes on
        proc.terminate()
        proc.wait()
        raise
    if not data:
        how = f"signal {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
        raise EncoderError(f"{what} ended without an answer ({how}; out of memory or a crash in native code?)")
    kind, value = pickle.loads(data)
    if kind == "ok":
        return value
    if kind == "interrupted":
        raise KeyboardInterrupt(value)
    message, exit_code = value
    raise ChildError(message, exit_code=exit_code)


def _child_main() -> None:
    """In the child: read the pickled call from stdin, run it, write ("ok", value) or the error to the answer pipe."""
    install_signal_handlers()  # SIGTERM from the parent unwinds like Ctrl-C: files being written are discarded
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the whole group: the parent decides
    answer_fd = int(sys.argv[1])
    try:
        die_with_parent(int(sys.argv[2]))  # a parent killed with SIGKILL: SIGTERM here, which unwinds as above
        paths = pickle.load(sys.stdin.buffer)
        sys.path[:0] = [p for p in paths if p not in sys.path]
        func, args, kwargs = pickle.load(sys.stdin.buffer)
        outcome = ("ok", func(*args, **kwargs))
    except RegistryError as exc:
        outcome = ("error", (str(exc), exc.exit_code))
    except KeyboardInterrupt as exc:
        outcome = ("interrupted", str(exc))
    except Exception as exc:  # noqa: BLE001 - carried to the parent as one line, never a traceback
        outcome = ("error", (f"unexpected {type(exc).__name__}: {exc}", 1))
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - a return value that cannot be pickled
        data = pickle.dumps(("error", (f"the child's answer cannot be sent back: {exc}", 1)))
    try:
        with os.fdopen(answer_fd, "wb") as out:
            out.write(data)
    except BrokenPipeError:  # the parent is gone: nobody to answer
        pass
