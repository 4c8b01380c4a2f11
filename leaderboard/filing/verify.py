"""The checks around regeneration (leaderboard.filing.regenerate) that `runner submit` and `runner leaderboard build`
share: `card_matches(result, registry)`, the one place that decides whether a result still belongs to today's cards;
`read_predictions(path)`; `retry_exclusions(result, manifest, data_root)`, which re-reads the images a run says it
could not embed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leaderboard.filing.regenerate import embedding_exclusions
from runner.data.fingerprint import file_sha256
from runner.data.imaging import ImageDecodeError, load_image
from runner.embed.rows import TRANSIENT


def card_matches(result: dict, registry) -> str | None:
    """None when the result was made with today's task and encoder cards; else why not (one line).

    The one comparison of card hashes in the leaderboard (runner submit, the summarize stage).
    """
    for kind, cards in (("task", registry.tasks), ("encoder", registry.encoders)):
        card = cards.get(result[kind]["id"])
        if card is None:
            return f"unknown {kind} {result[kind]['id']!r}"
        # Behaviour hashes: a title, citation or notes edit since the run does not make its numbers wrong.
        claimed = result[kind]["behaviour_sha256"]
        if claimed != card.behaviour_sha256:
            return (f"{kind} card {card.id!r} changed behaviour since this result was made (result has behaviour "
                    f"hash {claimed[:12]}…, current card {card.behaviour_sha256[:12]}…)")
    return None


def retry_exclusions(result: dict, manifest, data_root: Path) -> list[str]:
    """`runner submit --data-root`: each image the run says it could not embed is read again from the data root; an
    image that is there and decodes makes the claim false (a way to drop the hardest images inside the exclusion
    budget). Transient read errors are not re-judged. Returns one line per false claim (empty: every claim holds)."""
    paths = manifest.frame.set_index(manifest.frame["image_id"].astype(str))["path"].astype(str)
    false = []
    for entry in embedding_exclusions(result):
        reason, image_id = str(entry["reason"]), str(entry.get("image_id"))
        if reason.startswith(TRANSIENT) or image_id not in paths.index:
            continue
        try:
            load_image(Path(data_root) / paths[image_id])
        except (ImageDecodeError, OSError, ValueError, MemoryError):
            continue
        false.append(f"image {image_id!r} is recorded as excluded at embedding ({reason}), but "
                     f"{paths[image_id]} decodes under {data_root}")
    return false


def read_predictions(path: Path) -> tuple[pd.DataFrame | None, str | None, str | None]:
    """(table, sha256 of the file, problem) of a predictions parquet file; (None, None, None) when there is none."""
    path = Path(path)
    if not path.is_file():
        return None, None, None
    try:
        return pd.read_parquet(path), file_sha256(path), None
    except (OSError, ValueError) as exc:
        return None, None, f"{path.name}: unreadable predictions ({str(exc).splitlines()[0] if str(exc) else exc})"
