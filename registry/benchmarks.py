"""Benchmarks: named sets of tasks, declared once in `registry/benchmarks.yaml` and joined by task cards.

A task card says `benchmarks: [paper-table1]`; `load_benchmarks(root)` reads the declarations (the registry root's own
`registry/benchmarks.yaml` when it has one, else the project's), and `benchmark_problems(card, root, task_ids)` is the
cross-card check `runner validate` runs for each task: every benchmark it names must be declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from registry.errors import CardError, CardProblem, did_you_mean
from registry.extends import CardSource, locate
from registry.home import find_home
from registry.schema_check import schema_problems
from registry.schemas import validator
from registry.specs import AnalysesSpec
from registry.yaml_reading import read_yaml


@dataclass(frozen=True)
class Benchmark:
    id: str
    title: str
    description: str = ""
    run_encoders: tuple[str, ...] = ()  # `run.encoders`: what `runner demo` evaluates this benchmark's tasks with
    run_analyses: tuple[str, ...] = ()  # `run.analyses`: the analyses of each such run


def benchmarks_path(root: Path | None) -> Path:
    """The root's registry/benchmarks.yaml, or the project's when the root has none (registry.home)."""
    return find_home(root).benchmarks_file


_CACHE: dict[tuple, dict[str, Benchmark]] = {}


def load_benchmarks(root: Path | None = None) -> dict[str, Benchmark]:
    """id -> Benchmark, in file order; raises CardError naming the file, line and field of a malformed declaration."""

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
        run = item.get("run") or {}
        declared[item["id"]] = Benchmark(item["id"], item["title"], item.get("description", ""),
                                         tuple(run.get("encoders", ())), tuple(run.get("analyses", ())))
    if problems:
        raise CardError(problems)
    _CACHE[key] = declared
    return declared


def benchmark_problems(card, root: Path | None, task_ids=()) -> list[CardProblem]:
    """Problems of one task card's `benchmarks` list: undeclared ids; a task id that is also a benchmark id."""

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


def run_block_problems(reg) -> list[CardProblem]:
    """Problems of the benchmarks' `run` blocks against the registry's cards: unknown encoders or analyses."""
    try:
        declared = load_benchmarks(reg.root)
    except CardError as exc:
        return list(exc.problems)
    path, problems = benchmarks_path(reg.root), []
    for bench in declared.values():
        for encoder_id in bench.run_encoders:
            if encoder_id not in reg.encoders:
                problems.append(CardProblem(path, f"benchmark {bench.id!r}: run.encoders names unknown encoder "
                                            f"{encoder_id!r}", expected="an encoder card id",
                                            suggestion=did_you_mean(encoder_id, reg.encoders)))
        for name in bench.run_analyses:
            if name not in AnalysesSpec.NAMES:
                problems.append(CardProblem(path, f"benchmark {bench.id!r}: run.analyses names unknown analysis "
                                            f"{name!r}", expected="one of " + ", ".join(AnalysesSpec.NAMES),
                                            suggestion=did_you_mean(name, AnalysesSpec.NAMES)))
    return problems
