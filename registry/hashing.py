"""Canonical form and hash of a card (or any JSON value): sorted keys, no whitespace, UTF-8, NaN refused; the
sha256 of a file; the fingerprint of code (its files and the versions of the packages it relies on); and the
bounded, in-memory memos that what is computed from cards, manifests and tables is kept in for the life of a process,
keyed by such fingerprints (never stored, never shared between processes).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from hashlib import sha256
from importlib import metadata
from pathlib import Path


def canonical_json(obj) -> str:
    """Sorted keys, no whitespace, UTF-8 text, NaN refused: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_of(obj) -> str:
    return sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MB blocks (hashlib.file_digest is Python 3.11+)."""
    digest = sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The packages' code and their JSON Schemas; not the data filed inside them (leaderboard/results/*.json): filing a
# result must not change the fingerprint of the code that filed it.
CODE_PATTERNS = ("*.py", "*.schema.json")


def fingerprint(roots: dict[str, Path], versions: dict[str, str | None]) -> str:
    """sha256 over the code files (CODE_PATTERNS) under each {package name: folder}, by their path in the package,
    and the {package: version or None (absent)} that decide what the code computes."""
    digest = sha256()
    for package, root in roots.items():
        files = {p for pattern in CODE_PATTERNS for p in Path(root).rglob(pattern) if p.is_file()}
        for file in sorted(files):
            digest.update(f"{package}/{file.relative_to(root).as_posix()}\0".encode())
            digest.update(file.read_bytes())
    for name, version in versions.items():
        digest.update((f"{name}=={version}\0" if version is not None else f"{name} absent\0").encode())
    return digest.hexdigest()


def installed_version(name: str) -> str | None:
    """The installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def recall(memo: OrderedDict, key):
    """What `remember` kept under `key` (now the most recently used), or None."""
    if key not in memo:
        return None
    memo.move_to_end(key)
    return memo[key]


def remember(memo: OrderedDict, key, value, limit: int):
    """Keep `value` under `key`, forgetting the least recently used entries beyond `limit`; returns `value`."""
    memo[key] = value
    memo.move_to_end(key)
    while len(memo) > limit:
        memo.popitem(last=False)
    return value
