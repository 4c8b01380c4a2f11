"""Atomic file writes: a temp file in the same folder, flushed to disk, then renamed over the target.

A reader never sees a half-written file, and a run killed mid-write leaves at most a stray `.NAME.*.tmp` file that
nothing reads. Every stage that writes an artifact (cache shards, manifests, predictions, results) goes through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(handle)` on a temp file beside `path`, then atomically replace `path` with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))
