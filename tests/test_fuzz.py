"""Fuzzing the two doors untrusted text comes in by: the card loader and the result reader/validator.

Whatever the input, the only outcomes allowed are a loaded card / a clean list of validation problems, or CardError /
ResultError / SubmitError with a message. A few hundred examples per test in the normal run; 10,000 with `-m slow`.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.cards import load_card
from registry.errors import CardError
from registry.yaml_reading import read_yaml
from runner.results.result import ResultError, read_result, validate_result

REPO = Path(__file__).resolve().parents[1]
FAST = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.filter_too_much])

# ---------------------------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "../../etc/passwd", "/abs/path", "<script>alert(1)</script>", "effusion", "PA", "1.0",
                     "_defaults.yaml", "fuzz.yaml", "demo-cxr", "pixels", "\x00", "é" * 3]),
)
special_numbers = st.sampled_from([float("nan"), float("inf"), float("-inf"), 10**400, -(10**400), -1, 0, 0.5, 1e308])
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)

TASK_FIELDS = ["id", "title", "description", "extends", "dataset", "label", "label_policy", "views", "sampling",
               "split", "augmentations", "classifier", "metrics", "analyses", "leaderboard", "notes", "transfer"]
ENCODER_FIELDS = ["id", "title", "adapter", "preprocess", "embedding", "weights", "parameters", "seed", "batch_size",
                  "precision", "license", "citation", "entrypoint"]
card_dicts = st.dictionaries(st.one_of(st.sampled_from(TASK_FIELDS + ENCODER_FIELDS), st.text(max_size=8)),
                             json_values, max_size=10)


def _yaml_text(obj) -> str | None:
    try:
        return yaml.safe_dump(obj, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return None


class CardSandbox:
    """A temporary tasks/ folder holding the real defaults files, for cards that `extends:` them."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="fuzz-cards-"))
        (self.dir / "tasks").mkdir()
        for name in ("_defaults.yaml", "_defaults-eval.yaml"):
            shutil.copy(REPO / "tasks" / name, self.dir / "tasks" / name)
        self.path = self.dir / "tasks" / "fuzz.yaml"

    def load(self, data: bytes, kind: str):
        self.path.write_bytes(data)
        try:
            card = load_card(self.path, kind)
        except CardError as exc:
            assert str(exc) and exc.problems  # a message a person can read
            return None
        assert math.isfinite(len(card.sha256)) and len(card.sha256) == 64
        return card


def check_text_card(sandbox: CardSandbox, text: str, kind: str) -> None:
    sandbox.load(text.encode("utf-8", "surrogatepass") if _encodable(text) else b"\xff", kind)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def check_structured_card(sandbox: CardSandbox, data: dict, kind: str) -> None:
    if "id" in data and not isinstance(data["id"], str):
        pass  # wrong id types are part of the fuzz
    elif data.get("id") is not None:
        data["id"] = "fuzz"
    text = _yaml_text(data)
    if text is not None:
        sandbox.load(text.encode("utf-8"), kind)


def base_cards() -> dict[str, dict]:
    """Real cards, renamed to the sandbox file's id, as the starting point for structured-but-wrong mutations."""
    from registry.extends import resolve

    task = resolve(REPO / "tasks" / "effusion-demo.yaml")[0]  # resolved: every numeric field is present
    encoder = yaml.safe_load((REPO / "encoders" / "random-cnn.yaml").read_text())
    dataset = yaml.safe_load((REPO / "registry" / "datasets" / "demo-cxr.yaml").read_text())
    return {kind: {**card, "id": "fuzz"} for kind, card in
            (("task", task), ("encoder", encoder), ("dataset", dataset))}


BASE_CARDS = base_cards()


def check_mutated_card(sandbox: CardSandbox, kind: str, choices: list, replacement, delete: bool) -> None:
    card = mutate(copy.deepcopy(BASE_CARDS[kind]), choices, replacement, delete)
    text = _yaml_text(card)
    if text is not None:
        sandbox.load(text.encode("utf-8"), kind)


def check_bytes_yaml(sandbox: CardSandbox, data: bytes) -> None:
    sandbox.path.write_bytes(data)
    try:
        mapping, lines = read_yaml(sandbox.path)
    except CardError as exc:
        assert str(exc)
        return
    assert isinstance(mapping, dict) and isinstance(lines, dict)


# ---------------------------------------------------------------------------------------------- results


def valid_result() -> dict:
    from tests.support import fake_registry, make_reproduced

    return make_reproduced(fake_registry())


BASE_RESULT = None


def base_result() -> dict:
    global BASE_RESULT
    if BASE_RESULT is None:
        BASE_RESULT = valid_result()
    return copy.deepcopy(BASE_RESULT)


def paths_of(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from paths_of(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from paths_of(value, prefix + (i,))


def mutate(result: dict, choices: list, replacement, delete: bool) -> dict:
    paths = [p for p in paths_of(result) if p]
    for choice in choices:
        path = paths[choice % len(paths)]
        parent = result
        try:
            for part in path[:-1]:
                parent = parent[part]
            if delete and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = copy.deepcopy(replacement)
        except (KeyError, IndexError, TypeError):
            continue
    return result


def check_result_object(obj) -> None:
    problems = validate_result(obj)
    assert isinstance(problems, list) and all(isinstance(p, str) and p for p in problems)
    if problems:
        return
    # A result that validates must also survive the submission checks and be writable as strict JSON.
    from leaderboard.filing.submit import SubmitError, check_against_cards
    from tests.support import fake_registry

    json.dumps(obj, allow_nan=False)
    try:
        check_against_cards(obj, fake_registry())
    except SubmitError as exc:
        assert exc.exit_code in (1, 2) and str(exc)


def check_result_text(folder: Path, data: bytes) -> None:
    path = folder / "result.json"
    path.write_bytes(data)
    try:
        obj = read_result(path)
    except ResultError as exc:
        assert str(exc)
        return
    check_result_object(obj)


def check_deep(depth: int, bracket: str, as_card: bool) -> None:
    """Nesting depth is where recursive parsers and validators fall over (RecursionError); both doors must hold."""
    if bracket == "[":
        inner = "[" * depth + "]" * depth
    else:
        inner = '{"k": ' * depth + "1" + "}" * depth
    if as_card:
        check_text_card(SANDBOX, "id: fuzz\nnotes: " + inner + "\n", "task")
    else:
        check_result_text(RESULT_DIR, ('{"notes": ' + inner + "}").encode())


# ---------------------------------------------------------------------------------------------- the tests
# Each property runs fast in CI and 10,000 times with -m slow; one body serves both.

SANDBOX = CardSandbox()
RESULT_DIR = Path(tempfile.mkdtemp(prefix="fuzz-results-"))

PROPERTIES = {
    "card_text": (st.tuples(st.text(max_size=300), st.sampled_from(["task", "encoder", "dataset"])),
                  lambda args: check_text_card(SANDBOX, *args)),
    "card_yaml_like_text": (
        st.tuples(st.lists(st.sampled_from(["id: fuzz", "extends: _defaults.yaml", "extends: fuzz.yaml", "- a",
                                            "title: &a x", "x: *a", "k: {", "k: [1, 2", "dataset: demo-cxr",
                                            "sampling: {positives: 1e999}", "k: !!python/name:os.system", "k: v",
                                            "k: v", "  nested: 1", "? complex", ": key", "'quoted", "k: |",
                                            "label: {id: effusion}", "\t", "%YAML 1.1", "---", "..."]),
                           max_size=12).map("\n".join), st.sampled_from(["task", "encoder"])),
        lambda args: check_text_card(SANDBOX, *args)),
    "card_structured": (st.tuples(card_dicts, st.sampled_from(["task", "encoder", "dataset"])),
                        lambda args: check_structured_card(SANDBOX, *args)),
    "card_mutated": (st.tuples(st.sampled_from(["task", "encoder", "dataset"]),
                               st.lists(st.integers(min_value=0), min_size=1, max_size=2),
                               st.one_of(special_numbers, json_values), st.booleans()),
                     lambda args: check_mutated_card(SANDBOX, *args)),
    "card_bytes": (st.binary(max_size=200), lambda data: check_bytes_yaml(SANDBOX, data)),
    "result_mutated": (st.tuples(st.lists(st.integers(min_value=0), min_size=1, max_size=3), json_values,
                                 st.booleans()),
                       lambda args: check_result_object(mutate(base_result(), *args))),
    "result_text": (st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "replace")),
                              json_values.map(lambda v: json.dumps(v).encode())),
                    lambda data: check_result_text(RESULT_DIR, data)),
    "result_any_json": (json_values, check_result_object),
    "deep_nesting": (st.tuples(st.integers(min_value=1, max_value=6_000), st.sampled_from("[{"), st.booleans()),
                     lambda args: check_deep(*args)),
}


# Each deep_nesting example parses thousands of levels (~0.2 s): 10 in CI, 500 in the slow run.
FAST_EXAMPLES = {"deep_nesting": 10}
SLOW_EXAMPLES = {"deep_nesting": 500}


def _run_property(name: str, budget: settings) -> int:
    """Run one property under `budget`; returns how many examples ran."""
    strategy, body = PROPERTIES[name]
    override = (FAST_EXAMPLES if budget is FAST else SLOW_EXAMPLES).get(name)
    if override:
        budget = settings(budget, max_examples=override)
    count = [0]

    def counted(example):
        count[0] += 1
        body(example)

    budget(given(strategy)(counted))()
    return count[0]


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_fuzz_ci(name):
    assert _run_property(name, FAST) >= min(100, FAST_EXAMPLES.get(name, 100))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_fuzz_10000(name):
    assert _run_property(name, SLOW) >= SLOW_EXAMPLES.get(name, 10_000)
