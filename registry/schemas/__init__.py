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
    """A validator for one schema, with every sibling schema available to `$ref`."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())
