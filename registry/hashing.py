"""Canonical form and hash of a card (or any JSON value): sorted keys, no whitespace, UTF-8, NaN refused; the
sha256 of a file; and the bounded, in-memory memos that what is computed from cards, manifests and tables is kept in
for the life of a process, keyed by such fingerprints (never stored, never shared between processes).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from hashlib import sha256
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
