"""A resolved card against its JSON Schema: every problem with file, line, JSON pointer, what was expected and a
likely fix (`schema_problems`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from jsonschema.exceptions import best_match

from registry.errors import CardProblem, did_you_mean
from registry.extends import locate
from registry.schemas import validator
from registry.yaml_reading import json_pointer

if TYPE_CHECKING:
    from registry.extends import CardSource


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
        pointer = "".join(json_pointer("", p) for p in error.absolute_path)
        expected = suggestion = None
        message = error.message
        if error.validator == "additionalProperties":
            allowed = list(error.schema.get("properties", {}))
            extra = [k for k in error.instance if k not in allowed]
            for key in extra:
                child = json_pointer(pointer, key)
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


def non_finite_problems(data, sources: list[CardSource], pointer: str = "") -> list[CardProblem]:
    """YAML's .nan/.inf (and 1e999) pass JSON Schema number checks but cannot be hashed or written as JSON."""
    if isinstance(data, float) and not math.isfinite(data):
        file, line = locate(sources, pointer)
        return [CardProblem(file, f"{data} is not a usable number", pointer, line, expected="a finite number")]
    children = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    return [p for key, value in children for p in non_finite_problems(value, sources, json_pointer(pointer, key))]
