"""What the card checks made of a valid card, kept on disk so that the next process does not check it again.

A registry load checks every card against its schema and fills its defaults (~0.3 CPU-s for ~160 cards); every
`runner` command loads the registry, so a session of commands (a walk-through, a test run) paid that each time.
registry.cards keeps the result in memory by the card's fingerprint (its kind and the sha256 of every file it was
resolved from); this module keeps the same entries under <cache root>/card-checks/<code>/, where <code> is the sha256
of everything else that decides them: the registry's own code and schemas, and the versions of Python, PyYAML,
jsonschema and referencing. An entry is used only when its file names and holds that very fingerprint and its
recorded card hash is the hash of the data it holds; anything else (a missing, unreadable, truncated or foreign file)
is a miss and the card is checked as if there were no entry. Only valid cards are remembered. Entries are JSON (the
code base unpickles nothing) and written whole (temp file, then rename), so two processes never see half an entry.
Every change of the registry's code starts a new <code> folder; the process that starts one removes all but the
KEEP_CODE_VERSIONS most recently written (a checkout switched back and forth keeps its entries, the cache stays small).

Cache root: $CXR_CACHE_DIR, else ~/.cache/cxr-registry (`cache_root`; runner.embed.cache keeps embeddings there).
The cache holds what this user's own runs computed, like the embeddings beside it: whoever can write there can
already change what a run reads.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from functools import cache
from hashlib import sha256
from pathlib import Path

from registry.hashing import canonical_json, fingerprint, installed_version, sha256_of

CACHE_ENV = "CXR_CACHE_DIR"
FORMAT = 1
PACKAGE_DIR = Path(__file__).resolve().parent
CHECK_PACKAGES = ("pyyaml", "jsonschema", "referencing")  # parse and validate cards
KEEP_CODE_VERSIONS = 4  # <code> folders kept, this one included


def cache_root() -> Path:
    """$CXR_CACHE_DIR, else ~/.cache/cxr-registry: where the runner caches what it computed."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cxr-registry")


@cache
def code_fingerprint() -> str:
    """sha256 of what, beside a card's own files, decides its check: the registry's code and schemas and the versions
    of Python and of the libraries that parse and validate it."""
    return fingerprint({"registry": PACKAGE_DIR}, {"python": sys.version, **{name: installed_version(name)
                                                                           for name in CHECK_PACKAGES}})


def _key_text(key: tuple) -> list[str]:
    """registry.cards' key (the kind, then each source file's sha256 digest as bytes) as JSON strings."""
    return [part.hex() if isinstance(part, bytes) else str(part) for part in key]


def _entry_path(key: tuple) -> Path:
    name = sha256(canonical_json([code_fingerprint(), *_key_text(key)]).encode("utf-8")).hexdigest()
    return cache_root() / "card-checks" / code_fingerprint()[:16] / f"{name}.json"


def recall_checked(key: tuple) -> tuple[dict, str, str] | None:
    """(filled data, card sha256, behaviour sha256) a process stored under `key`, or None."""
    try:
        entry = json.loads(_entry_path(key).read_text(encoding="utf-8"))
        if not (isinstance(entry, dict) and entry.get("format") == FORMAT and entry.get("code") == code_fingerprint()
                and entry.get("key") == _key_text(key)):
            return None
        filled, card_sha256, behaviour_sha256 = entry["filled"], entry["sha256"], entry["behaviour_sha256"]
        if not (isinstance(filled, dict) and isinstance(behaviour_sha256, str) and card_sha256 == sha256_of(filled)):
            return None
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return filled, card_sha256, behaviour_sha256


def remember_checked(key: tuple, value: tuple[dict, str, str]) -> None:
    """Store what the checks made of a valid card; nothing happens when the cache cannot be written, or when JSON
    would not give the data back exactly as it is (a non-string key, a tuple)."""
    filled, card_sha256, behaviour_sha256 = value
    try:
        text = json.dumps({"format": FORMAT, "code": code_fingerprint(), "key": _key_text(key), "filled": filled,
                           "sha256": card_sha256, "behaviour_sha256": behaviour_sha256}, ensure_ascii=False,
                          allow_nan=False)
        if not _same(json.loads(text)["filled"], filled):
            return
        path = _entry_path(key)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            _prune_code_folders(path.parent)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except (OSError, ValueError, TypeError, RecursionError):
        return


def _prune_code_folders(current: Path) -> None:
    """Remove the <code> folders beside `current` past the KEEP_CODE_VERSIONS most recently written. Another process
    may be reading or writing one of them: a file gone under it is a miss there, a failed removal here is left. Only
    real folders count: a link is not the cache's own and stays, with what it points to."""

    def written(folder: Path) -> float:
        try:
            return folder.stat().st_mtime
        except OSError:
            return 0.0

    folders = (f for f in current.parent.iterdir() if f.is_dir() and not f.is_symlink() and f != current)
    others = sorted(folders, key=written, reverse=True)
    for folder in others[KEEP_CODE_VERSIONS - 1:]:
        shutil.rmtree(folder, ignore_errors=True)


def _same(a, b) -> bool:
    """Equal with the same types all the way down (JSON gives back 1 for 1 and 1.0 for 1.0; a tuple comes back a
    list and a non-string key a string, which == would not always show)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
