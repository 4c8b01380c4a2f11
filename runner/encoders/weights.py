"""Find an encoder's weight files on disk (or fetch them at a pinned revision) and check their sha256 pins.

The card's `weights` block says what to find:

    weights:
      hf_repo: lion-ai/MedImageInsights         # optional: where to download from
      revision: 0123abc...                      # pinned commit (or tag) of hf_repo
      files: [2024.09.27/vision_model/medimageinsigt-v1.0.0.pt]   # paths inside the snapshot; "dir/" = a whole folder
      local_dir_env: MEDIMAGEINSIGHT_DIR        # optional: env var naming a local snapshot directory
      sha256: {2024.09.27/vision_model/medimageinsigt-v1.0.0.pt: "<64 hex>"}   # optional pins, per file
      sizes: {2024.09.27/vision_model/medimageinsigt-v1.0.0.pt: 2464060700}  # optional, bytes, checked first
      how_to_get: "accept the model's terms on its Hugging Face page first"    # optional note for the error message

Where files are looked for, first hit wins: the `--weights-dir` argument; the directory in `$<local_dir_env>`;
`$CXR_WEIGHTS_DIR/<encoder id>`; then the Hugging Face Hub (`hf_repo` at `revision`; only the local cache when
`HF_HUB_OFFLINE=1`). A missing file raises WeightsNotFoundError naming the file and how to get it; a hub that refuses
(gated repo without a granted request, private or unknown repo, unknown revision, file not in that revision) raises
WeightsAccessError saying which. A file whose size or sha256 differs from the card's pin stops the run with one line
naming the file and both values (the size first: it costs nothing, a 2.5 GB sha256 ~10 s).

What the weights *are* is their content: `weights_sha256(resolved, hashes)` gives the sha256 of every file the card
lists (a folder entry: every file under it), which keys the embedding cache and the run fingerprint and is recorded in
the result (runner.embed.made_by). `FileHashes` computes each file's sha256 once per version of the file and
remembers it by real path, size, mtime, ctime, device and inode, in memory and in a small index in the cache folder
(INDEX_NAME): a 2.4 GB checkpoint costs one read (~2-5 s) the first time and one stat() per later run. ctime is in
the stamp because it cannot be set back: a same-size file copied over the old one with `cp -p` (same inode, its mtime
restored) still changes it, so a changed file is always hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from runner.encoders.base import EncoderError, WeightsNotFoundError
from runner.runtime.atomic import atomic_write_bytes

INDEX_NAME = "weights-sha256.json"  # in the embedding cache folder: real path -> {stamp, sha256}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KNOWN: dict[tuple, str] = {}  # this process's hashes: (real path, *stamp) -> sha256
_HUB: dict[tuple, ResolvedWeights] = {}  # snapshots found on the hub by this process: one lookup per run, not two


class WeightsAccessError(WeightsNotFoundError):
    """The Hub answered but will not give the files: gated and not granted, private or unknown repo, unknown revision."""

    def __init__(self, message: str):
        EncoderError.__init__(self, message)
        self.what = message
        self.how_to_get = ""


@dataclass(frozen=True)
class ResolvedWeights:
    """Where an encoder's weight files are: `root / name` for each name in the card's `files`."""

    root: Path
    files: tuple[str, ...]
    source: str  # "local:<dir>" or "hf:<repo>@<revision>"

    def path(self, name: str | None = None) -> Path:
        """The path of one listed file (default: the first)."""
        return self.root / (name if name is not None else self.files[0]).rstrip("/")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def candidate_dirs(card: dict, weights_dir: Path | None) -> list[tuple[str, Path]]:
    spec = card.get("weights") or {}
    found: list[tuple[str, Path]] = []
    if weights_dir is not None:
        found.append(("--weights-dir", Path(weights_dir).expanduser()))
    env = spec.get("local_dir_env")
    if env and os.environ.get(env):
        found.append((f"${env}", Path(os.environ[env]).expanduser()))
    if os.environ.get("CXR_WEIGHTS_DIR"):
        found.append(("$CXR_WEIGHTS_DIR", Path(os.environ["CXR_WEIGHTS_DIR"]).expanduser() / card["id"]))
    return found


def how_to_get(card: dict, target: str = "DIR") -> str:
    """A copy-pasteable instruction for obtaining the card's weights."""
    spec = card.get("weights") or {}
    files = spec.get("files") or []
    parts = []
    if spec.get("hf_repo"):
        includes = " ".join(f"--include '{f}*'" if f.endswith("/") else f"--include '{f}'" for f in files)
        rev = f" --revision {spec['revision']}" if spec.get("revision") else ""
        parts.append(f"download with `hf download {spec['hf_repo']}{rev} {includes} --local-dir {target}`")
    where = "pass --weights-dir DIR"
    if spec.get("local_dir_env"):
        where += f" or set {spec['local_dir_env']}=DIR"
    parts.append(f"then {where} (or put it under $CXR_WEIGHTS_DIR/{card['id']})")
    if spec.get("how_to_get"):
        parts.append(spec["how_to_get"])
    return "; ".join(parts)


def _missing(root: Path, files: list[str]) -> list[str]:
    return [f for f in files if not (root / f.rstrip("/")).exists()]


def _hub_errors():
    """huggingface_hub's error classes (in .errors since 0.24, in .utils before)."""
    try:
        from huggingface_hub import errors
    except ImportError:  # pragma: no cover - huggingface_hub < 0.24
        from huggingface_hub import utils as errors
    return errors


def access_problem(exc: BaseException, repo: str, revision: str | None) -> str | None:
    """The one-line reason when a Hub error means "the Hub will not give these files", else None (offline, no
    network, not in the cache: the files are merely not available here)."""
    errors = _hub_errors()
    page = f"https://huggingface.co/{repo}"
    if isinstance(exc, errors.GatedRepoError):
        return (f"access not granted: {repo} is a gated repo and the Hugging Face account of this machine's token has "
                f"no granted access request; ask for access on {page}, wait for the grant, then `hf auth login`")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return (f"access refused: {repo} is not a repo this machine's Hugging Face token can see (misspelt, private, "
                "or not logged in: `hf auth login`)")
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"revision {revision!r} does not exist in {repo}; fix weights.revision in the card"
    remote_missing = getattr(errors, "RemoteEntryNotFoundError", None)
    if remote_missing is not None and isinstance(exc, remote_missing):
        return f"{repo} at revision {revision or 'main'} does not hold a file the card lists; fix weights.files"
    return None


def _from_hub(card: dict, files: list[str]) -> ResolvedWeights | None:
    spec = card.get("weights") or {}
    repo = spec.get("hf_repo")
    if not repo:
        return None
    # The cache key hashes the files found here and the model is built from them later in the same run: one lookup,
    # so both see the same snapshot even when a branch revision moves in between.
    memo = (repo, spec.get("revision"), tuple(files), _offline())
    if memo in _HUB and not _missing(_HUB[memo].root, files):
        return _HUB[memo]
    from huggingface_hub import snapshot_download

    patterns = [f + "*" if f.endswith("/") else f for f in files]
    try:
        root = snapshot_download(
            repo_id=repo,
            revision=spec.get("revision"),
            allow_patterns=patterns or None,
            local_files_only=_offline(),
        )
    except Exception as exc:  # noqa: BLE001 — offline, no network, not cached: "not available here"
        problem = access_problem(exc, repo, spec.get("revision"))
        if problem is not None:
            raise WeightsAccessError(f"encoder {card['id']!r}: {problem}") from None
        return None
    root = Path(root)
    if _missing(root, files):
        return None
    _HUB[memo] = ResolvedWeights(root, tuple(files), f"hf:{repo}@{spec.get('revision') or 'main'}")
    return _HUB[memo]


def weights_present(card: dict, weights_dir: Path | None = None) -> bool:
    """True when the card needs no weight files (built-ins, random-weight controls) or every file it lists is on this
    machine already: in a local candidate directory or the Hugging Face cache (nothing is downloaded)."""
    spec = card.get("weights") or {}
    if spec.get("random_init") or not spec.get("files"):
        return True
    return find_local(card, weights_dir) is not None


def find_local(card: dict, weights_dir: Path | None = None) -> ResolvedWeights | None:
    """Where every file the card lists already is on this machine (a local candidate directory, else the Hugging Face
    cache at the card's revision), without downloading or checking pins; None when not all of them are anywhere."""
    spec = card.get("weights") or {}
    files = list(spec.get("files") or [])
    for label, root in candidate_dirs(card, weights_dir):
        if root.is_dir() and not _missing(root, files):
            return ResolvedWeights(root, tuple(files), f"local:{root} ({label})")
    if not spec.get("hf_repo") or not files:
        return None
    try:
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(repo_id=spec["hf_repo"], revision=spec.get("revision"), local_files_only=True,
                                      allow_patterns=[f + "*" if f.endswith("/") else f for f in files]))
    except Exception:  # noqa: BLE001 - not in the cache (or no hub library): not present
        return None
    if _missing(root, files):
        return None
    return ResolvedWeights(root, tuple(files), f"hf-cache:{spec['hf_repo']}@{spec.get('revision') or 'main'}")


def resolve_weights(card: dict, weights_dir: Path | None = None, hashes: FileHashes | None = None) -> ResolvedWeights:
    """Locate every file the card's `weights.files` lists and verify its sha256 pin; see the module docstring.
    `hashes`: where pins are looked up before a file is read again (default: this process's memory only)."""
    spec = card.get("weights") or {}
    files = list(spec.get("files") or [])
    if not files:
        raise EncoderError(f"encoder card {card['id']!r} has no weights.files to load")
    for label, root in candidate_dirs(card, weights_dir):
        if root.is_dir() and not _missing(root, files):
            resolved = ResolvedWeights(root, tuple(files), f"local:{root}")
            break
        if label == "--weights-dir" or label.startswith("$") and label != "$CXR_WEIGHTS_DIR":
            # The user pointed at this directory on purpose: say what is missing there, don't fall through to a download.
            missing = _missing(root, files) if root.is_dir() else files
            raise WeightsNotFoundError(
                f"{missing[0]} for encoder {card['id']!r} not found in {root} ({label})", how_to_get(card, str(root))
            )
    else:
        resolved = _from_hub(card, files)
        if resolved is None:
            where = f"hf:{spec.get('hf_repo')}" + (" (HF_HUB_OFFLINE=1: cache only)" if _offline() else "")
            looked = [str(p) for _, p in candidate_dirs(card, weights_dir)] + ([where] if spec.get("hf_repo") else [])
            place = f"looked in {', '.join(looked)}" if looked else "no weights folder given, no hub repo in its card"
            raise WeightsNotFoundError(f"{files[0]} for encoder {card['id']!r} ({place})", how_to_get(card))
    verify_pins(resolved.root, spec, known=hashes)
    return resolved


def verify_pins(root: Path, spec: dict, hashes: bool = True, known: FileHashes | None = None) -> None:
    """Every pinned size (and, with `hashes`, sha256) of the card's `weights` block against the files under `root`;
    `known`: where a sha256 is looked up before the file is read again (FileHashes)."""
    for name, expected in (spec.get("sizes") or {}).items():
        verify_size(root / name, int(expected))
    if hashes:
        for name, expected in (spec.get("sha256") or {}).items():
            verify_sha256(root / name, expected, known)


def verify_size(path: Path, expected: int) -> None:
    actual = Path(path).stat().st_size
    if actual != expected:
        raise EncoderError(
            f"size mismatch for {path}: the card pins {expected:,} bytes, the file has {actual:,} "
            "(an interrupted download, or other weights than the card describes) — re-download it or fix the pin")


def weight_files(resolved: ResolvedWeights) -> list[tuple[str, Path]]:
    """(name, path) of every file the encoder loads: each listed file, and every file under a listed folder
    ("dir/"), named by its path under the weights root; sorted by name."""
    found: dict[str, Path] = {}
    for name in resolved.files:
        path = resolved.root / name.rstrip("/")
        if path.is_dir():
            for inner in path.rglob("*"):
                if inner.is_file():
                    found[inner.relative_to(resolved.root).as_posix()] = inner
        else:
            found[name] = path
    return sorted(found.items())


def weights_sha256(resolved: ResolvedWeights, hashes: FileHashes | None = None) -> dict[str, str]:
    """{name: sha256} of every file the encoder loads (weight_files); each file read at most once per version."""
    hashes = hashes or FileHashes()
    return {name: hashes.sha256(path) for name, path in weight_files(resolved)}


def _stamp(path: Path) -> tuple[str, list[int]]:
    """(real path, [size, mtime_ns, ctime_ns, device, inode]): what says a file is still the version once hashed."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return real, [int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns), int(st.st_dev), int(st.st_ino)]


class FileHashes:
    """sha256 of files, each computed once per version of the file (see the module docstring).

    folder: where the index file lives (the embedding cache folder); None: remembered in this process only.
    `computed` counts the files this object read in full (the rest came from memory or the index)."""

    def __init__(self, folder: Path | None = None):
        self.index = None if folder is None else Path(folder) / INDEX_NAME
        self.computed = 0

    def sha256(self, path: Path) -> str:
        try:
            real, stamp = _stamp(path)
        except OSError as exc:
            raise EncoderError(f"cannot read weight file {path}: {exc.strerror or exc}") from None
        if (real, *stamp) in _KNOWN:
            return _KNOWN[(real, *stamp)]
        entry = self._read().get(real)
        if isinstance(entry, dict) and entry.get("stamp") == stamp and _SHA256.match(str(entry.get("sha256"))):
            digest = entry["sha256"]
        else:
            try:
                digest = _read_sha256(real)
            except OSError as exc:
                raise EncoderError(f"cannot read weight file {path}: {exc.strerror or exc}") from None
            if _stamp(real)[1] != stamp:  # written to while being read: neither version's hash
                raise EncoderError(f"{path} changed while its sha256 was computed; run again once it is written")
            self.computed += 1
            self._remember(real, stamp, digest)
        _KNOWN[(real, *stamp)] = digest
        return digest

    def _read(self) -> dict:
        if self.index is None:
            return {}
        try:
            index = json.loads(self.index.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or unreadable: every file is hashed again and the index rewritten
            return {}
        return index if isinstance(index, dict) else {}

    def _remember(self, real: str, stamp: list[int], digest: str) -> None:
        if self.index is None:
            return
        self.index.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.index) + ".lock"):  # concurrent runs: read, merge and replace under one lock
            index = {path: entry for path, entry in self._read().items() if os.path.exists(path)}
            index[real] = {"stamp": stamp, "sha256": digest}
            atomic_write_bytes(self.index, json.dumps(index, sort_keys=True, indent=0).encode("utf-8"))


def _read_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path, hashes: FileHashes | None = None) -> str:
    """A file's sha256, read at most once per version of the file (FileHashes)."""
    return (hashes or FileHashes()).sha256(path)


def verify_sha256(path: Path, expected: str, hashes: FileHashes | None = None) -> None:
    """Stop the run when a pinned weight file's content is not the one the card names."""
    actual = sha256_file(path, hashes)
    if actual != expected.lower():
        raise EncoderError(
            f"sha256 mismatch for {path}: the card pins {expected.lower()}, the file has {actual} "
            "(other weights than the card describes) — re-download them or fix the pin"
        )


def load_state_dict(path: Path) -> dict:
    """A tensor dict from a .safetensors file, or a .pt/.pth/.bin state dict loaded with weights_only=True (never pickle)."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise EncoderError(f"{path} is a directory; the card's weights.files should name the weight file inside it")
    with open(path, "rb") as fh:
        head = fh.read(16)
    # safetensors: 8-byte little-endian header length, then a JSON header starting with "{" (names like .pt lie).
    if path.suffix == ".safetensors" or head[8:9] == b"{":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise EncoderError(f"cannot read {path} as safetensors: {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EncoderError(
            f"{path} is not a plain state dict (it may be a pickled model, which is never unpickled here): {exc}. "
            "Convert it once, where you trust it, to safetensors: "
            "`safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')`"
        ) from exc
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise EncoderError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj
