"""Card loading: safe YAML with duplicate keys rejected, `extends:` resolution, validation, canonical hashing, discovery.

A card is a YAML file. What gets validated and hashed is the *resolved* card: the card merged over the files it `extends:`
(mappings merge key by key, anything else is replaced), with `extends` itself removed. The hash is the sha256 of the
canonical JSON (sorted keys, no whitespace, UTF-8), so key order and comments never change it and any field change does.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from hashlib import sha256
from pathlib import Path

import yaml
from jsonschema.exceptions import best_match

from registry.adapters import ADAPTER_MODULES
from registry.errors import CardError, CardProblem, did_you_mean
from registry.schemas import behaviour_part, fill_defaults, validator

KINDS = ("dataset", "task", "encoder")
# Where each kind of card lives, relative to the registry root. Files whose name starts with "_" are shared
# defaults that cards extend, not cards themselves.
CARD_DIRS = {"dataset": Path("registry/datasets"), "task": Path("tasks"), "encoder": Path("encoders")}
MAX_CARD_BYTES = 1_000_000
MAX_CARD_DEPTH = 64  # nesting levels; the deepest real card has fewer than ten


# ---------------------------------------------------------------- canonical form


def canonical_json(obj) -> str:
    """Sorted keys, no whitespace, UTF-8 text, NaN refused: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_of(obj) -> str:
    return sha256(canonical_json(obj).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- YAML


def _pointer(parent: str, key) -> str:
    return f"{parent}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _line_map(node: yaml.Node, file: Path, pointer: str = "", lines: dict | None = None,
              seen_nodes: set | None = None, depth: int = 0) -> dict[str, int]:
    """JSON pointer -> 1-based line of every key and list item; raises on duplicate keys (PyYAML keeps the last one).

    Also refuses YAML aliases: the composer makes `*name` the same node object as its `&name`, so a node met twice is
    an alias. A few lines of aliases can stand for an exponential tree ("billion laughs") that walking, hashing or
    serialising would never finish; cards need none. Checked on the node graph, which is linear in the text."""
    lines = {} if lines is None else lines
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if depth > MAX_CARD_DEPTH:  # before anything recurses into it (copying, hashing, validating)
        raise _too_deep(file, pointer, lines.get(pointer))
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in seen_nodes:
            raise CardError(CardProblem(file, "YAML alias (*name) is not allowed in a card", pointer,
                                        lines.get(pointer), expected="plain values (no &anchors / *aliases)"))
        seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            child = _pointer(pointer, key)
            if key in seen:
                raise CardError(
                    CardProblem(file, f"duplicate key {key!r} (first defined on line {seen[key]})", child, line)
                )
            seen[key] = line
            lines[child] = line
            _line_map(value_node, file, child, lines, seen_nodes, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = _pointer(pointer, index)
            lines[child] = item.start_mark.line + 1
            _line_map(item, file, child, lines, seen_nodes, depth + 1)
    return lines


def _too_deep(file: Path, pointer: str = "", line: int | None = None) -> CardError:
    """The one problem for every way a card can nest too deeply (our bound, libyaml's, Python's recursion limit)."""
    return CardError(CardProblem(file, "YAML nested too deeply", pointer, line,
                                 expected=f"a card of ordinary depth (at most {MAX_CARD_DEPTH} levels)"))


def _read_bounded(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_CARD_BYTES, never reading more than one byte past the bound
    (a card that is /dev/zero, a FIFO or a symlink to one would otherwise be read forever)."""
    import stat

    try:
        # stat before open: opening a FIFO for reading would wait for a writer forever
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CardError(CardProblem(path, "not a regular file (a device, FIFO or folder)", expected="a YAML file"))
        with path.open("rb") as handle:
            raw = handle.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError:
        raise CardError(CardProblem(path, "file not found")) from None
    except OSError as exc:
        raise CardError(CardProblem(path, f"cannot read file: {exc.strerror or exc}")) from None
    if len(raw) > MAX_CARD_BYTES:
        raise CardError(CardProblem(path, f"file is more than {MAX_CARD_BYTES:,} bytes, the most a card may have"))
    return raw


# sha256 of a file's bytes -> its parse (see read_yaml), least recently used first; bounded, so a long process that
# reads many different files (the fuzz tests read thousands) holds at most PARSED_MAX of them
_PARSED: OrderedDict[bytes, tuple[dict, dict[str, int]]] = OrderedDict()
PARSED_MAX = 512  # the registry has ~80 card and defaults files


def read_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    """Parse one YAML card file -> (mapping, line map). Every failure is a CardError naming the file.

    A registry load reads each defaults file once per card that extends it (41 task cards share _defaults.yaml):
    parses are remembered by the sha256 of the file's bytes, so a changed file is parsed again, and each caller gets
    its own copy."""
    path = Path(path)
    raw = _read_bounded(path)
    key = sha256(raw).digest()
    if key not in _PARSED:
        _PARSED[key] = _parse_yaml(raw, path)
        while len(_PARSED) > PARSED_MAX:
            _PARSED.popitem(last=False)
    _PARSED.move_to_end(key)
    data, lines = _PARSED[key]
    return copy.deepcopy(data), dict(lines)


def _parse_yaml(raw: bytes, path: Path) -> tuple[dict, dict[str, int]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CardError(CardProblem(path, f"not UTF-8 text (byte {exc.start})", expected="a UTF-8 YAML file")) from None
    try:
        # one parse: the node tree gives the line map and the data; libyaml's parser when PyYAML has it (~6x faster)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise CardError(CardProblem(path, "file is empty", expected="a YAML mapping of card fields"))
            lines = _line_map(node, path)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except RecursionError:  # thousands of nested brackets: PyYAML's pure-Python composer recurses once per level
        raise _too_deep(path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "maximum nesting depth" in problem:  # libyaml's own limit
            raise _too_deep(path, line=mark.line + 1 if mark else None) from None
        raise CardError(
            CardProblem(path, f"not valid YAML: {problem}", line=mark.line + 1 if mark else None)
        ) from None
    if not isinstance(data, dict):
        raise CardError(
            CardProblem(path, f"top level is a {type(data).__name__}", expected="a YAML mapping of card fields")
        )
    bad_keys = [k for k in _all_keys(data) if not isinstance(k, str)]
    if bad_keys:
        raise CardError(CardProblem(path, f"non-string key {bad_keys[0]!r}", expected="string keys"))
    return data, lines


def _all_keys(obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield from _all_keys(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _all_keys(item)


# ---------------------------------------------------------------- extends


def deep_merge(base: dict, override: dict) -> dict:
    """Mappings merge key by key; lists and scalars in `override` replace those in `base`."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class CardSource:
    """A file that contributed to a resolved card, with its line map, nearest first."""

    file: Path
    lines: dict[str, int]


def resolve(path: Path, _stack: tuple[Path, ...] = (), within: Path | None = None) -> tuple[dict, list[CardSource]]:
    """Load a card and everything it `extends:` -> (resolved mapping without `extends`, sources nearest first).

    `extends` targets (after following symlinks) must stay inside `within` (default: the first card's folder)."""
    path = Path(path).resolve()
    within = Path(within).resolve() if within is not None else path.parent
    data, lines = read_yaml(path)
    parent = data.pop("extends", None)
    sources = [CardSource(path, lines)]
    if parent is None:
        return data, sources
    if not isinstance(parent, str) or not parent.strip() or "\x00" in parent:  # NUL: no such file name exists
        raise CardError(CardProblem(path, "`extends` must name a file", "/extends", lines.get("/extends"),
                                    expected="a relative path such as _defaults.yaml"))
    target = (path.parent / parent).resolve()
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
    base, base_sources = resolve(target, (*_stack, path), within)
    return deep_merge(base, data), sources + base_sources


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


# ---------------------------------------------------------------- validation


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
        import registry.specs as specs

        return {"task": specs.task_spec, "encoder": specs.encoder_spec, "dataset": specs.dataset_spec}[self.kind](self)


def _closest_branch_error(error):
    """The most telling error inside a oneOf/anyOf: from the branch with the fewest errors (the one the card meant)."""
    branches: dict = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    return best_match(min(branches.values(), key=len))


def schema_problems(kind: str, data: dict, sources: list[CardSource]) -> list[CardProblem]:
    problems = []
    for error in sorted(validator(kind).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        # For oneOf/anyOf, the branch that got furthest says what is really wrong (a misspelled enum, say).
        while error.context:
            error = _closest_branch_error(error)
        pointer = "".join(_pointer("", p) for p in error.absolute_path)
        expected = suggestion = None
        message = error.message
        if error.validator == "additionalProperties":
            allowed = list(error.schema.get("properties", {}))
            extra = [k for k in error.instance if k not in allowed]
            for key in extra:
                child = _pointer(pointer, key)
                file, line = locate(sources, child)
                problems.append(CardProblem(file, f"unknown field {key!r}", child, line,
                                            expected="one of " + ", ".join(allowed) if allowed else None,
                                            suggestion=did_you_mean(key, allowed)))
            continue
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            message = f"missing required field {missing!r}"
        elif error.validator == "enum":
            expected = "one of " + ", ".join(map(str, error.validator_value))
            suggestion = did_you_mean(error.instance, error.validator_value) if isinstance(error.instance, str) else None
            message = f"{error.instance!r} is not allowed"
        elif error.validator == "type":
            expected = f"type {error.validator_value}"
            message = f"wrong type: {type(error.instance).__name__} {error.instance!r}"[:200]
        if len(message) > 300:  # a 400-digit number or a pasted blob must not flood the terminal
            message = message[:150] + " … " + message[-120:]
        file, line = locate(sources, pointer)
        problems.append(CardProblem(file, message, pointer, line, expected=expected, suggestion=suggestion))
    return problems


def _non_finite_problems(data, sources: list[CardSource], pointer: str = "") -> list[CardProblem]:
    """YAML's .nan/.inf (and 1e999) pass JSON Schema number checks but cannot be hashed or written as JSON."""
    if isinstance(data, float) and not math.isfinite(data):
        file, line = locate(sources, pointer)
        return [CardProblem(file, f"{data} is not a usable number", pointer, line, expected="a finite number")]
    children = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    return [p for key, value in children for p in _non_finite_problems(value, sources, _pointer(pointer, key))]


def guess_kind(path: Path, data: dict | None = None) -> str:
    """A card's kind from the folder it lives in, else from its fields."""
    parts = Path(path).resolve().parts
    if "datasets" in parts:
        return "dataset"
    if "tasks" in parts:
        return "task"
    if "encoders" in parts:
        return "encoder"
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
    path = Path(path)
    if root is not None and not path.resolve().is_relative_to(Path(root).resolve()):
        raise CardError(CardProblem(path, f"the card is a link to {path.resolve()}, outside the registry {root}",
                                    expected="a card file inside the registry"))
    data, sources = resolve(path, within=Path(root) if root is not None else None)
    kind = kind or guess_kind(path, data)
    problems = _non_finite_problems(data, sources) or schema_problems(kind, data, sources)
    card_id = data.get("id")
    if isinstance(card_id, str) and card_id != path.stem:
        file, line = locate(sources, "/id")
        problems.append(CardProblem(file, f"id {card_id!r} differs from the file name {path.name!r}", "/id", line,
                                    expected=f"id: {path.stem}"))
    if problems:
        raise CardError(problems)
    data = fill_defaults(kind, data)
    return Card(id=card_id, kind=kind, path=path.resolve(), data=data, sha256=sha256_of(data), sources=tuple(sources),
                behaviour_sha256=sha256_of(behaviour_part(kind, data)))


# ---------------------------------------------------------------- the registry


def default_root() -> Path:
    """The registry root: $CXR_REGISTRY_ROOT, else the checkout this package lives in."""
    env = os.environ.get("CXR_REGISTRY_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


def card_paths(root: Path, kind: str) -> list[Path]:
    folder = root / CARD_DIRS[kind]
    return sorted(p for p in folder.glob("*.y*ml") if not p.name.startswith("_") and p.suffix in (".yaml", ".yml"))


@dataclass
class Registry:
    root: Path
    datasets: dict[str, Card]
    tasks: dict[str, Card]
    encoders: dict[str, Card]

    def of_kind(self, kind: str) -> dict[str, Card]:
        return {"dataset": self.datasets, "task": self.tasks, "encoder": self.encoders}[kind]

    def get(self, kind: str, card_id: str) -> Card:
        cards = self.of_kind(kind)
        if card_id not in cards:
            raise CardError(CardProblem(None, f"no {kind} card with id {card_id!r}", expected="one of " +
                                        ", ".join(sorted(cards)), suggestion=did_you_mean(card_id, cards)))
        return cards[card_id]


def cross_card_problems(card: Card, reg: Registry) -> list[CardProblem]:
    """Rules a single schema cannot express: references between cards, and paths that must stay inside the data root."""
    problems: list[CardProblem] = []
    sources = list(card.sources)

    def problem(pointer, message, **kw):
        file, line = locate(sources, pointer) if sources else (card.path, None)
        problems.append(CardProblem(file, message, pointer, line, **kw))

    data = card.data
    if card.kind == "task":
        dataset_id = data.get("dataset")
        dataset = reg.datasets.get(dataset_id)
        if dataset is None:
            problem("/dataset", f"unknown dataset {dataset_id!r}", expected="one of " + ", ".join(sorted(reg.datasets)),
                    suggestion=did_you_mean(dataset_id, reg.datasets))
        else:
            label = data.get("label", {})
            label_id = label.get("id") if isinstance(label, dict) else label
            declared = dataset.data.get("labels", {})
            if label_id not in declared:
                problem("/label/id", f"label {label_id!r} is not declared by dataset {dataset_id!r}",
                        expected="one of " + ", ".join(sorted(declared)), suggestion=did_you_mean(label_id, declared))
        for key, value in (data.get("sampling") or {}).items():
            if key in ("positives", "negatives") and isinstance(value, int) and value <= 0:
                problem(f"/sampling/{key}", f"sample size {value} must be positive")
        train_task = (data.get("transfer") or {}).get("train_task") if isinstance(data.get("transfer"), dict) else None
        if train_task and train_task not in reg.tasks:
            problem("/transfer/train_task", f"unknown task {train_task!r}", suggestion=did_you_mean(train_task, reg.tasks))
        from registry.benchmarks import benchmark_problems

        problems.extend(benchmark_problems(card, reg.root))
    elif card.kind == "encoder":
        adapter = data.get("adapter")
        if adapter not in ADAPTER_MODULES and adapter != "custom":
            problem("/adapter", f"unknown adapter {adapter!r}", expected="one of " + ", ".join(sorted(ADAPTER_MODULES)),
                    suggestion=did_you_mean(adapter, ADAPTER_MODULES))
        for pointer, value in _strings_under((data.get("weights") or {}).get("files", []), "/weights/files"):
            if _leaves(value):
                problem(pointer, f"path {value!r} leaves the weights folder",
                        expected="a path relative to the weights snapshot, without '..'")
    elif card.kind == "dataset":
        named = [*_strings_under(data.get("files", {}), "/files")]
        fallback = data.get("fallback_package") if isinstance(data.get("fallback_package"), dict) else {}
        named += [("/fallback_package/folder", fallback["folder"])] if isinstance(fallback.get("folder"), str) else []
        for pointer, value in named:
            if _leaves(value):
                where = "the package" if pointer.startswith("/fallback") else "the data root"
                problem(pointer, f"path {value!r} leaves {where}",
                        expected=f"a path relative to {where}, without '..'")
    return problems


def _leaves(value: str) -> bool:
    """A path a card names that is absolute, climbs with '..', holds a NUL byte or is a Windows drive path."""
    text = value.replace("\\", "/")
    return Path(text).is_absolute() or ".." in Path(text).parts or "\x00" in text or text[1:2] == ":"


def _strings_under(obj, pointer: str):
    if isinstance(obj, str):
        yield pointer, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings_under(value, _pointer(pointer, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _strings_under(value, _pointer(pointer, index))


def collect(root: Path | None = None) -> tuple[Registry, list[CardProblem]]:
    """Load every card under `root`, returning the valid ones and every problem found."""
    root = Path(root).resolve() if root else default_root()
    found: dict[str, dict[str, Card]] = {kind: {} for kind in KINDS}
    problems: list[CardProblem] = []
    for card_kind, path in [(k, p) for k in KINDS for p in card_paths(root, k)]:
        try:
            card = load_card(path, card_kind, root=root)
        except CardError as exc:
            problems.extend(exc.problems)
            continue
        existing = found[card.kind].get(card.id)
        if existing and existing.path != card.path:
            problems.append(CardProblem(card.path, f"{card.kind} id {card.id!r} is already defined in {existing.path}",
                                        "/id"))
            continue
        found[card.kind][card.id] = card
    reg = Registry(root, found["dataset"], found["task"], found["encoder"])
    for kind in KINDS:
        for card in list(reg.of_kind(kind).values()):
            card_problems = cross_card_problems(card, reg)
            if card_problems:
                problems.extend(card_problems)
                del reg.of_kind(kind)[card.id]
    for task_id in list(reg.tasks):
        reg.tasks[task_id] = with_task_behaviour(reg.tasks[task_id], reg)
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
    return _load_registry_cached(Path(root).resolve() if root else default_root())


def clear_cache() -> None:
    _load_registry_cached.cache_clear()
