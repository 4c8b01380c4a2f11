"""The card field reference (docs/cards.md), generated from the JSON Schemas so the two never disagree.

Run `python -m registry.docs` after changing a schema; a test fails while docs/cards.md is out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from registry.schemas import BEHAVIOUR_KEYWORD, load_schema, resolve_ref

CARD_SCHEMAS = (("task", "Task card"), ("dataset", "Dataset card"), ("encoder", "Encoder card"))
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "cards.md"


def _type_text(schema: dict, doc: dict) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_type_text(*resolve_ref(s, doc)) for s in schema[key])
    kind = schema.get("type", "object" if "properties" in schema else "any")
    kind = " \\| ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(schema.get("items"), dict):
        kind = f"array of {_type_text(*resolve_ref(schema['items'], doc))}"
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum") if k in schema]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _rows(schema: dict, doc: dict, prefix: str, required: set[str], when: str = "") -> list[str]:
    """Rows of a schema's properties; `when` prefixes each description (the branch of a oneOf they belong to)."""
    rows = []
    for name, sub in schema.get("properties", {}).items():
        sub, sub_doc = resolve_ref(sub, doc)
        path = f"{prefix}{name}"
        description = when + " ".join(sub.get("description", "").split()).replace("|", "\\|")
        if "default" in sub:
            description += f" Default `{json.dumps(sub['default'])}`."
        if sub.get(BEHAVIOUR_KEYWORD, True) is False:
            description += " *Descriptive*: not in the behaviour hash (editing it invalidates no result or cache entry)."
        rows.append(f"| `{path}` | {'yes' if name in required else ''} | {_type_text(sub, sub_doc)} | {description.strip()} |")
        nested = sub
        if nested.get("type") == "object" or "properties" in nested:
            rows += _rows(nested, sub_doc, f"{path}.", set(nested.get("required", [])), when)
        for option in nested.get("oneOf", ()):  # a block chosen by its `type` (the classifier): each kind's fields
            branch, branch_doc = resolve_ref(option, sub_doc)
            kind = (branch.get("properties", {}).get("type") or {}).get("const")
            if kind is not None and "properties" in branch:
                rows += _rows(branch, branch_doc, f"{path}.", set(branch.get("required", [])), f"With `type: {kind}`: ")
    return rows


def render() -> str:
    parts = [
        "# Card reference",
        "",
        "Generated from `registry/schemas/*.schema.json` by `python -m registry.docs`; do not edit by hand.",
        "Cards are validated after `extends:` is resolved; unknown fields are errors. Every `Default` below is filled",
        "into the resolved card by the loader, so the card hashes cover it and no default lives in Python.",
        "",
        "Each card has two hashes: `sha256` over every field, and `behaviour_sha256` over the fields that can change a",
        "number (a task's also covers its dataset card's). Fields marked *Descriptive* are left out of the behaviour hash;",
        "result validity, `runner submit` and the embedding cache key on the behaviour hash.",
    ]
    for name, title in CARD_SCHEMAS:
        schema = load_schema(name)
        parts += ["", f"## {title}", "", " ".join(schema.get("description", "").split()), "",
                  "| field | required | type | meaning |", "| --- | --- | --- | --- |"]
        parts += _rows(schema, schema, "", set(schema.get("required", [])))
    return "\n".join(parts) + "\n"


def write_generated(path: Path, text: str, module: str, argv: list[str] | None = None) -> int:
    """The `python -m <module> [--check]` of a generated doc: write `text` to `path`, or with --check exit 1 (naming
    the command that regenerates it) while the file differs."""
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date; run `python -m {module}`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return write_generated(DOC_PATH, render(), "registry.docs", argv)


if __name__ == "__main__":
    raise SystemExit(main())
