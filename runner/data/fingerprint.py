"""The data fingerprint of a manifest: what proves a frozen sample still belongs to the files on disk.

Entry: `data_fingerprint(dataset_card, data_root, sampled) -> dict` (stored in manifest.json `data_fingerprint`) and
`fingerprint_differences(fingerprint, dataset_card, data_root) -> str | None` (None: the data root matches).

Recorded: the dataset id; the sha256 of every metadata table the reader read (relative to the data root, or to the
fallback package that shipped it); per sampled image its size and mtime, plus the sha256 of its bytes where sampling
read the file (verify decode or header: the bytes were just read, so hashing them again costs page-cache reads).

Not in the manifest's content sha256 (which hashes the rows only): sizes and mtimes differ between copies of the same
data set, and a committed manifest must hash the same on every machine. The fingerprint answers a different question,
"are these the files this manifest was drawn from?", and is checked whenever a manifest is reused (`runner eval`).

Matching rule on reuse: every table must hash the same; every recorded image must exist with the same size, and the
same content hash where one was recorded (else the same mtime). A stat() per image is the fast path; an image whose
mtime changed but whose size did not is hashed to tell a touched file from a changed one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from runner.data.tables import package_folder

FORMAT = 1
MAX_LISTED = 3  # differing files named in a message


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _table_entries(dataset_card: dict, data_root: Path, sources: dict[str, list[str]]) -> list[dict]:

    root = Path(data_root).resolve()
    entries = []
    for table, files in sorted(sources.items()):
        package = package_folder(dataset_card, table)
        for name in files:
            path = Path(name)
            if not path.is_file():  # e.g. a hub data set (hf://repo@revision): pinned by its revision instead
                entries.append({"table": table, "file": str(name), "in": "source", "sha256": None})
                continue
            resolved = path.resolve()
            if resolved.is_relative_to(root):
                where, rel = "data_root", resolved.relative_to(root).as_posix()
            elif package is not None and resolved.is_relative_to(package.resolve()):
                where, rel = "package", resolved.relative_to(package.resolve()).as_posix()
            else:
                where, rel = "source", str(name)
            entries.append({"table": table, "file": rel, "in": where, "sha256": file_sha256(resolved)})
    return entries


def _image_entry(data_root: Path, rel_path: str, read: bool) -> dict | None:
    path = Path(data_root) / rel_path
    try:
        st = path.stat()
    except (OSError, ValueError):  # absent (a metadata-only sample) or an invalid name
        return None
    entry = {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    if read and path.is_file():
        try:
            entry["sha256"] = file_sha256(path)
        except OSError:
            pass
    return entry


def data_fingerprint(dataset_card: dict, data_root: Path, sampled) -> dict:
    """The fingerprint of a `runner.sample.sampler.SampleResult` drawn from `data_root`."""
    read = sampled.verify in ("decode", "header")
    images = {str(image_id): _image_entry(data_root, str(rel), read)
              for image_id, rel in zip(sampled.frame["image_id"], sampled.frame["path"])}
    return {"format": FORMAT, "dataset_id": sampled.dataset_id,
            "tables": _table_entries(dataset_card, data_root, sampled.sources), "images": images}


def _table_path(entry: dict, dataset_card: dict, data_root: Path) -> Path | None:

    if entry["in"] == "data_root":
        return Path(data_root) / entry["file"]
    if entry["in"] == "package":
        package = package_folder(dataset_card, entry["table"])
        return None if package is None else package / entry["file"]
    return Path(entry["file"])


def _listed(items: list[str], total: int, what: str) -> str:
    shown = ", ".join(items[:MAX_LISTED]) + (f", … ({total - MAX_LISTED} more)" if total > MAX_LISTED else "")
    return f"{total} {what} ({shown})"


def fingerprint_differences(fingerprint: dict | None, dataset_card: dict, data_root: Path, frame) -> str | None:
    """What differs between a manifest's recorded data and `data_root` now (one line); None when it matches."""
    if not isinstance(fingerprint, dict) or fingerprint.get("format") != FORMAT:
        return "the manifest records no data fingerprint (it predates them, or was written by hand)"
    if fingerprint.get("dataset_id") != dataset_card.get("id"):
        return f"it was sampled from dataset {fingerprint.get('dataset_id')!r}, not {dataset_card.get('id')!r}"
    problems = []
    tables = []
    for entry in fingerprint.get("tables") or []:
        if entry.get("sha256") is None:
            continue
        path = _table_path(entry, dataset_card, data_root)
        try:
            actual = file_sha256(path) if path is not None else None
        except OSError:
            actual = None
        if actual != entry["sha256"]:
            tables.append(f"{entry['file']} {'missing' if actual is None else 'changed'}")
    if tables:
        problems.append(_listed(tables, len(tables), "metadata table(s) differ"))
    missing, changed = [], []
    images = fingerprint.get("images") or {}
    for image_id, rel in zip(frame["image_id"].astype(str), frame["path"].astype(str)):
        recorded = images.get(image_id)
        if recorded is None:
            continue  # not on disk when sampled (metadata-only): exclusions and the budget deal with it at embedding
        path = Path(data_root) / rel
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            missing.append(rel)
            continue
        touched = st.st_mtime_ns != recorded["mtime_ns"]
        if st.st_size != recorded["size"] or (touched and (recorded.get("sha256") is None
                                                          or file_sha256(path) != recorded["sha256"])):
            changed.append(rel)
    if missing:
        problems.append(_listed(missing, len(missing), f"of {len(frame)} image(s) missing"))
    if changed:
        problems.append(_listed(changed, len(changed), f"of {len(frame)} image(s) changed"))
    return "; ".join(problems) or None
