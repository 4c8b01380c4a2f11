"""Frozen manifests kept content-addressed: `<store>/<task id>/<manifest sha256>/` holds manifest.json,
manifest.parquet and exclusions.csv.

Two stores, one layout:
* the registry's committed manifests (`registry.home` manifests_dir: `manifests/`), written by
  `python -m runner.sample.committed`, with `manifests/index.json` naming each task's committed manifest;
* a results folder's own (`<results dir>/manifests/`): the manifests filed results were scored on that the registry
  does not commit (MIMIC and the demo data are sampled at run time).
A filed result is verified against its manifest found in either; a manifest the registry commits is never copied
into a results folder, so each is stored once. A folder's name is its content hash: it is written once (a complete
temporary folder renamed into place) and never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

MANIFEST_FILES = ("manifest.parquet", "manifest.json", "exclusions.csv")
INDEX = "index.json"
RESULTS_STORE = "manifests"  # under a results folder


def manifest_folder(store: Path, task_id: str, sha256: str) -> Path:
    return Path(store) / task_id / sha256


def results_store(results_dir: Path) -> Path:
    return Path(results_dir) / RESULTS_STORE


def find_stored(stores: list[Path], task_id: str, sha256: str) -> Path | None:
    """The first store folder holding this task's manifest with this content hash, if any."""
    for store in stores:
        folder = manifest_folder(store, task_id, sha256)
        if (folder / "manifest.json").is_file():
            return folder
    return None


def store_manifest(store: Path, task_id: str, sha256: str, source: Path) -> Path:
    """Copy the manifest files of `source` into the store under their content hash (once: an existing folder of that
    hash is the same content and is kept as it is); returns the folder."""
    target = manifest_folder(store, task_id, sha256)
    if (target / "manifest.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}.", dir=target.parent))
    try:
        for name in MANIFEST_FILES:
            if (Path(source) / name).is_file():
                shutil.copyfile(Path(source) / name, scratch / name)
        try:
            os.rename(scratch, target)  # atomic; fails when another writer got there first (same content)
        except OSError:
            if not (target / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def read_index(manifests_dir: Path) -> dict[str, dict]:
    """{task id: {sha256, n_images}} of the committed manifests ({} when the registry commits none)."""
    path = Path(manifests_dir) / INDEX
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("manifests") or {})


def committed_folder(manifests_dir: Path, task_id: str) -> Path | None:
    """The folder of the task's committed manifest, if the registry commits one."""
    entry = read_index(manifests_dir).get(task_id)
    if not entry:
        return None
    folder = manifest_folder(manifests_dir, task_id, entry["sha256"])
    return folder if (folder / "manifest.json").is_file() else None
