"""Which manifest each task is scored on: the registry pins one per task behaviour, and accepts no other.

* A task whose manifest the registry commits (manifests/index.json, runner.sample.committed) accepts only that one.
* A task sampled at run time (MIMIC is credentialed; the demo data are made by code) is pinned by the first manifest a
  result is filed with: `<results dir>/manifests/pins.json` records {task id: {task behaviour sha256: manifest
  sha256}}, and the manifest itself is stored content-addressed beside it (runner.sample.store). A different manifest
  for the same task behaviour is refused, naming what differs, until the task card changes (a new behaviour hash pins
  a new manifest). Pins are only ever added, never overwritten.

Entry: `pinned_manifest(task_card, registry, results_dir) -> Pin`; `pin(task_card, results_dir, manifest)` records a
first filing; `describe_difference(pinned, other)` says how two samples of a task differ; `read_stored(folder)` reads
a stored manifest (parsed and checked once per process for the same bytes).
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from registry.errors import RegistryError
from registry.hashing import file_sha256, recall, remember
from runner.runtime.atomic import atomic_write_bytes
from runner.sample.manifest import Manifest, ManifestError, read_manifest
from runner.sample.store import find_stored, read_index, results_store

PINS = "pins.json"


class PinError(RegistryError):
    """The registry's pins cannot be read or written; str() says which file and why."""

    exit_code = 1


@dataclass(frozen=True)
class Pin:
    """The manifest a task accepts: its sha256 and where it came from (None: nothing pinned yet)."""

    sha256: str | None
    source: str  # committed | filed | none | stale (a committed manifest of an older card: refreeze)
    folder: Path | None = None
    # the manifest as pinned_manifest read (and checked) it just now, so that load() does not read it twice
    read: Manifest | None = field(default=None, compare=False, repr=False)

    def load(self) -> Manifest | None:
        if self.read is not None:
            return self.read
        return read_stored(self.folder) if self.folder is not None else None


_CHECKED: OrderedDict[tuple, Manifest] = OrderedDict()  # (folder, sha256 of each file) -> the manifest read_manifest
CHECKED_MAX = 64                                         # read and checked from exactly those bytes


def _file_digests(folder: Path) -> tuple[str, str]:
    return tuple(file_sha256(folder / name) for name in ("manifest.json", "manifest.parquet"))


def read_stored(folder: Path) -> Manifest:
    """read_manifest(folder), parsed and checked once per process for the same bytes: a build verifies every result
    of a task against the same pinned manifest (~40 ms to parse, canonicalise and hash again). Kept only when both
    files hash the same before and after the read; each caller gets its own copy."""
    folder = Path(folder)
    try:
        key = (str(folder.resolve()), *_file_digests(folder))
    except OSError:  # missing or unreadable: read_manifest says what is wrong
        return read_manifest(folder)
    kept = recall(_CHECKED, key)
    if kept is None:
        manifest = read_manifest(folder)
        if key[1:] != _file_digests(folder):  # changed while it was read: use it, do not keep it
            return manifest
        kept = remember(_CHECKED, key, manifest, CHECKED_MAX)
    return Manifest(kept.frame.copy(), copy.deepcopy(kept.meta))


def _pins_path(results_dir: Path) -> Path:
    return results_store(results_dir) / PINS


def read_pins(results_dir: Path) -> dict[str, dict[str, str]]:
    path = _pins_path(results_dir)
    if not path.is_file():
        return {}
    try:
        pins = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PinError(f"{path}: unreadable ({exc})") from None
    if not isinstance(pins, dict) or not all(isinstance(v, dict) for v in pins.values()):
        raise PinError(f"{path}: expected {{task id: {{task behaviour sha256: manifest sha256}}}}")
    return pins


def pinned_manifest(task_card, registry, results_dir: Path) -> Pin:
    """The manifest `task_card` accepts under `registry` with filed results in `results_dir`."""
    committed = read_index(registry.home.manifests_dir).get(task_card.id)
    if committed:
        folder = find_stored([registry.home.manifests_dir], task_card.id, committed["sha256"])
        if folder is None:
            raise PinError(f"task {task_card.id!r}: manifests/index.json names {committed['sha256'][:12]}…, which "
                           f"is not in {registry.home.manifests_dir}")
        try:
            manifest = read_stored(folder)
        except ManifestError as exc:
            raise PinError(str(exc)) from None
        if manifest.meta.get("task_sha256") != task_card.behaviour_sha256:
            return Pin(None, "stale", folder)
        return Pin(committed["sha256"], "committed", folder, manifest)
    sha = read_pins(results_dir).get(task_card.id, {}).get(task_card.behaviour_sha256)
    if sha is None:
        return Pin(None, "none")
    folder = find_stored([results_store(results_dir)], task_card.id, sha)
    if folder is None:
        raise PinError(f"task {task_card.id!r}: {_pins_path(results_dir)} pins {sha[:12]}…, which is not stored in "
                       f"{results_store(results_dir)}")
    return Pin(sha, "filed", folder)


def pin(task_card, results_dir: Path, manifest_sha256: str) -> None:
    """Record a first filing's manifest as the task's pin for its current behaviour (never replacing one)."""
    pins = read_pins(results_dir)
    have = pins.setdefault(task_card.id, {})
    if have.get(task_card.behaviour_sha256) not in (None, manifest_sha256):
        raise PinError(f"task {task_card.id!r} is already pinned to another manifest")
    have[task_card.behaviour_sha256] = manifest_sha256
    path = _pins_path(results_dir)
    atomic_write_bytes(path, (json.dumps(pins, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def describe_difference(pinned: Manifest, other: Manifest) -> str:
    """How a manifest differs from the pinned one, in counts (images, labels, folds, pinned fields)."""
    parts = []
    for key in ("task_id", "label", "split", "eval_folds"):
        if pinned.meta.get(key) != other.meta.get(key):
            parts.append(f"{key} {other.meta.get(key)!r} instead of {pinned.meta.get(key)!r}")
    mine = pinned.frame.set_index("image_id")
    theirs = other.frame.set_index("image_id")
    only_pinned, only_other = mine.index.difference(theirs.index), theirs.index.difference(mine.index)
    if len(only_other) or len(only_pinned):
        parts.append(f"{len(only_other)} image(s) not in the pinned sample and {len(only_pinned)} of it missing "
                     f"(e.g. {(list(only_other) or list(only_pinned))[0]!r})")
    common = mine.index.intersection(theirs.index)
    for column in ("label", "fold", "patient_id"):
        changed = int((mine.loc[common, column].astype(str) != theirs.loc[common, column].astype(str)).sum())
        if changed:
            parts.append(f"{changed} image(s) with another {column}")
    return "; ".join(parts) or "the same rows under another hash"
