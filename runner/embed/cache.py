"""Embedding cache on disk: content-addressed, memory-mapped, written atomically, safe for concurrent runs.

Layout: ROOT/<namespace>/shard-<checksum>.npy (float32, n x dim) + shard-<checksum>.keys.json (the n entry keys, in
row order, with the checksum and the write time).

* namespace = sha256 of (cache format, encoder card behaviour hash, preprocessing contract, what else made the
  embeddings: runner.embed.made_by.EncoderInputs — the sha256 of every weight file the encoder loads, a custom
  adapter's source files, the versions of the packages that change its numbers). Any change to a field of the
  encoder card that can change a number, to a weight file's bytes, to custom code or to one of those packages lands
  in a fresh namespace: old embeddings are never reused for it; a title or licence edit does not.
* entry key = sha256 of (dataset id, the data root's real path, image path relative to it, file size, mtime in ns,
  device and inode, augmentation id). Size + mtime is how make and rsync decide a file changed: it costs one stat()
  per image, whereas a content hash would re-read every file (MIMIC-CXR is 4.7 TB) on every run just to find out
  nothing changed. Root, device and inode say *which* file: a second data root with the same relative paths (and,
  after `cp -p`, the same sizes and mtimes) is other bytes and never hits the first one's embeddings. A copied,
  moved-to-another-disk or touched file is simply re-embedded (the safe direction).
* Each shard carries a checksum of its keys and rows (sha256 over the keys, the array's dtype and shape, and its
  bytes), written in its keys file with it and checked the first time the shard is read, over the bytes read then
  (the rows a run uses pass through the page cache once). A shard that cannot be what its keys file says (a torn or
  edited .npy, rows reversed, a byte flipped, a keys file that is not this format, rows that do not match its keys),
  whose rows are of another width than the encoder's, or that holds a NaN or Infinity (which `put` never stores) is
  named on stderr in one line and moved aside into quarantine/ (`_array` -> `_shard_problem` is the one place a
  shard is checked); its entries count as misses and are recomputed.
* `not_before_ns` (`runner eval --re-embed`: the time the command started) reads nothing written earlier: every
  embedding and recorded failure is computed again, once per command, and the new shards win over the old for every
  later reader (a keys file records when it was written; the newest shard holding a key is the one indexed).
* A shard is committed by its keys file: the .npy is written first (temp + os.replace), then the keys file the same
  way. Readers only index shards whose keys file exists, so a run killed at any moment leaves either a whole shard
  or an orphan .npy that is ignored (and overwritten by the next run that computes the same rows). Other rows for
  the same keys go to another shard name (the checksum), so a reader never pairs one write's .npy with another's keys.
* Images that cannot be decoded are remembered too (failed-<hash>.json: entry key -> reason): the same bytes fail
  the same way, so a rerun reports the exclusion again without decoding the file again.
* Writers hold a file lock (filelock) per namespace so two runs filling the same cache never interleave a shard.

Default root: $CXR_CACHE_DIR, else ~/.cache/cxr-registry. numba's compiled UMAP code goes under ROOT/numba unless
$NUMBA_CACHE_DIR is set (`numba_cache_dir`, runner.analysis.clustering).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from registry.card_memo import cache_root
from runner.runtime.atomic import atomic_write

if TYPE_CHECKING:
    from runner.embed.made_by import EncoderInputs

# 2: entry keys name the data root and the file (device, inode); 3: namespaces cover the weights' content, custom
# code and package versions, and each shard's keys file carries its checksum
CACHE_FORMAT = 3
QUARANTINE = "quarantine"


def default_cache_dir() -> Path:
    return cache_root()  # $CXR_CACHE_DIR, else ~/.cache/cxr-registry (registry.card_memo keeps card checks there too)


def numba_cache_dir() -> Path:
    """Where numba keeps the machine code it compiles (UMAP's): $NUMBA_CACHE_DIR when the user set it, else
    <cache root>/numba, beside the embeddings (numba's own default is next to the sources, in site-packages)."""
    return Path(os.environ.get("NUMBA_CACHE_DIR") or default_cache_dir() / "numba")


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


@dataclass(frozen=True)
class _Shard:
    """What a shard's keys file says about its rows: how many, their checksum, when they were written."""

    rows: int
    keys_sha256: str  # sha256 of the keys as written (canonical JSON list)
    checksum: str  # sha256 of keys_sha256, the array's dtype and shape, and its bytes (`_checksum`)
    written_ns: int


def _keys_sha256(keys: list[str]) -> str:
    return hashlib.sha256(json.dumps(keys, separators=(",", ":")).encode("utf-8")).hexdigest()


def _checksum(keys_sha256: str, array: np.ndarray) -> str:
    """sha256 binding a shard's rows to its keys: the keys' hash, dtype, shape, then the row bytes in C order."""
    digest = hashlib.sha256(f"{keys_sha256}|{array.dtype.str}|{list(array.shape)}|".encode())
    digest.update(memoryview(array).cast("B"))  # hashes the mapped pages in place (no copy); hashlib drops the GIL
    return digest.hexdigest()


def _read_keys_file(path: Path) -> tuple[list[str], _Shard]:
    """The keys and the _Shard a keys file records; ValueError or TypeError when it is not a keys file of this
    format."""
    meta = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"not a format-{CACHE_FORMAT} keys file with a checksum")
    keys, checksum, written = meta.get("keys"), meta.get("sha256"), meta.get("written_ns")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("its keys are not a list of keys")
    if not isinstance(checksum, str) or not isinstance(written, int) or isinstance(written, bool):
        raise TypeError("no checksum or write time")
    return keys, _Shard(len(keys), _keys_sha256(keys), checksum, written)


class EmbeddingCache:
    """Embeddings of one encoder (card + preprocessing contract + what made them), looked up by entry key.

    made_by: the weights, custom code and package versions the embeddings come from (runner.embed.made_by;
    `runner eval` always passes it: runner.embed.for_task.open_cache); None keys the cache by card and contract
    alone, for tests and caches nothing else reads (`runner audit`'s fresh folder, `runner bench`'s own).
    not_before_ns: read nothing written before this time (`runner eval --re-embed` passes the time the command
    started: module docstring). `hits` and `misses` count entries found / not found by `lookup`; `written` counts
    entries stored by `put`.
    """

    def __init__(self, encoder_sha256: str, contract: dict, root: Path | None = None,
                 made_by: EncoderInputs | None = None, not_before_ns: int = 0):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.made_by = made_by
        self.namespace = _sha256_json({"format": CACHE_FORMAT, "encoder": encoder_sha256, "contract": contract,
                                       "made_by": None if made_by is None else made_by.sha256})
        self.dir = self.root / self.namespace[:32]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.dir / ".lock"))
        self._not_before_ns = int(not_before_ns)  # --re-embed: entries written earlier are not read
        self._index: dict[str, tuple[str, int]] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._failed: dict[str, str] = {}
        self._shards: dict[str, _Shard] = {}  # indexed shards: what their keys files say
        self.quarantined: list[str] = []  # one message per shard moved aside
        self.hits = 0
        self.misses = 0
        self.written = 0
        self.refresh()

    def _index_shard(self, shard: str, keys: list[str], meta: _Shard) -> None:
        """Point each key at this shard unless a shard written later holds it (after --re-embed: the new rows)."""
        self._shards[shard] = meta
        for row, key in enumerate(keys):
            where = self._index.get(key)
            if where is None or self._shards[where[0]].written_ns <= meta.written_ns:
                self._index[key] = (shard, row)

    def refresh(self) -> None:
        """Index committed shards written since the last refresh (by this or another process)."""
        for keys_file in sorted(self.dir.glob("shard-*.keys.json")):
            shard = keys_file.name[: -len(".keys.json")]
            if shard in self._shards:
                continue
            try:
                keys, meta = _read_keys_file(keys_file)
            except (OSError, ValueError, TypeError) as exc:
                self._quarantine(shard, f"unreadable keys file ({str(exc)[:200]})")
                continue
            if meta.written_ns >= self._not_before_ns:
                self._index_shard(shard, keys, meta)
        for failed_file in self.dir.glob("failed-*.json"):
            try:
                if failed_file.stat().st_mtime_ns < self._not_before_ns:
                    continue
                failed = json.loads(failed_file.read_text(encoding="utf-8"))
                if not isinstance(failed, dict):
                    raise TypeError("not a mapping")
                self._failed.update({str(k): str(v) for k, v in failed.items()})
            except (OSError, ValueError, TypeError) as exc:
                self._quarantine(failed_file.name[: -len(".json")], f"unreadable failure record ({exc})")

    def _quarantine(self, shard: str, why: str) -> None:
        """Move a corrupt shard's files aside (never delete: the bytes may help find the cause), name it on stderr,
        and forget its entries so they are recomputed."""
        folder = self.dir / QUARANTINE
        folder.mkdir(exist_ok=True)
        for suffix in (".npy", ".keys.json", ".json"):
            source = self.dir / f"{shard}{suffix}"
            if source.exists():
                os.replace(source, folder / source.name)
        for key in [k for k, (s, _row) in self._index.items() if s == shard]:
            del self._index[key]
        self._arrays.pop(shard, None)
        self._shards.pop(shard, None)
        message = f"embedding cache shard {self.dir / shard} is corrupt: {why}; moved to {folder}, recomputing it"
        self.quarantined.append(message)
        print(f"warning: {message}", file=sys.stderr)

    def _array(self, shard: str, dim: int | None = None) -> np.ndarray | None:
        """The shard's rows (memory-mapped), or None after quarantining a shard that fails `_shard_problem`."""
        array = self._arrays.get(shard)
        try:
            if array is None:
                array = np.load(self.dir / f"{shard}.npy", mmap_mode="r", allow_pickle=False)
            problem = self._shard_problem(shard, array, dim)
        except (OSError, ValueError, EOFError) as exc:
            problem = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if problem:
            self._quarantine(shard, problem)
            return None
        self._arrays[shard] = array
        return array

    def _shard_problem(self, shard: str, array: np.ndarray, dim: int | None) -> str | None:
        """Why a shard's array cannot be the rows its keys file describes, `dim` wide (None: it is). Its shape is
        checked on every read (free), its content (finite rows, the checksum) the first time it is read."""
        meta = self._shards[shard]
        if array.ndim != 2 or array.dtype != np.float32 or array.shape[0] != meta.rows:
            return f"array of shape {array.shape} and dtype {array.dtype} for {meta.rows} keys"
        if dim is not None and array.shape[1] != dim:
            return f"rows {array.shape[1]} wide, the encoder's embeddings are {dim} wide"
        if shard in self._arrays:
            return None
        if not array.flags.c_contiguous:  # `put` writes C order; the checksum is over C-order bytes
            return "array not in C order"
        if not np.isfinite(array).all():  # `put` refuses them: a shard holding one was not written by it
            return f"{int((~np.isfinite(array)).any(axis=1).sum())} of its {array.shape[0]} rows hold NaN or Infinity"
        if _checksum(meta.keys_sha256, array) != meta.checksum:
            return "its rows or keys are not the ones written (checksum mismatch: reordered, edited or swapped)"
        return None

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
        """Store one batch as a shard, atomically, with its checksum (see the module docstring)."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(keys) != embeddings.shape[0]:
            raise ValueError(f"put: {len(keys)} keys for an array of shape {embeddings.shape}")
        if not np.isfinite(embeddings).all():
            raise ValueError("put: embeddings contain NaN or Infinity; refusing to cache them")
        keys = [str(k) for k in keys]
        keys_sha256 = _keys_sha256(keys)
        meta = _Shard(len(keys), keys_sha256, _checksum(keys_sha256, embeddings), time.time_ns())
        # Named by its checksum: other rows for the same keys (--re-embed, a GPU's bf16 noise in a concurrent run)
        # go to other files, so no reader ever pairs one write's .npy with another write's keys file.
        shard = "shard-" + meta.checksum[:32]
        record = {"format": CACHE_FORMAT, "keys": keys, "sha256": meta.checksum, "written_ns": meta.written_ns}
        with self._lock:
            atomic_write(self.dir / f"{shard}.npy", lambda f: np.save(f, embeddings))
            atomic_write(self.dir / f"{shard}.keys.json", lambda f: f.write(json.dumps(record).encode("utf-8")))
        self._arrays.pop(shard, None)  # a re-embedded shard of the same keys replaced the file
        self._index_shard(shard, keys, meta)
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
