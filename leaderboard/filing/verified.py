"""Regeneration records: a filed result's verification outcome, reused only when a fingerprint proves it still belongs
to every input of the regeneration.

Verifying a filed result means regenerating it (leaderboard.filing.submit.filed_problems): reading the pinned
manifest, refitting the classifier from the filed embeddings or metadata columns, recomputing every number with its
bootstrap intervals. That costs about a second of CPU per result, on every `leaderboard build`. A record of the
outcome is kept under the embedding cache folder (never in the results folder, which is the submitters' surface), keyed
by the sha256 of everything the regeneration reads:

- the result file's bytes, its predictions file and embeddings bundle (the files themselves, hashed again);
- the pinned manifest's stored files, for the task and a transfer task's training task;
- the full content hash of every card involved (task, encoder, data set, training task) and registry/benchmarks.yaml;
- the registry's code (runner.results.provenance code_fingerprint: every .py and JSON Schema file of runner, registry and
  leaderboard) and the versions of the numeric packages; every result records the same fingerprint (its `code`).

Change any of them and the key changes, so the result is regenerated in full. Reported results are checked against
their publication, which is cheap, and are never recorded. `runner leaderboard build --reverify` ignores the records.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from leaderboard.filing.layout import embeddings_path, predictions_of
from leaderboard.filing.pins import PinError, pinned_manifest
from leaderboard.filing.submit import filed_problems
from runner.data.fingerprint import file_sha256
from runner.embed.cache import default_cache_dir
from runner.results.provenance import code_fingerprint
from runner.runtime.atomic import atomic_write_bytes

FORMAT = 1


def default_records_dir() -> Path:
    """Where `runner submit` and `runner leaderboard build` keep regeneration records: beside the embedding cache."""
    return default_cache_dir() / "verified"


def verified_problems(path: Path, result: dict, registry, records_dir: Path | None) -> list[str]:
    """filed_problems(path, result, registry), reused from `records_dir` when a record's key matches every input;
    `records_dir` None regenerates always (and records nothing)."""
    key = regeneration_key(Path(path), result, registry) if records_dir is not None else None
    if key is None:
        return filed_problems(path, result, registry)
    problems = _read_record(_record_path(records_dir, key), Path(path).name)
    if problems is None:
        problems = filed_problems(path, result, registry)
        _write_record(records_dir, key, Path(path).name, problems)
    return problems


def remember_filed(path: Path, registry, records_dir: Path) -> None:
    """Record that the result just filed at `path` stands: leaderboard.filing.submit.file_result files exactly the
    registry's regeneration, so the check a build would repeat has just been done."""
    result = json.loads(Path(path).read_text(encoding="utf-8"))
    key = regeneration_key(Path(path), result, registry)
    if key is not None:
        _write_record(records_dir, key, Path(path).name, [])


def regeneration_key(path: Path, result: dict, registry) -> str | None:
    """The sha256 of every input the regeneration of the result filed at `path` reads; None when it is not recorded
    (a reported result, or one whose inputs cannot all be found: the full check then says why)."""
    if result.get("provenance") != "reproduced":
        return None
    task = registry.tasks.get(result["task"]["id"])
    encoder = registry.encoders.get(result["encoder"]["id"])
    if task is None or encoder is None:
        return None
    tasks = [task]
    if task.spec.type == "transfer":
        train = registry.tasks.get(task.spec.transfer_train_task)
        if train is None:
            return None
        tasks.append(train)
    results_dir = Path(path).parent
    inputs: dict = {"format": FORMAT, "code": code_fingerprint(), "result": file_sha256(path),
                    "cards": sorted(card.sha256 for card in [encoder, *tasks,
                                                              *(registry.datasets[t.spec.dataset] for t in tasks)]),
                    "benchmarks": file_sha256(registry.home.benchmarks_file), "manifests": []}
    for each in tasks:
        try:
            pin = pinned_manifest(each, registry, results_dir)
        except PinError:
            return None
        if pin.folder is None:
            return None
        inputs["manifests"].append([each.id, pin.sha256, pin.source, _folder_sha256(pin.folder)])
    for name, file in (("predictions", predictions_of(results_dir, result)),
                       ("embeddings", embeddings_path(results_dir, result["embeddings_sha256"])
                        if isinstance(result.get("embeddings_sha256"), str) else None)):
        inputs[name] = file_sha256(file) if file is not None and file.is_file() else None
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()


def _folder_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(f"{file.name}\0{file_sha256(file)}\0".encode())
    return digest.hexdigest()


def _record_path(records_dir: Path, key: str) -> Path:
    return Path(records_dir) / key[:2] / f"{key}.json"


def _write_record(records_dir: Path, key: str, name: str, problems: list[str]) -> None:
    text = json.dumps({"format": FORMAT, "result": name, "problems": problems}, allow_nan=False)
    try:
        atomic_write_bytes(_record_path(records_dir, key), (text + "\n").encode("utf-8"))
    except OSError:  # a read-only cache: the check still ran; it is only not remembered
        pass


def _read_record(record_path: Path, name: str) -> list[str] | None:
    """The recorded problems, or None when there is no sound record for this result (then it is regenerated)."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("result") != name:
        return None
    problems = record.get("problems")
    return problems if isinstance(problems, list) and all(isinstance(p, str) for p in problems) else None
