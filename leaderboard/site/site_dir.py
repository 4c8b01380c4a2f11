"""The site's output folder: `runner leaderboard build --out DIR` only ever deletes what it made.

A built site holds a marker file (MARKER) listing every file the build wrote. A rebuild removes exactly those files
and nothing else; a folder that is not empty and has no marker is refused, as is a folder that holds (or lies inside)
the registry's own folders, and a site sub-folder that is a symlink (it could point anywhere, the registry included).
Before this, `runner leaderboard build --out .` in the repo deleted `tasks/` and `encoders/`.

The marker is written when the folder is claimed, marked incomplete and listing the files that were someone else's
then; `commit` rewrites it complete, listing the build's files. A build killed in between leaves an incomplete marker:
the next build removes every file but those listed as someone else's (what the killed build wrote) and says so.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from runner.runtime.atomic import atomic_write_bytes

MARKER = ".cxr-leaderboard-site.json"
SUBDIRS = ("tasks", "encoders", "static", "results")
REGISTRY_FOLDERS = ("tasks", "encoders", "registry", "leaderboard", "runner", ".git")


class SiteDirError(Exception):
    """An output folder the site may not be written into; str() is the one-line message (exit 2)."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


class SiteDir:
    """An output folder claimed for one build: `claim` checks it and removes the previous build's files, `commit`
    writes the marker listing the files this build wrote."""

    def __init__(self, out: Path, before: set[str]):
        self.out, self.before = out, before

    @classmethod
    def claim(cls, out: Path, protected: list[Path]) -> SiteDir:
        out = Path(out)
        resolved = out.resolve()
        for root in {Path(p).resolve() for p in protected if p}:
            if _inside(root, resolved):
                raise SiteDirError(f"refusing to build the site into {out}: it holds the registry at {root}; "
                                   "pass --out a folder of its own (e.g. --out site)")
            for name in REGISTRY_FOLDERS:
                if (root / name).is_dir() and _inside(resolved, (root / name).resolve()):
                    raise SiteDirError(f"refusing to build the site into {out}: it is inside the registry's {name}/")
        if out.is_symlink() or any((out / sub).is_symlink() for sub in SUBDIRS):
            raise SiteDirError(f"refusing to build the site into {out}: it (or a sub-folder) is a symbolic link")
        if out.exists() and not out.is_dir():
            raise SiteDirError(f"--out {out} is a file, not a folder")
        marker = out / MARKER
        if out.is_dir() and any(out.iterdir()) and not marker.is_file():
            raise SiteDirError(f"refusing to build the site into {out}: the folder is not empty and was not made by "
                               f"`runner leaderboard build` (no {MARKER}); pass an empty or new folder")
        if marker.is_file():
            data = cls._marker(marker)
            if data.get("complete", True):
                removed = cls._safe(data.get("files", []))
            else:  # a killed build: all but the files that were someone else's when it began are its own
                kept = set(cls._safe(data.get("kept", [])))
                removed = sorted(cls._files(out) - kept)
                print(f"note: removed {len(removed)} file(s) in {out} left by an interrupted build of the site",
                      file=sys.stderr)
            for rel in removed:
                target = out / rel
                if target.is_file() and not target.is_symlink() and _inside(target.parent.resolve(), resolved):
                    target.unlink()
        out.mkdir(parents=True, exist_ok=True)
        site = cls(out, cls._files(out))
        site._write_marker({"made_by": "runner leaderboard build", "complete": False, "kept": sorted(site.before)})
        return site

    @staticmethod
    def _marker(marker: Path) -> dict:
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict):
            raise SiteDirError(f"{marker} is unreadable: delete the folder by hand if it is a site")
        return data

    @staticmethod
    def _safe(files) -> list[str]:
        files = files if isinstance(files, list) else []
        return [f for f in files if isinstance(f, str) and not Path(f).is_absolute() and ".." not in Path(f).parts]

    def _write_marker(self, data: dict) -> None:
        atomic_write_bytes(self.out / MARKER, (json.dumps(data, indent=1) + "\n").encode("utf-8"))

    @staticmethod
    def _files(out: Path) -> set[str]:
        found = set()
        for folder, _dirs, files in os.walk(out):
            for name in files:
                found.add((Path(folder) / name).relative_to(out).as_posix())
        return found - {MARKER}

    def commit(self) -> None:
        """Record the files this build wrote (not those someone else put there)."""
        made = sorted(self._files(self.out) - self.before)
        self._write_marker({"made_by": "runner leaderboard build", "complete": True, "files": made})
