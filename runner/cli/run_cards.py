"""Cards kept outside the registry travel with the run: `runner eval` writes a copy of every such card a pair used
into the pair's run folder (OUT/<task>/<encoder>/cards/<kind>s/<id>.yaml); `runner submit` reads them from there and
files them beside the results (RESULTS/cards/...), where `runner leaderboard build` and `runner show` find them. No
`runner --card F` is needed after the first command.

A copy is the resolved card (its `extends:` applied, defaults filled), so it has the sha256 of the card the run
used and needs no other file. It is read back as hostile input: only regular files (no links) named `<id>.yaml` in
the three kind folders, at most MAX_CARDS of them, each through registry.cards.load_card (size, depth, aliases,
schema); a copy whose id the registry already has is used only when it is that very card (same sha256), otherwise
it is refused with both files named (runner.cli.app.load_cli_registry).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from registry.errors import CardError, CardProblem
from runner.runtime.atomic import atomic_write_bytes

FOLDER = "cards"
KIND_FOLDERS = {"encoder": "encoders", "task": "tasks", "dataset": "datasets"}
MAX_CARDS = 64  # a run uses at most an encoder, two tasks and two data sets; a results folder a few dozen


def copy_cards(folder: Path, cards) -> list[Path]:
    """Write each card (registry.cards.Card) resolved into folder/cards/<kind>s/<id>.yaml; returns the paths."""
    written = []
    for card in cards:
        path = Path(folder) / FOLDER / KIND_FOLDERS[card.kind] / f"{card.id}.yaml"
        text = (f"# {card.kind} card {card.id}, as the run used it (resolved: extends applied, defaults filled); "
                f"sha256 {card.sha256}\n" + yaml.safe_dump(card.data, sort_keys=False, allow_unicode=True, width=110))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode("utf-8"))
        written.append(path)
    return written


def cards_in(folder: Path) -> list[tuple[Path, str]]:
    """(path, kind) of the card copies under folder/cards/ (empty when there are none); CardError for anything there
    that is not a plain card file."""
    root = Path(folder) / FOLDER
    if not root.is_dir() or root.is_symlink():
        return []
    found, problems = [], []
    for kind, sub in KIND_FOLDERS.items():
        where = root / sub
        if not where.is_dir():
            continue
        for path in sorted(where.iterdir()):
            if path.is_symlink() or not path.is_file():
                problems.append(CardProblem(path, "not a regular file (a link or a folder) where runner eval writes "
                                            "card copies", expected=f"a {kind} card file written by runner eval"))
            elif path.suffix != ".yaml":
                problems.append(CardProblem(path, "not a card copy (runner eval writes <id>.yaml)",
                                            expected="<id>.yaml"))
            else:
                found.append((path, kind))
    if len(found) > MAX_CARDS:
        problems.append(CardProblem(root, f"{len(found)} card copies; a run folder or results folder holds at most "
                                    f"{MAX_CARDS}", expected=f"at most {MAX_CARDS} cards"))
    if problems:
        raise CardError(problems)
    return found


def run_folder_of(path: Path) -> Path:
    """The folder whose cards/ belongs to `path`: a result.json's folder, or the folder itself."""
    path = Path(path)
    return path if path.is_dir() else path.parent
