"""`extends:` resolution: a card merged over the defaults files it extends (`resolve`), and which file and
line defines a field of the resolved card (`locate`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from registry.errors import CardError, CardProblem, did_you_mean
from registry.yaml_reading import read_yaml_shared

# A mapping that names another kind of thing than the one it extends (`classifier: {type: logistic}` over the
# defaults' LightGBM block, `split: {method: group-holdout, ...}` over k-fold, `sampling: {images: 400, seed: 0}` over
# the defaults' positives/negatives) replaces it instead of merging: the parent's fields belong to the other kind
# (LightGBM's params are no logistic regression's) and would make it invalid.
DISCRIMINATORS = ("type", "method")
EXCLUSIVE_KEYS = (("positives", "negatives"), ("images",), ("patients", "images_per_patient"))  # sampling modes


def _replaces(base: dict, override: dict) -> bool:
    if any(key in override and key in base and override[key] != base[key] for key in DISCRIMINATORS):
        return True

    def modes(mapping: dict) -> set[int]:
        return {i for i, keys in enumerate(EXCLUSIVE_KEYS) if any(key in mapping for key in keys)}

    return bool(modes(override)) and bool(modes(base)) and modes(override) != modes(base)


def deep_merge(base: dict, override: dict) -> dict:
    """Mappings merge key by key; lists and scalars in `override` replace those in `base`. A mapping whose `type` or
    `method` (or sampling mode) differs from the one it overrides replaces it whole (DISCRIMINATORS, EXCLUSIVE_KEYS)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not _replaces(merged[key], value):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class CardSource:
    """A file that contributed to a resolved card, with its line map, nearest first, and the sha256 of its bytes
    (empty when it was not read from a file)."""

    file: Path
    lines: dict[str, int]
    digest: bytes = b""


def resolve(path: Path, _stack: tuple[Path, ...] = (), within: Path | None = None) -> tuple[dict, list[CardSource]]:
    """Load a card and everything it `extends:` -> (resolved mapping without `extends`, sources nearest first).

    `extends` targets (after following symlinks) must stay inside `within` (default: the first card's folder).
    The mapping shares nested values with the remembered parses (registry.yaml_reading): read it, never change it
    in place (load_card keeps a copy). It is fixed by the sources' digests, in order."""
    path = Path(path).resolve()
    return resolve_resolved(path, Path(within).resolve() if within is not None else path.parent, _stack)


def resolve_resolved(path: Path, within: Path, _stack: tuple[Path, ...] = ()) -> tuple[dict, list[CardSource]]:
    """resolve() for a `path` and `within` already resolved (Path.resolve lstat's every folder on the way); the
    targets it follows are resolved here, once each."""
    shared, lines, digest = read_yaml_shared(path)
    data = dict(shared)  # its own top level, for the pop; deep_merge below builds new mappings, changing none
    parent = data.pop("extends", None)
    sources = [CardSource(path, dict(lines), digest)]
    if parent is None:
        return data, sources
    if not isinstance(parent, str) or not parent.strip() or "\x00" in parent:  # NUL: no such file name exists
        raise CardError(CardProblem(path, "`extends` must name a file", "/extends", lines.get("/extends"),
                                    expected="a relative path such as _defaults.yaml"))
    target = resolved_child(path.parent, parent)
    if not target.is_relative_to(within):
        raise CardError(CardProblem(path, f"`extends` target {parent!r} leaves the registry ({within})", "/extends",
                                    lines.get("/extends"), expected="a defaults file beside the card"))
    if target in _stack or target == path:
        chain = " -> ".join(p.name for p in (*_stack, path, target))
        raise CardError(CardProblem(path, f"`extends` cycle: {chain}", "/extends", lines.get("/extends")))
    if not target.is_file():
        siblings = [p.name for p in path.parent.glob("*.yaml")]
        raise CardError(CardProblem(path, f"`extends` target {parent!r} does not exist", "/extends",
                                    lines.get("/extends"), suggestion=did_you_mean(parent, siblings)))
    base, base_sources = resolve_resolved(target, within, (*_stack, path))
    return deep_merge(base, data), sources + base_sources


def resolved_child(folder: Path, name: str) -> Path:
    """(folder / name).resolve() for a resolved `folder`: one lstat, not one per folder on the path, when `name` is a
    single name that is no symlink (what Path.resolve would find); anything else goes through Path.resolve."""
    child = folder / name
    if name in ("", ".", "..") or "/" in name or os.sep in name:
        return child.resolve()
    try:
        if not stat.S_ISLNK(os.lstat(child).st_mode):
            return child
    except OSError:
        pass
    return child.resolve()


def locate(sources: list[CardSource], pointer: str) -> tuple[Path, int | None]:
    """The file and line that define `pointer` (or its nearest defined parent) in a resolved card."""
    probe = pointer
    while True:
        for source in sources:
            if probe in source.lines:
                return source.file, source.lines[probe]
        if not probe:
            return sources[0].file, None
        probe = probe.rsplit("/", 1)[0]
