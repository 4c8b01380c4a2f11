"""File a publication's numbers as reported results: one result file per (task, encoder) it prints.

The numbers come from a publication record (`leaderboard/publications/<id>.yaml`; the paper's Table 1 is
`shin2025-table1`), the card hashes from the registry, so the files can be regenerated whenever a card changes:
`python -m leaderboard.filing.file_reported [PUBLICATION.yaml ...]` (default: every record in leaderboard/publications/).
Each file goes through the same checks as `runner submit` (schema, known cards, current hashes, the publication's
numbers), with replace=True.
"""

from __future__ import annotations

import sys
from pathlib import Path

from leaderboard.filing.publications import PublicationError, load_publication, reported_results
from leaderboard.filing.submit import Filed, SubmitError, file_result
from registry.cards import load_registry
from registry.errors import CardError


def file_reported(registry, table_path: Path, results_dir: Path | None = None) -> list[Filed]:
    """Write every number of one publication to `results_dir` (default: the registry's), replacing earlier filings of
    the same cells."""
    publication = load_publication(Path(table_path))
    return [file_result(r, registry, results_dir, replace=True,
                        publications={publication.id: publication})
            for r in reported_results(publication, registry)]


def main(argv: list[str] | None = None) -> int:

    try:
        registry = load_registry()
        paths = ([Path(a) for a in (sys.argv[1:] if argv is None else argv)]
                 or sorted(registry.home.publications_dir.glob("*.yaml")))
        filed = [item for path in paths for item in file_reported(registry, path)]
    except (CardError, SubmitError, PublicationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for item in filed:
        print(item.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
