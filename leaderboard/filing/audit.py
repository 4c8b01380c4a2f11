"""`runner audit RESULT --data-root DIR`: do the filed embeddings come from the images and the encoder they claim?

A result filed with an embeddings bundle was refitted by the registry from those embeddings (tier embeddings), but a
bundle is still the submitter's. An audit draws a seeded sample of its images (registry/benchmarks.yaml
`leaderboard.audit`: how many, the seed, the cosine each must reach), embeds them again from the images with the
encoder card (a fresh cache: nothing earlier is reused), and compares each with the bundle's row. The outcome is
recorded, passed or not, as `<results>/audits/<bundle sha256>.json`; the summary shows a result as audited only while
a passed record of its own bundle, made under today's policy, is there.

Entry: `audit(result_path, registry, data_root, ...) -> AuditRecord`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from leaderboard.filing.layout import audit_path, embeddings_path
from leaderboard.filing.pins import pinned_manifest
from registry.benchmarks import load_layout
from registry.errors import RegistryError
from runner.classify.design import TRAIN_PREFIX
from runner.embed.cache import EmbeddingCache
from runner.embed.embedding import embed_manifest
from runner.encoders import EncoderError, load_encoder
from runner.results.bundle import read_bundle
from runner.results.result import environment_info, read_result, utc_now
from runner.runtime.atomic import atomic_write_bytes

FORMAT = 1


class AuditError(RegistryError):
    """An audit that cannot run; str() says why."""

    exit_code = 2


@dataclass
class AuditRecord:
    format: int
    result: str  # the filed result file's name
    task: str
    encoder: str
    embeddings_sha256: str
    images: int
    seed: int
    min_cosine: float  # the policy's threshold
    image_ids: list[str]
    cosines: list[float | None]  # None: the image could not be embedded again
    worst: float | None
    passed: bool
    environment: dict
    created_at: str


def audit(result_path: Path, registry, data_root: Path, device: str = "auto", weights_dir: Path | None = None,
          trust_custom_code: bool = False, workers: int | None = 0) -> AuditRecord:
    """Audit one filed result (in a results folder) against the images under `data_root`; records the outcome."""
    result_path = Path(result_path)
    results_dir = result_path.parent
    result = read_result(result_path)
    sha = result.get("embeddings_sha256")
    if result.get("provenance") != "reproduced" or not isinstance(sha, str):
        raise AuditError(f"{result_path.name}: only a reproduced result filed with its embeddings can be audited")
    bundle_file = embeddings_path(results_dir, sha)
    if not bundle_file.is_file():
        raise AuditError(f"{result_path.name}: its embeddings bundle {bundle_file} is not filed")
    bundle = read_bundle(bundle_file)
    task = registry.get("task", result["task"]["id"])
    encoder_card = registry.get("encoder", result["encoder"]["id"])
    manifest = pinned_manifest(task, registry, results_dir).load()
    if manifest is None or manifest.meta["sha256"] != result["manifest"]["sha256"]:
        raise AuditError(f"{result_path.name}: no pinned manifest of task {task.id!r} with the result's sha256")
    policy = load_layout(registry.root).audit
    rng = np.random.default_rng(policy.seed)
    # a transfer task's bundle also holds the training task's rows (another data set): audit the evaluated ones
    evaluated = [i for i, image_id in enumerate(bundle.image_ids) if not image_id.startswith(TRAIN_PREFIX)]
    chosen = sorted(rng.choice(evaluated, size=min(policy.images, len(evaluated)), replace=False).tolist())
    ids = [bundle.image_ids[i] for i in chosen]
    frame = manifest.frame.set_index("image_id").loc[ids].reset_index()
    try:
        encoder = load_encoder(encoder_card.data, device=device, trust_custom_code=trust_custom_code,
                               weights_dir=weights_dir)
    except EncoderError as exc:
        raise AuditError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="cxr-audit-") as fresh:  # nothing cached earlier is reused
        cache = EmbeddingCache(encoder_card.behaviour_sha256, encoder.contract, root=Path(fresh))
        again = embed_manifest(frame, Path(data_root), task.spec.dataset, encoder, cache, workers=workers,
                               progress=False)
    rows = dict(zip(again.image_ids, again.original))
    cosines = [None if image_id not in rows else _cosine(rows[image_id], bundle.original[i])
               for image_id, i in zip(ids, chosen)]
    known = [c for c in cosines if c is not None]
    worst = min(known) if known else None
    record = AuditRecord(FORMAT, result_path.name, task.id, encoder_card.id, sha, policy.images, policy.seed,
                         policy.min_cosine, ids, cosines, worst,
                         len(known) == len(ids) and worst is not None and worst >= policy.min_cosine,
                         environment_info(str(encoder.device), encoder.devices_used()), utc_now())
    text = json.dumps(asdict(record), indent=1, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_bytes(audit_path(results_dir, sha), text.encode("utf-8"))
    return record


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0


def audited(results_dir: Path, result: dict, policy) -> bool:
    """Whether a passed audit of this result's own bundle, made under today's policy, is filed."""
    sha = result.get("embeddings_sha256")
    path = audit_path(results_dir, sha) if isinstance(sha, str) else None
    if path is None or not path.is_file():
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    cosines = record.get("cosines") if isinstance(record, dict) else None
    if not isinstance(cosines, list) or not cosines:
        return False
    return (record.get("embeddings_sha256") == sha and record.get("images") == policy.images
            and record.get("seed") == policy.seed and len(cosines) == min(policy.images, len(cosines))
            and all(isinstance(c, (int, float)) and c >= policy.min_cosine for c in cosines)
            and record.get("passed") is True)

