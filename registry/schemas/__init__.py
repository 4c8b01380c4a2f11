"""The JSON Schemas (draft 2020-12) that define what a card or a result may say.

Schemas may `$ref` each other by file name (`data-defs.schema.json#/$defs/sampling`); all of them are loaded into one
`referencing` registry so every reference resolves offline.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).parent


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema.get("$id", path.name), Resource.from_contents(schema)))
        if schema.get("$id") != path.name:
            resources.append((path.name, Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def load_schema(name: str) -> dict:
    """`load_schema("task")` -> the parsed registry/schemas/task.schema.json."""
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for one schema, with every sibling schema available to `$ref`.

    The schemas themselves are checked against the JSON Schema meta-schema by tests/test_cards.py, not here: that
    check cost every process ~0.4 s and the files are part of the code."""
    schema = load_schema(name)
    return Draft202012Validator(schema, registry=_registry())


# ---------------------------------------------------------------- walking a card alongside its schema
# Two facts about every card field live in the schema and nowhere else: its default (`default`) and whether it can
# change a number (`x-behaviour: false` marks descriptive fields: titles, citations, notes, ...). The walkers below
# read them so the card loader can fill defaults and compute the behaviour hash.

BEHAVIOUR_KEYWORD = "x-behaviour"


def resolve_ref(schema: dict, doc: dict) -> tuple[dict, dict]:
    """Follow `$ref`s (`#/$defs/...` in `doc`, or `file.schema.json#/...`) -> (schema, the document it lives in)."""
    while isinstance(schema, dict) and "$ref" in schema:
        file, _, pointer = schema["$ref"].partition("#")
        if file:  # parsed once per process (a registry load follows ~25,000 refs)
            doc = load_schema(file.removesuffix(".schema.json"))
        target = doc
        for part in pointer.strip("/").split("/"):
            if part:
                target = target[part]
        # Keywords beside a $ref (description, x-behaviour, default) belong to the referring property.
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema, doc


def _branch(schema: dict, doc: dict, value) -> tuple[dict, dict] | None:
    """The oneOf/anyOf branch `value` is valid against (the card was validated, so there is one), resolved."""
    for key in ("oneOf", "anyOf"):
        for option in schema.get(key, ()):
            sub, sub_doc = resolve_ref(option, doc)
            if _branch_validator(option, doc, sub).is_valid(value):
                return sub, sub_doc
    return None


_BRANCH_VALIDATORS: dict[tuple[int, int], tuple] = {}


def _branch_validator(option, doc: dict, resolved) -> Draft202012Validator:
    """The validator of one oneOf/anyOf option, made once per process (a registry load asks ~25,000 times), by the
    identity of the option and its document; the entry holds both, so neither id can be reused while it stands."""
    key = (id(option), id(doc))
    made = _BRANCH_VALIDATORS.get(key)
    if made is None:
        # A branch is checked where it lives, so its own "#/$defs/..." references resolve in its document.
        ref = option.get("$ref", "") if isinstance(option, dict) else ""
        check = {"$ref": doc.get("$id", "") + ref} if ref.startswith("#") and doc.get("$id") else resolved
        made = _BRANCH_VALIDATORS[key] = (option, doc, Draft202012Validator(check, registry=_registry()))
    return made[2]


def _walk(schema: dict, doc: dict, value, on_mapping):
    """Follow a valid card value through its schema (refs, the oneOf/anyOf branch it matches, list items);
    `on_mapping(properties, doc, value, walk)` decides what a mapping becomes."""

    def walk(schema: dict, doc: dict, value):
        schema, doc = resolve_ref(schema, doc)
        branch = _branch(schema, doc, value)
        if branch is not None:
            return walk(*branch, value)
        if isinstance(value, dict):
            return on_mapping(schema.get("properties", {}), doc, value, walk)
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            return [walk(schema["items"], doc, item) for item in value]
        return value

    return walk(schema, doc, value)


def fill_defaults(name: str, data: dict, definition: str | None = None) -> dict:
    """A copy of a (valid) card with every absent field that has a schema `default` filled in, at every depth.

    definition: fill one block instead of a whole card, e.g. `fill_defaults("analysis-defs", {...}, "metrics")`.
    """
    import copy

    def with_defaults(properties, doc, value, walk):
        out = dict(value)
        for key, sub in properties.items():
            sub_resolved, _ = resolve_ref(sub, doc)
            if key not in out and "default" in sub_resolved:
                out[key] = copy.deepcopy(sub_resolved["default"])
            if key in out:
                out[key] = walk(sub, doc, out[key])
        return out

    doc = load_schema(name)
    return _walk(doc["$defs"][definition] if definition else doc, doc, data, with_defaults)


def behaviour_part(name: str, data: dict) -> dict:
    """The fields of a card that can change a number: everything except those the schema marks `x-behaviour: false`."""

    def behaviour_only(properties, doc, value, walk):
        out = {}
        for key, item in value.items():
            sub = properties.get(key)
            if sub is None:  # additionalProperties (model options, sha256 pins): behaviour by default
                out[key] = item
            elif resolve_ref(sub, doc)[0].get(BEHAVIOUR_KEYWORD, True) is not False:
                out[key] = walk(sub, doc, item)
        return out

    schema = load_schema(name)
    return _walk(schema, schema, data, behaviour_only)


def descriptive_fields(name: str) -> list[str]:
    """Dotted paths of the fields marked `x-behaviour: false` in a card schema (for docs and tests)."""
    found: list[str] = []

    def walk(schema: dict, doc: dict, prefix: str, depth: int = 0):
        schema, doc = resolve_ref(schema, doc)
        if depth > 8:
            return
        for key, sub in schema.get("properties", {}).items():
            resolved, sub_doc = resolve_ref(sub, doc)
            if resolved.get(BEHAVIOUR_KEYWORD, True) is False:
                found.append(prefix + key)
                continue
            walk(resolved, sub_doc, f"{prefix}{key}.", depth + 1)
            for option in [*resolved.get("oneOf", ()), *resolved.get("anyOf", ())]:
                walk(*resolve_ref(option, sub_doc), f"{prefix}{key}.", depth + 1)

    schema = load_schema(name)
    walk(schema, schema, "")
    return sorted(set(found))
