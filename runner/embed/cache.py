"""Embedding cache on disk: content-addressed, memory-mapped, written atomically, safe for concurrent runs.

Layout: ROOT/<namespace>/shard-<hash>.npy (float32, n x dim) + shard-<hash>.keys.json (the n entry keys, in row order).

* namespace = sha256 of (cache format, encoder card behaviour hash, preprocessing contract). Any change to a field of
  the encoder card that can change a number lands in a fresh namespace: old embeddings are never reused for it; a
  title or licence edit does not.
* entry key = sha256 of (dataset id, the data root's real path, image path relative to it, file size, mtime in ns,
  device and inode, augmentation id). Size + mtime is how make and rsync decide a file changed: it costs one stat()
  per image, whereas a content hash would re-read every file (MIMIC-CXR is 4.7 TB) on every run just to find out
  nothing changed. Root, device and inode say *which* file: a second data root with the same relative paths (and,
  after `cp -p`, the same sizes and mtimes) is other bytes and never hits the first one's embeddings. A copied,
  moved-to-another-disk or touched file is simply re-embedded (the safe direction).
* A shard that cannot be read (a torn or edited .npy, a keys file that is not a JSON list, rows that do not match its
  keys, rows of another width than the encoder's, a NaN or Infinity, which `put` never stores) is named on stderr
  and moved aside into quarantine/; its entries count as misses and are recomputed.
* A shard is committed by its keys file: the .npy is written first (temp + os.replace), then the keys file the same
  way. Readers only index shards whose keys file exists, so a run killed at any moment leaves either a whole shard
  or an orphan .npy that is ignored (and overwritten by the next run that computes the same batch).
* Images that cannot be decoded are remembered too (failed-<hash>.json: entry key -> reason): the same bytes fail
  the same way, so a rerun reports the exclusion again without decoding the file again.
* Writers hold a file lock (filelock) per namespace so two runs filling the same cache never interleave a shard.

Default root: $CXR_CACHE_DIR, else ~/.cache/cxr-registry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from runner.runtime.atomic import atomic_write

CACHE_FORMAT = 2  # 2: entry keys name the data root and the file (device, inode)
QUARANTINE = "quarantine"


def default_cache_dir() -> Path:
    return Path(os.environ.get("CXR_CACHE_DIR") or Path.home() / ".cache" / "cxr-registry")


def _sha256_json(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ImageIdentity:
    """What identifies an image's bytes for caching (see the module docstring for why size + mtime)."""

    dataset_id: str
    path: str  # relative to the data root, POSIX
    size: int
    mtime_ns: int
    root: str = ""  # the data root's real path
    device: int = 0
    inode: int = 0

    @classmethod
    def of_file(cls, dataset_id: str, data_root: Path, rel_path: str) -> ImageIdentity:
        st = (Path(data_root) / rel_path).stat()
        return cls(dataset_id, rel_path, int(st.st_size), int(st.st_mtime_ns), os.path.realpath(data_root),
                   int(st.st_dev), int(st.st_ino))

    def key(self, augmentation: str = "original") -> str:
        return _sha256_json([self.dataset_id, self.root, self.path, self.size, self.mtime_ns, self.device, self.inode,
                             augmentation])


class EmbeddingCache:
    """Embeddings of one encoder (card + preprocessing contract), looked up by entry key.

    `hits` and `misses` count entries found / not found by `lookup`; `written` counts entries stored by `put`.
    """

    def __init__(self, encoder_sha256: str, contract: dict, root: Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.namespace = _sha256_json({"format": CACHE_FORMAT, "encoder": encoder_sha256, "contract": contract})
        self.dir = self.root / self.namespace[:32]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.dir / ".lock"))
        self._index: dict[str, tuple[str, int]] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._indexed_shards: set[str] = set()
        self._failed: dict[str, str] = {}
        self._rows: dict[str, int] = {}  # shard -> number of keys (rows its array must have)
        self.quarantined: list[str] = []  # one message per shard moved aside
        self.hits = 0
        self.misses = 0
        self.written = 0
        self.refresh()

    def refresh(self) -> None:
        """Index committed shards written since the last refresh (by this or another process)."""
        for keys_file in sorted(self.dir.glob("shard-*.keys.json")):
            shard = keys_file.name[: -len(".keys.json")]
            if shard in self._indexed_shards:
                continue
            try:
                keys = json.loads(keys_file.read_text(encoding="utf-8"))
                if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                    raise ValueError("the keys file is not a list of keys")
            except (OSError, ValueError) as exc:
                self._quarantine(shard, f"unreadable keys file ({exc})")
                continue
            for row, key in enumerate(keys):
                self._index.setdefault(key, (shard, row))
            self._rows[shard] = len(keys)
            self._indexed_shards.add(shard)
        for failed_file in self.dir.glob("failed-*.json"):
            try:
                failed = json.loads(failed_file.read_text(encoding="utf-8"))
                if not isinstance(failed, dict):
                    raise TypeError("not a mapping")
                self._failed.update({str(k): str(v) for k, v in failed.items()})
            except (OSError, ValueError, TypeError) as exc:
                self._quarantine(failed_file.name[: -len(".json")], f"unreadable failure record ({exc})")

    def _quarantine(self, shard: str, why: str) -> None:
        """Move a corrupt shard's files aside (never delete: the bytes may help find the cause), name it on stderr,
        and forget its entries so they are recomputed."""
        import sys

        folder = self.dir / QUARANTINE
        folder.mkdir(exist_ok=True)
        for suffix in (".npy", ".keys.json", ".json"):
            source = self.dir / f"{shard}{suffix}"
            if source.exists():
                os.replace(source, folder / source.name)
        for key in [k for k, (s, _row) in self._index.items() if s == shard]:
            del self._index[key]
        self._arrays.pop(shard, None)
        self._indexed_shards.discard(shard)
        message = f"embedding cache shard {self.dir / shard} is corrupt: {why}; moved to {folder}, recomputing it"
        self.quarantined.append(message)
        print(f"warning: {message}", file=sys.stderr)

    def _array(self, shard: str, dim: int | None = None) -> np.ndarray | None:
        """The shard's rows (memory-mapped), or None after quarantining a shard that cannot be what its keys say
        (or whose rows are not `dim` wide, or not all finite: `put` stores neither)."""
        if shard not in self._arrays:
            try:
                array = np.load(self.dir / f"{shard}.npy", mmap_mode="r", allow_pickle=False)
                if array.ndim != 2 or array.dtype != np.float32 or array.shape[0] != self._rows.get(shard, -1):
                    raise ValueError(f"array of shape {array.shape} and dtype {array.dtype} for "
                                     f"{self._rows.get(shard)} keys")
                if not np.isfinite(array).all():
                    raise ValueError(f"{int((~np.isfinite(array)).any(axis=1).sum())} of its {array.shape[0]} rows "
                                     "hold NaN or Infinity")
            except (OSError, ValueError, EOFError) as exc:
                self._quarantine(shard, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
                return None
            self._arrays[shard] = array
        array = self._arrays[shard]
        if dim is not None and array.shape[1] != dim:
            self._quarantine(shard, f"rows {array.shape[1]} wide, the encoder's embeddings are {dim} wide")
            return None
        return array

    def lookup(self, keys: list[str], dim: int | None = None) -> dict[str, np.ndarray]:
        """The cached embeddings among `keys` (memory-mapped rows); counts hits and misses. `dim`: the encoder's
        embedding width; a shard of another width is quarantined (its entries are misses)."""
        found = {}
        for key in keys:
            where = self._index.get(key)
            if where is None:
                continue
            array = self._array(where[0], dim)
            if array is None:
                continue
            found[key] = array[where[1]]
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def put(self, keys: list[str], embeddings: np.ndarray) -> None:
        """Store one batch as a shard, atomically (see the module docstring)."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(keys) != embeddings.shape[0]:
            raise ValueError(f"put: {len(keys)} keys for an array of shape {embeddings.shape}")
        if not np.isfinite(embeddings).all():
            raise ValueError("put: embeddings contain NaN or Infinity; refusing to cache them")
        shard = "shard-" + _sha256_json(keys)[:32]
        with self._lock:
            atomic_write(self.dir / f"{shard}.npy", lambda f: np.save(f, embeddings))
            atomic_write(
                self.dir / f"{shard}.keys.json", lambda f: f.write(json.dumps(keys).encode("utf-8"))
            )
        for row, key in enumerate(keys):
            self._index.setdefault(key, (shard, row))
        self._indexed_shards.add(shard)
        self.written += len(keys)


    def failure(self, key: str) -> str | None:
        """The recorded reason this entry could not be computed, or None."""
        return self._failed.get(key)

    def put_failures(self, reasons: dict[str, str]) -> None:
        """Remember entries that cannot be computed (key -> reason), atomically, as one file."""
        if not reasons:
            return
        name = "failed-" + _sha256_json(sorted(reasons.items()))[:32] + ".json"
        with self._lock:
            atomic_write(self.dir / name, lambda f: f.write(json.dumps(reasons, sort_keys=True).encode("utf-8")))
        self._failed.update(reasons)
