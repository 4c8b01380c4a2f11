"""Canonical form and hash of a card (or any JSON value): sorted keys, no whitespace, UTF-8, NaN refused.
"""

from __future__ import annotations

import json
from hashlib import sha256


def canonical_json(obj) -> str:
    """Sorted keys, no whitespace, UTF-8 text, NaN refused: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_of(obj) -> str:
    return sha256(canonical_json(obj).encode("utf-8")).hexdigest()
