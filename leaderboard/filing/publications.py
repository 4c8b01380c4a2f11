"""Publications: the only source of `reported` results.

A publication record (`leaderboard/publications/<id>.yaml`, schema `registry/schemas/publication.schema.json`) holds a
citation, a DOI or URL, the table the numbers came from and the numbers themselves. A reported result exists only by
naming a publication id (`publication`) and carrying exactly that publication's numbers for its task and encoder:
`check_reported` is what `runner submit` and `runner leaderboard build` ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from leaderboard.filing.regenerate import differences, summarise
from registry.errors import CardError
from registry.schemas import validator
from registry.yaml_reading import read_yaml
from runner.results.provenance import code_provenance
from runner.results.result import encoder_ref, task_ref

METRICS = ("auroc", "f1")


class PublicationError(Exception):
    """A publication record that cannot be read or is invalid; str() is the one-line message."""


@dataclass(frozen=True)
class Publication:
    id: str
    path: Path
    data: dict  # the validated record

    @property
    def citation(self) -> str:
        """What a reported result's `citation` says: the record's citation (its DOI or URL stay in the record, which
        the result names by `publication`; the site links nothing outside itself)."""
        return self.data["citation"].strip()

    def numbers(self, task_id: str, encoder_id: str) -> dict | None:
        """{metric: [mean, half-width]} printed for a task and encoder, or None."""
        return (self.data["numbers"].get(task_id) or {}).get(encoder_id)


def load_publication(path: Path) -> Publication:
    """Read and validate one publication record (safe YAML, size-bounded, duplicate keys refused)."""

    path = Path(path)
    try:
        data, _lines = read_yaml(path)
    except CardError as exc:
        raise PublicationError(str(exc).splitlines()[0]) from None
    errors = sorted(validator("publication").iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        pointer = "/" + "/".join(map(str, errors[0].absolute_path))
        raise PublicationError(f"{path}: {pointer}: {errors[0].message[:300]}")
    if data["id"] != path.stem:
        raise PublicationError(f"{path}: id {data['id']!r} differs from the file name")
    return Publication(data["id"], path, data)


def load_publications(folder: Path) -> dict[str, Publication]:
    """Every publication record in `folder` (a registry's: registry.home publications_dir), by id."""
    return {p.stem: load_publication(p) for p in sorted(Path(folder).glob("*.yaml"))}


def reported_metric(mean: float, half_width: float) -> dict:
    """A metric as printed: mean ± half-width, the interval rounded to the printed three decimals."""
    return {"mean": mean, "half_width": half_width, "ci_low": round(mean - half_width, 3),
            "ci_high": round(mean + half_width, 3), "ci_method": "reported", "per_fold": []}


def reported_results(publication: Publication, registry) -> list[dict]:
    """Result objects (provenance: reported) for every number of a publication, against the current cards."""

    results = []
    for task_id, row in publication.data["numbers"].items():
        for encoder_id, cell in row.items():
            results.append({
                "schema_version": 1,
                "provenance": "reported",
                "task": task_ref(registry.get("task", task_id)),
                "encoder": encoder_ref(registry.get("encoder", encoder_id)),
                "manifest": None,
                "publication": publication.id,
                "citation": publication.citation,
                "metrics": {name: reported_metric(*cell[name]) for name in METRICS},
                "created_at": publication.data["transcribed_at"],
                "code": code_provenance(),  # the code that filed it (a run fact: never compared with the record)
            })
    return results


def reported_problems(result: dict, publications: dict[str, Publication], registry) -> str | None:
    """None when a reported result is exactly what its cited publication prints (the object `reported_results`
    builds for its task and encoder: the printed means, half-widths and citation, and nothing more: no per-fold
    values, ROC curve or analyses a publication did not print); else why not (one line)."""
    if result.get("provenance") != "reported":
        return None
    pub_id = result.get("publication")
    publication = publications.get(pub_id) if isinstance(pub_id, str) else None
    if publication is None:
        known = ", ".join(sorted(publications)) or "none"
        return (f"a reported result must cite a publication record in leaderboard/publications/ by id; "
                f"{pub_id!r} is not one (known: {known})")
    task_id, encoder_id = result["task"]["id"], result["encoder"]["id"]
    if publication.numbers(task_id, encoder_id) is None:
        return f"publication {pub_id!r} has no numbers for task {task_id!r} and encoder {encoder_id!r}"
    printed = next(r for r in reported_results(publication, registry)
                   if r["task"]["id"] == task_id and r["encoder"]["id"] == encoder_id)
    found = differences(result, printed)
    if found:
        return f"not what publication {pub_id!r} prints for {task_id} x {encoder_id}: {summarise(found)}"
    return None
