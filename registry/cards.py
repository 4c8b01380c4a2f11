"""Card loading: safe YAML with duplicate keys rejected, `extends:` resolution, validation, canonical hashing, discovery.

A card is a YAML file. What gets validated and hashed is the *resolved* card: the card merged over the files it `extends:`
(mappings merge key by key, anything else is replaced), with `extends` itself removed. The hash is the sha256 of the
canonical JSON (sorted keys, no whitespace, UTF-8), so key order and comments never change it and any field change does."""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path

from registry import card_memo, specs
from registry.benchmarks import run_block_problems
from registry.cross_checks import cross_card_problems
from registry.errors import CardError, CardProblem, did_you_mean, shown
from registry.extends import locate, resolve_resolved, resolved_child
from registry.hashing import recall, remember, sha256_of
from registry.home import RegistryHome, find_home
from registry.schema_check import non_finite_problems, schema_problems
from registry.schemas import behaviour_part, fill_defaults

KINDS = ("dataset", "task", "encoder")



@dataclass(frozen=True)
class Card:
    """A resolved, schema-valid card, its schema defaults filled in.

    `sha256` covers every field; `behaviour_sha256` only the fields that can change a number (the schema marks the
    others `x-behaviour: false`), and for a task also its dataset card's (and a transfer task's training task's)
    behaviour hash. Result validity, `submit` and the embedding cache key on the behaviour hash, so editing a title,
    citation or note invalidates nothing.
    """

    id: str
    kind: str
    path: Path
    data: dict = field(repr=False)
    sha256: str = ""
    sources: tuple = field(default=(), repr=False, compare=False)
    behaviour_sha256: str = ""

    @cached_property
    def spec(self):
        """The typed, frozen spec of this card (registry.specs): what downstream stages take."""

        return {"task": specs.task_spec, "encoder": specs.encoder_spec, "dataset": specs.dataset_spec}[self.kind](self)

    def __getstate__(self) -> dict:
        """Pickled without the cached spec (its frozen mappings do not pickle); a child process (a TensorFlow
        encoder's run) builds it again from the card's data."""
        return {k: v for k, v in self.__dict__.items() if k != "spec"}


def guess_kind(path: Path, data: dict | None = None) -> str:
    """A card's kind from the innermost folder above it named for a kind (registry/datasets, tasks, encoders), else
    from its fields: an encoder card kept in ~/tasks/study/encoders/ is an encoder card."""
    folder_kinds = {"datasets": "dataset", "tasks": "task", "encoders": "encoder"}
    for folder in reversed(Path(path).resolve().parent.parts):
        if folder in folder_kinds:
            return folder_kinds[folder]
    data = data or {}
    if "adapter" in data:
        return "encoder"
    if "dataset" in data:
        return "task"
    return "dataset"


def load_card(path: Path, kind: str | None = None, root: Path | None = None) -> Card:
    """Load, resolve and schema-validate one card (no cross-card checks). Raises CardError with every problem found.

    With `root` (the registry root), the card file (after following symlinks) and everything it extends must lie
    inside it."""
    return _load_card(Path(path), kind, root, Path(root).resolve() if root is not None else None)


def _load_card(path: Path, kind: str | None, root: Path | None, within: Path | None,
               resolved: Path | None = None) -> Card:
    """load_card, with `within` the resolved `root` and `resolved` the resolved `path` when known (collect resolves
    the root and each card folder once for all their cards)."""
    resolved = resolved or path.resolve()
    if within is not None and not resolved.is_relative_to(within):
        raise CardError(CardProblem(path, f"the card is a link to {resolved}, outside the registry {root}",
                                    expected="a card file inside the registry"))
    data, sources = resolve_resolved(resolved, within if within is not None else resolved.parent)
    kind = kind or guess_kind(path, data)
    key = (kind, *(source.digest for source in sources))
    checked = recall(_CHECKED, key)
    if checked is None:  # checked by an earlier process (registry.card_memo says when that counts)
        checked = card_memo.recall_checked(key)
        if checked is not None:
            remember(_CHECKED, key, checked, CHECKED_MAX)
    # A card whose sources have these very bytes passed both checks before (only valid cards are remembered).
    problems = [] if checked else non_finite_problems(data, sources) or schema_problems(kind, data, sources)
    card_id = data.get("id")
    if isinstance(card_id, str) and card_id != path.stem:
        file, line = locate(sources, "/id")
        problems.append(CardProblem(file, f"id {card_id!r} differs from the file name {path.name!r}", "/id", line,
                                    expected=f"id: {path.stem}"))
    if problems:
        raise CardError(problems)
    if checked is None:
        filled = fill_defaults(kind, data)
        checked = remember(_CHECKED, key, (filled, sha256_of(filled), sha256_of(behaviour_part(kind, filled))),
                           CHECKED_MAX)
        card_memo.remember_checked(key, checked)
    filled, card_sha256, behaviour_sha256 = checked
    return Card(id=card_id, kind=kind, path=resolved, data=copied(filled), sha256=card_sha256,
                sources=tuple(sources), behaviour_sha256=behaviour_sha256)


_ATOMS = (str, int, float, bool, type(None))


def copied(value, memo: dict | None = None):
    """copy.deepcopy of a card's data (YAML's dicts, lists and scalars), ~2.5x faster: a registry load copies every
    card. A dict or list reached twice (a YAML alias) is copied once, as deepcopy does; other types go to deepcopy."""
    memo = {} if memo is None else memo
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is not dict and kind is not list:
        return copy.deepcopy(value, memo)
    if id(value) in memo:
        return memo[id(value)]
    if kind is dict:
        out = memo[id(value)] = {}
        for key, item in value.items():
            out[key] = item if type(item) in _ATOMS else copied(item, memo)
        return out
    out = memo[id(value)] = []
    out.extend(item if type(item) in _ATOMS else copied(item, memo) for item in value)
    return out


# What the schema check, the defaults and the behaviour hash made of a valid card, by its fingerprint: its kind and
# the sha256 of the bytes of every file it was resolved from (the card, then what it extends, in order), which fix
# the resolved card, all those three read (the schemas are loaded once per process). A process that loads a registry
# several times (`runner validate FILE` beside the registry, a test session) checks each unchanged card once; an
# edit to a card or to a file it extends changes the fingerprint. Least recently used first, bounded. Each Card gets
# its own copy of the data (the remembered one shares values with the remembered parses). No pickle: the code base
# unpickles nothing (tests/test_trust.py).
_CHECKED: OrderedDict[tuple, tuple[dict, str, str]] = OrderedDict()

CHECKED_MAX = 1024  # the registry has ~160 cards


def card_paths(home: RegistryHome, kind: str) -> list[Path]:
    """The card files of one kind (registry.home says where); files starting with "_" are defaults, not cards."""
    folder = home.card_dir(kind)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.y*ml") if not p.name.startswith("_") and p.suffix in (".yaml", ".yml"))


@dataclass
class Registry:
    home: RegistryHome
    datasets: dict[str, Card]
    tasks: dict[str, Card]
    encoders: dict[str, Card]

    @property
    def root(self) -> Path:
        return self.home.root

    def of_kind(self, kind: str) -> dict[str, Card]:
        return {"dataset": self.datasets, "task": self.tasks, "encoder": self.encoders}[kind]

    def get(self, kind: str, card_id: str) -> Card:
        cards = self.of_kind(kind)
        if card_id not in cards:
            raise CardError(CardProblem(None, f"no {kind} card with id {shown(card_id)}", expected="one of " +
                                        ", ".join(sorted(cards)), suggestion=did_you_mean(card_id, cards)))
        return cards[card_id]


def collect(root: Path | None = None) -> tuple[Registry, list[CardProblem]]:
    """Load every card under `root`, returning the valid ones and every problem found."""
    home = find_home(root)
    root = home.root
    found: dict[str, dict[str, Card]] = {kind: {} for kind in KINDS}
    problems: list[CardProblem] = [CardProblem(None, message) for message in home.problems()]
    if problems:  # not a registry root: the checks of its cards against each other would only add noise
        return Registry(home, {}, {}, {}), problems
    within = root.resolve()
    folders = {kind: home.card_dir(kind).resolve() for kind in KINDS}
    for card_kind, path in [(k, p) for k in KINDS for p in card_paths(home, k)]:
        try:
            card = _load_card(path, card_kind, root, within, resolved_child(folders[card_kind], path.name))
        except CardError as exc:
            problems.extend(exc.problems)
            continue
        existing = found[card.kind].get(card.id)
        if existing and existing.path != card.path:
            problems.append(CardProblem(card.path, f"{card.kind} id {card.id!r} is already defined in {existing.path}",
                                        "/id"))
            continue
        found[card.kind][card.id] = card
    reg = Registry(home, found["dataset"], found["task"], found["encoder"])
    for kind in KINDS:
        for card in list(reg.of_kind(kind).values()):
            card_problems = cross_card_problems(card, reg)
            if card_problems:
                problems.extend(card_problems)
                del reg.of_kind(kind)[card.id]
    for task_id in list(reg.tasks):
        reg.tasks[task_id] = with_task_behaviour(reg.tasks[task_id], reg)
    problems.extend(run_block_problems(reg))
    return reg, problems


def with_task_behaviour(task: Card, reg: Registry, _seen: tuple = ()) -> Card:
    """The task card with a behaviour hash that also covers what it samples from: its dataset card and, for a
    transfer task, its training task (whose manifest it trains on)."""
    if task.id in _seen:  # a transfer cycle is reported by the evaluation, not here
        return task
    parts = {"task": task.behaviour_sha256, "dataset": reg.datasets[task.data["dataset"]].behaviour_sha256}
    train_id = (task.data.get("transfer") or {}).get("train_task")
    if train_id in reg.tasks:
        parts["train_task"] = with_task_behaviour(reg.tasks[train_id], reg, (*_seen, task.id)).behaviour_sha256
    return replace(task, behaviour_sha256=sha256_of(parts))


def validate_files(paths: list[Path], root: Path | None = None) -> list[CardProblem]:
    """Problems of the given card files, each checked alone and against the registry's other cards."""
    reg, _ = collect(root)
    problems: list[CardProblem] = []
    for path in paths:
        try:
            card = load_card(Path(path), root=reg.root if Path(path).absolute().is_relative_to(reg.root) else None)
        except CardError as exc:
            problems.extend(exc.problems)
            continue
        reg.of_kind(card.kind)[card.id] = card  # the file under test stands in for a card with its id
        problems.extend(cross_card_problems(card, reg))
    return problems


@lru_cache(maxsize=4)
def _load_registry_cached(root: Path) -> Registry:
    reg, problems = collect(root)
    if problems:
        raise CardError(problems)
    return reg


def load_registry(root: Path | None = None) -> Registry:
    """The registry of every card under `root`; raises CardError listing every invalid card."""
    return _load_registry_cached(find_home(root).root)


def clear_cache() -> None:
    _load_registry_cached.cache_clear()
