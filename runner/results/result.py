"""Result JSON: validate (schema + no NaN/Infinity), write atomically, read defensively, record the environment.

The schema is `registry/schemas/result.schema.json`. JSON Schema cannot say "no NaN" (Python's json module happily
writes `NaN`), so `validate_result` also walks the object itself, and both reading and writing refuse non-finite numbers.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from registry.errors import RegistryError
from registry.schemas import load_schema, validator
from runner.runtime.atomic import atomic_write_bytes
from runner.task_types import LEGACY_TYPES

MAX_STRING_CHARS = 20_000  # longest string anywhere in a result (citations, paths, reasons are far shorter)
MAX_FILE_BYTES = 5 * 1024 * 1024  # a result with 5 folds and a few thousand exclusions is well under 1 MB
MAX_DEPTH = 32  # nesting levels: the deepest block runner eval writes (analyses) is under 8; the site recurses on it
KEY_PACKAGES = (
    "cxr-embedding-registry", "numpy", "pandas", "scikit-learn", "scipy", "lightgbm", "pydicom", "pylibjpeg",
    "pylibjpeg-openjpeg", "pillow", "torch", "torchvision", "timm", "transformers", "tensorflow", "tensorflow-text",
    "umap-learn",
    "jsonschema", "pyyaml",
)


class ResultError(RegistryError):
    """A result file that cannot be read or written; str() is a one-line human message."""


def load_result_schema() -> dict:
    """The result JSON Schema as a dict (cached)."""

    return load_schema("result")


def _pointer(parts) -> str:
    """RFC 6901 JSON pointer; the empty pointer (whole document) is shown as '/'."""
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped)


def _non_json_problems(obj: Any, parts: list) -> list[str]:
    """Problems the schema cannot see: NaN/Infinity, over-long strings, non-JSON types, non-string keys."""
    problems = []
    if len(parts) > MAX_DEPTH:
        return [f"{_pointer(parts[:MAX_DEPTH])}: nested deeper than {MAX_DEPTH} levels"]
    if isinstance(obj, bool) or obj is None or isinstance(obj, int):
        return problems
    if isinstance(obj, float):
        if not math.isfinite(obj):
            problems.append(f"{_pointer(parts)}: {obj} is not allowed (JSON has no NaN/Infinity; use null and a reason)")
    elif isinstance(obj, str):
        if len(obj) > MAX_STRING_CHARS:
            problems.append(f"{_pointer(parts)}: string of {len(obj)} characters is longer than {MAX_STRING_CHARS}")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                problems.append(f"{_pointer(parts)}: key {key!r} is not a string")
                continue
            if len(key) > MAX_STRING_CHARS:
                problems.append(f"{_pointer(parts)}: key of {len(key)} characters is longer than {MAX_STRING_CHARS}")
                continue
            problems.extend(_non_json_problems(value, parts + [key]))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            problems.extend(_non_json_problems(value, parts + [i]))
    else:
        problems.append(f"{_pointer(parts)}: {type(obj).__name__} is not a JSON type")
    return problems


def _schema_message(error) -> str:
    from jsonschema.exceptions import best_match

    if error.context:  # oneOf/anyOf: report the branch that came closest rather than "not valid under any"
        error = best_match(error.context)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.schema.get("properties"), dict):
        known = list(error.schema["properties"])
        extra = [k for k in error.instance if k not in known] if isinstance(error.instance, dict) else []
        hints = [f"'{k}' (did you mean '{m[0]}'?)" for k in extra if (m := difflib.get_close_matches(k, known, 1))]
        if hints:
            message += "; " + ", ".join(hints)
    return f"{_pointer(error.absolute_path)}: {message}"


def validate_result(obj: Any) -> list[str]:
    """All problems with a result object, one human message each (prefixed by its JSON pointer); [] when valid."""
    try:
        problems = _non_json_problems(obj, [])
    except RecursionError:
        return ["/: nested too deeply to be a result"]
    if problems:  # the schema validator would trip over non-JSON values, and NaN compares oddly
        return problems

    errors = sorted(validator("result").iter_errors(obj), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [_schema_message(e) for e in errors]


def to_json(obj: dict) -> str:
    """The canonical on-disk text of a result: sorted keys, two-space indent, no NaN."""
    return json.dumps(obj, allow_nan=False, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_result(obj: dict, path: str | os.PathLike) -> Path:
    """Validate `obj` and write it to `path` atomically (temp file in the same folder, then os.replace)."""
    problems = validate_result(obj)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ResultError(f"refusing to write invalid result {path}: {shown}")
    path = Path(path)
    return atomic_write_bytes(path, to_json(obj).encode("utf-8"))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (use null and a reason)")


def _refuse_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key '{key}'")
        seen[key] = value
    return seen


def read_result(path: str | os.PathLike) -> dict:
    """Parse a result file; refuses NaN/Infinity, duplicate keys, non-objects and files over MAX_FILE_BYTES.

    Does not validate against the schema: call `validate_result` for that.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ResultError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise ResultError(f"{path}: not a file")
    if size > MAX_FILE_BYTES:
        raise ResultError(f"{path}: {size} bytes is more than the {MAX_FILE_BYTES} a result file may have")
    try:
        text = path.read_text(encoding="utf-8")
        obj = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicate_keys)
    except UnicodeDecodeError:
        raise ResultError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # raised by the hooks above
        raise ResultError(f"{path}: {exc}") from None
    except RecursionError:  # e.g. 100,000 nested brackets: valid JSON, but no result is built like that
        raise ResultError(f"{path}: JSON nested too deeply to be a result") from None
    except OSError as exc:
        raise ResultError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(obj, dict):
        raise ResultError(f"{path}: a result must be a JSON object, not {type(obj).__name__}")
    return obj


def utc_now() -> str:
    """`created_at` value: the current UTC time, ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _device_name(device: str | None) -> str:
    if device and device not in ("auto",):
        if device.startswith("cuda") and "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def package_versions() -> dict[str, str]:
    """Installed versions of KEY_PACKAGES (read from their metadata, nothing imported); absent ones left out."""
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return packages


def environment_info(device: str | None = None, frameworks: dict[str, str] | None = None) -> dict:
    """The `environment` block of a result: device, Python, platform, versions of key packages (the code that ran is
    the result's `code` block, runner.results.provenance).

    frameworks: {framework: device it really ran on} as the encoder reports it (Encoder.devices_used; empty when
    every embedding came from the cache). When one framework ran, `device` is its device: a TensorFlow encoder on the
    CPU of a GPU box says "cpu", not torch's GPU.
    """
    info = {
        "device": _device_name(device),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }
    if frameworks:
        info["frameworks"] = dict(sorted(frameworks.items()))
        if len(frameworks) == 1:
            info["device"] = next(iter(frameworks.values()))
    return info


def task_ref(card) -> dict:
    """The `task` block of a result, from a registry task Card: the label by id, its display name beside it, and the
    task type unless it is one of the types whose results predate types (their files keep their bytes)."""
    spec = card.spec
    return {"id": card.id, "sha256": card.sha256, "behaviour_sha256": card.behaviour_sha256, "dataset": spec.dataset,
            "label": spec.label.id, "label_name": spec.label.name,
            **({"type": spec.type} if spec.type not in LEGACY_TYPES else {})}


def encoder_ref(card) -> dict:
    """The `encoder` block of a result, from a registry encoder Card."""
    return {"id": card.id, "sha256": card.sha256, "behaviour_sha256": card.behaviour_sha256, "name": card.spec.title}


def build_result(*, provenance: str, task_card, encoder_card, metrics: dict, created_at: str | None = None,
                 manifest: dict | None = None, citation: str | None = None, **extra) -> dict:
    """The one builder of result objects, reproduced (runner eval) and reported (a publication) alike.

    metrics: {"auroc": metric, "f1": metric} as result.schema.json's `metrics`; manifest: {sha256, n_images} or None
    (reported); extra: the other optional top-level blocks (folds, counts, timings_s, throughput, environment, seeds,
    synthetic, analyses, roc, notes), passed through as given. The result is not validated here: write_result does.
    """
    if provenance not in ("reproduced", "reported"):
        raise ValueError(f"provenance {provenance!r}; expected reproduced or reported")
    if (provenance == "reported") != (manifest is None):
        raise ValueError("a reported result has no manifest; a reproduced one has one")
    result = {
        "schema_version": 1,
        "provenance": provenance,
        "task": task_ref(task_card),
        "encoder": encoder_ref(encoder_card),
        "manifest": manifest,
        "metrics": metrics,
        "created_at": created_at or utc_now(),
        **({"citation": citation} if citation is not None else {}),
        **{key: value for key, value in extra.items() if value is not None},
    }
    return result
