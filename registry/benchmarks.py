"""Benchmarks: named sets of tasks, declared once in `registry/benchmarks.yaml` and joined by task cards.

A task card says `benchmarks: [paper-table1]`; `load_benchmarks(root)` reads the declarations (the registry root's own
`registry/benchmarks.yaml` when it has one, else the project's), and `benchmark_problems(card, root, task_ids)` is the
cross-card check `runner validate` runs for each task: every benchmark it names must be declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from registry.errors import CardError, CardProblem, did_you_mean

BENCHMARKS_FILE = Path("registry/benchmarks.yaml")
PROJECT_FILE = Path(__file__).resolve().parent / "benchmarks.yaml"


@dataclass(frozen=True)
class Benchmark:
    id: str
    title: str
    description: str = ""


def benchmarks_path(root: Path | None) -> Path:
    """The root's registry/benchmarks.yaml, or the project's when the root has none (a test or partial registry)."""
    own = Path(root) / BENCHMARKS_FILE if root is not None else None
    return own if own is not None and own.is_file() else PROJECT_FILE


_CACHE: dict[tuple, dict[str, Benchmark]] = {}


def load_benchmarks(root: Path | None = None) -> dict[str, Benchmark]:
    """id -> Benchmark, in file order; raises CardError naming the file, line and field of a malformed declaration."""
    from registry.extends import CardSource
    from registry.yaml_reading import read_yaml
    from registry.schema_check import schema_problems
    from registry.schemas import validator

    path = benchmarks_path(root)
    try:
        stat = path.stat()
    except OSError as exc:
        raise CardError(CardProblem(path, f"cannot read the benchmark declarations: {exc.strerror or exc}")) from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _CACHE:
        return _CACHE[key]
    data, lines = read_yaml(path)
    validator("benchmarks")  # checks the schema itself
    problems = schema_problems("benchmarks", data, [CardSource(path, lines)])
    declared: dict[str, Benchmark] = {}
    for index, item in enumerate(data.get("benchmarks") or [] if not problems else []):
        if item["id"] in declared:
            problems.append(CardProblem(path, f"benchmark id {item['id']!r} is declared twice",
                                        f"/benchmarks/{index}/id", lines.get(f"/benchmarks/{index}/id")))
            continue
        declared[item["id"]] = Benchmark(item["id"], item["title"], item.get("description", ""))
    if problems:
        raise CardError(problems)
    _CACHE[key] = declared
    return declared


def benchmark_problems(card, root: Path | None, task_ids=()) -> list[CardProblem]:
    """Problems of one task card's `benchmarks` list: undeclared ids; a task id that is also a benchmark id."""
    from registry.extends import locate

    names = card.data.get("benchmarks") or []
    try:
        declared = load_benchmarks(root)
    except CardError as exc:
        return list(exc.problems)
    problems = []
    for index, name in enumerate(names):
        if name not in declared:
            file, line = locate(list(card.sources), f"/benchmarks/{index}") if card.sources else (card.path, None)
            problems.append(CardProblem(file, f"benchmark {name!r} is not declared in {benchmarks_path(root)}",
                                        f"/benchmarks/{index}", line, expected="one of " + ", ".join(declared),
                                        suggestion=did_you_mean(name, declared)))
    if card.id in declared:
        problems.append(CardProblem(card.path, f"task id {card.id!r} is also a benchmark id: `--task {card.id}` "
                                    "would be ambiguous", "/id"))
    return problems


def tasks_of(benchmark_id: str, tasks: dict) -> list[str]:
    """Ids of the task cards that join a benchmark, sorted."""
    return sorted(t for t, card in tasks.items() if benchmark_id in (card.data.get("benchmarks") or []))
