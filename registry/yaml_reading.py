"""Reading one YAML card file safely: bounded size and depth, duplicate keys and aliases refused, a line for
every JSON pointer (`read_yaml`).
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from hashlib import sha256
from pathlib import Path

import yaml

from registry.errors import CardError, CardProblem

MAX_CARD_BYTES = 1_000_000

MAX_CARD_DEPTH = 64  # nesting levels; the deepest real card has fewer than ten


def json_pointer(parent: str, key) -> str:
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
            child = json_pointer(pointer, key)
            if key in seen:
                raise CardError(
                    CardProblem(file, f"duplicate key {key!r} (first defined on line {seen[key]})", child, line)
                )
            seen[key] = line
            lines[child] = line
            _line_map(value_node, file, child, lines, seen_nodes, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = json_pointer(pointer, index)
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
    data, lines, _digest = read_yaml_shared(path)
    return copy.deepcopy(data), dict(lines)


def read_yaml_shared(path: Path) -> tuple[dict, dict[str, int], bytes]:
    """read_yaml without the copy -> (the remembered mapping itself, its line map, the sha256 of the file's bytes),
    for a caller that never changes either (registry.extends: a card load copies only what it keeps)."""
    path = Path(path)
    raw = _read_bounded(path)
    key = sha256(raw).digest()
    if key not in _PARSED:
        _PARSED[key] = _parse_yaml(raw, path)
        while len(_PARSED) > PARSED_MAX:
            _PARSED.popitem(last=False)
    _PARSED.move_to_end(key)
    data, lines = _PARSED[key]
    return data, lines, key


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
