"""Custom encoders: the card's `entrypoint: "package.module:factory"` builds the model (runs only with --trust-custom-code,
which load_encoder enforces before this module is imported).

`factory(card: dict, device: str, weights: ResolvedWeights | None)` returns either a torch.nn.Module (called on the
float32 batch as a tensor) or any callable taking the numpy batch; its output, (B, D) or tokens (B, T, D), is pooled as the
card says. Weight files the card lists are found and sha256-checked by runner.encoders.weights before the factory runs.

`local_code(entrypoint)` is what the embedding cache key and the run fingerprint know of the code
(runner.embed.made_by): the sha256 of every module file the entrypoint's module imports, directly or through other
such files, from outside the installed packages (site-packages and the standard library; an editable install's
sources count as outside, since editing them changes no version), found by reading their `import` statements (also
those inside functions) without running anything; and the versions of the installed distributions those files
import. Not seen: a module named only at run time (`importlib.import_module(name)` with a computed name). The model
is built from the same files: `build` imports them afresh (dropping this process's earlier import of them and their
stale bytecode), so a process that ran an older version of the code never embeds with it under the new key.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import site
import sys
import sysconfig
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

from registry.hashing import installed_version
from runner.encoders.base import EncoderError
from runner.encoders.torch_base import TorchEncoder

REGISTRY_PACKAGES = ("runner", "registry", "leaderboard")  # the registry's own code: a run's code_sha256 covers it
MAX_MODULES = 2000  # local modules followed from one entrypoint (a guard against a runaway walk)
# import name -> distribution, where they differ, for the packages custom encoders most often import
DISTRIBUTIONS = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn", "open_clip": "open_clip_torch",
                 "cv2": "opencv-python", "yaml": "pyyaml"}


@dataclass(frozen=True)
class LocalCode:
    """The code a custom entrypoint runs from outside the installed packages, and the installed ones it imports."""

    files: dict[str, str] = field(default_factory=dict)  # module name -> sha256 of its file
    packages: dict[str, str | None] = field(default_factory=dict)  # distribution -> version
    paths: dict[str, str] = field(default_factory=dict)  # module name -> file (not recorded: private paths)


def resolve_entrypoint(entrypoint: str):
    module_name, sep, attr = str(entrypoint).partition(":")
    if not sep or not module_name or not attr:
        raise EncoderError(f"entrypoint {entrypoint!r} must look like 'package.module:callable'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise EncoderError(f"cannot import {module_name!r} for entrypoint {entrypoint!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise EncoderError(f"{module_name!r} has no attribute {attr!r} (entrypoint {entrypoint!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise EncoderError(f"entrypoint {entrypoint!r} is not callable")
    return obj


class _NumpyModel:
    """Wraps a plain callable so TorchEncoder can treat it like a module."""

    def __init__(self, fn):
        self.fn = fn

    def eval(self):
        return self

    def to(self, device):
        return self

    def __call__(self, x):
        import torch

        return torch.as_tensor(np.asarray(self.fn(x.cpu().numpy()), dtype=np.float32))


class CustomEncoder(TorchEncoder):
    NUMBER_PACKAGES = ()  # torch (TorchEncoder) and what its code imports (local_code, added by runner.embed.made_by)

    def build(self, weights):
        import torch

        entrypoint = self.card.get("entrypoint", "")
        import_afresh(local_code(entrypoint))
        factory = resolve_entrypoint(entrypoint)
        model = factory(self.card, self.device, weights)
        return model if isinstance(model, torch.nn.Module) else _NumpyModel(model)


@cache
def _installed_roots() -> tuple[str, ...]:
    """Folders whose modules are versioned by their distribution: the standard library and site-packages."""
    paths = sysconfig.get_paths()
    roots = {paths.get(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= set(site.getsitepackages()) | {site.getusersitepackages()}
    return tuple(sorted({os.path.realpath(r) + os.sep for r in roots if r}))


def _installed(spec) -> bool:
    if spec.origin in ("built-in", "frozen"):
        return True
    places = [spec.origin] if spec.has_location and spec.origin else list(spec.submodule_search_locations or [])
    return bool(places) and all(os.path.realpath(p).startswith(_installed_roots()) for p in places)


def _find_spec(name: str):
    """The spec of a dotted module name without importing it (or its parents), or None."""
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    for depth in range(1, len(rest) + 1):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = importlib.machinery.PathFinder.find_spec(".".join([top, *rest[:depth]]),
                                                       list(spec.submodule_search_locations))
    return spec


def _imported_names(source: bytes, module: str, is_package: bool) -> list[str]:
    """Every module name an `import` statement of this source names (anywhere in it), relative ones resolved;
    `from a import b` names both a and a.b (b may be a submodule)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []  # it cannot be imported either: the factory fails with its own message
    package = module if is_package else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                    else node.module
            except (ImportError, ValueError):
                continue
            names += [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return [n for n in names if n]


def _version(top: str) -> tuple[str, str | None] | None:
    """(distribution, version) of an installed top-level module, or None for the standard library."""
    if top in sys.stdlib_module_names:
        return None
    name = DISTRIBUTIONS.get(top, top)
    if (version := installed_version(name)) is not None:
        return name, version
    found = metadata.packages_distributions().get(top) or []  # ~1 s: only for names not found above
    return (found[0], installed_version(found[0])) if found else (top, None)


def local_code(entrypoint: str) -> LocalCode:
    """See the module docstring: the module files (sha256) an entrypoint runs from outside the installed packages,
    and the installed distributions (version) they import."""
    module_name = str(entrypoint).partition(":")[0]
    files, paths, packages = {}, {}, {}
    todo, seen = [module_name], set()
    while todo:
        name = todo.pop()
        top = name.partition(".")[0]
        if name in seen or top in REGISTRY_PACKAGES or top in sys.stdlib_module_names:
            continue
        seen.add(name)
        if len(seen) > MAX_MODULES:
            raise EncoderError(f"entrypoint {entrypoint!r} imports more than {MAX_MODULES} local modules")
        top_spec = _find_spec(top)
        if top_spec is not None and _installed(top_spec):  # versioned by its distribution: not read further
            version = _version(top)
            if version is not None:
                packages[version[0]] = version[1]
            continue
        spec = top_spec if name == top else _find_spec(name)
        if spec is None:
            if name == module_name:
                raise EncoderError(f"cannot find module {module_name!r} for entrypoint {entrypoint!r}")
            continue  # `from a import function`: a.function is no module
        if "." in name:
            todo.append(name.rpartition(".")[0])  # its parent packages run first
        if spec.has_location and spec.origin and os.path.isfile(spec.origin):
            source = Path(spec.origin).read_bytes()
            files[name], paths[name] = hashlib.sha256(source).hexdigest(), spec.origin
            if spec.origin.endswith(".py"):
                todo += _imported_names(source, name, spec.submodule_search_locations is not None)
    return LocalCode(dict(sorted(files.items())), dict(sorted(packages.items())), paths)


def import_afresh(code: LocalCode) -> None:
    """Forget this process's import of the local modules (and their bytecode cache, which Python trusts by mtime
    in whole seconds and size) so that importing the entrypoint runs the files `code` hashed."""
    for name, path in code.paths.items():
        sys.modules.pop(name, None)
        if path.endswith(".py"):
            Path(importlib.util.cache_from_source(path)).unlink(missing_ok=True)
    importlib.invalidate_caches()
