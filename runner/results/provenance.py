"""Which code made a result: a sha256 of the registry's own code, and the git commit and state where git is there.

Entries:
* `code_fingerprint()`: sha256 over every .py and JSON Schema file of the registry's packages (runner, registry,
  leaderboard; not the results filed inside leaderboard/) and the versions of the packages that compute numbers.
  Regeneration records key on it (leaderboard.filing.verified), and every result records it (`code_provenance`).
* `git_state(repo, paths)`: (HEAD commit, whether a file under `paths` differs from it or is new) of the repository
  holding the code; (None, None) without git or outside a repository.
* `code_provenance()`: the result's `code` block, {sha256, git_commit, git_dirty}. The sha256 identifies the code even
  when the tree was dirty or git is absent (an installed wheel); the commit says where to find it.
* `code_of(result)`: the code block of a filed result, read from the older `environment.git_commit` for results filed
  before the block existed (commit and dirty flag, no sha256).
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import util
from pathlib import Path

from registry.hashing import CODE_PATTERNS, fingerprint, installed_version

PACKAGES = ("runner", "registry", "leaderboard")  # the registry's code
NUMERIC_PACKAGES = ("numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "lightgbm")  # change numbers


def package_root(name: str) -> Path:
    """The folder of a top-level package, found without importing it (runner must not import the leaderboard)."""
    spec = util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {name!r} not found")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the registry's own code and schemas, and the versions of the packages that compute numbers."""
    return fingerprint({package: package_root(package) for package in PACKAGES},
                       {name: installed_version(name) for name in NUMERIC_PACKAGES})


def git_state(repo: Path, paths: tuple[str, ...] = (".",)) -> tuple[str | None, bool | None]:
    """(HEAD commit, dirty) of the git repository at `repo`; dirty = a file under the git pathspecs `paths` differs
    from HEAD or is new and not ignored (so a clean state means HEAD holds exactly those files). (None, None)
    without git or outside a repository."""

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10,
                              check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None, None
        status = git("status", "--porcelain", "--untracked-files=all", "--", *paths)
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head.stdout.strip(), (bool(status.stdout.strip()) if status.returncode == 0 else None)


def code_paths() -> tuple[str, ...]:
    """Git pathspecs of the files code_fingerprint reads (relative to the repository holding the packages)."""
    return tuple(f":(glob){package}/**/{pattern}" for package in PACKAGES for pattern in CODE_PATTERNS)


@lru_cache(maxsize=1)
def code_provenance() -> dict:
    """The `code` block of a result: {sha256: code_fingerprint(), git_commit, git_dirty} (git fields null without
    git); git_dirty looks at the code files only, so filed results and card edits do not count. Computed once per
    process: a run's code does not change under it."""
    commit, dirty = git_state(package_root("runner").parent, code_paths())
    return {"sha256": code_fingerprint(), "git_commit": commit, "git_dirty": dirty}


def code_of(result: dict) -> dict | None:
    """The code that made a filed result: its `code` block; for a result filed before that block, what its
    `environment.git_commit` said (HEAD, '-dirty' when tracked files differed) with no sha256; None when neither."""
    if isinstance(result.get("code"), dict):
        return result["code"]
    legacy = (result.get("environment") or {}).get("git_commit")
    if not isinstance(legacy, str) or not legacy:
        return None
    commit = legacy.removesuffix("-dirty")
    return {"sha256": None, "git_commit": commit, "git_dirty": commit != legacy}
