"""Benchmarks: named sets of tasks, declared once in `registry/benchmarks.yaml` and joined by task cards; and the
leaderboard's layout, declared in the same file.

A task card says `benchmarks: [paper-table1]`; `load_benchmarks(root)` reads the declarations (the registry root's own
`registry/benchmarks.yaml` when it has one, else the project's), and `benchmark_problems(card, root, task_ids)` is the
cross-card check `runner validate` runs for each task: every benchmark it names must be declared.

`load_layout(root)` reads the file's `leaderboard` block (defaults from registry/schemas/benchmarks.schema.json): the
front page's sections and which benchmarks each holds, the metric and extra columns, the Encoders page's ranking
settings. The benchmark a task joins decides its section (`LeaderboardLayout.section_of`): one grouping mechanism.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from registry.errors import CardError, CardProblem, did_you_mean
from registry.extends import CardSource, locate
from registry.hashing import recall, remember
from registry.home import find_home
from registry.schema_check import schema_problems
from registry.schemas import fill_defaults, validator
from registry.specs import AnalysesSpec
from registry.yaml_reading import read_yaml_shared


@dataclass(frozen=True)
class Benchmark:
    id: str
    title: str
    description: str = ""
    synthetic: bool = False
    run_encoders: tuple[str, ...] = ()  # `run.encoders`: what `runner demo` evaluates this benchmark's tasks with
    run_analyses: tuple[str, ...] = ()  # `run.analyses`: the analyses of each such run


@dataclass(frozen=True)
class Section:
    """One table of the front page."""

    id: str
    heading: str
    benchmarks: tuple[str, ...]
    synthetic: bool  # every benchmark it holds is synthetic
    all_rows: bool = False
    floor_column: bool = False


@dataclass(frozen=True)
class RankingSettings:
    default_benchmark: str | None
    replicates: int
    level: float
    seed: int


@dataclass(frozen=True)
class AuditPolicy:
    """What `runner audit` checks before a result refitted from its embeddings is shown as audited."""

    images: int
    seed: int
    min_cosine: float


@dataclass(frozen=True)
class LeaderboardLayout:
    benchmarks: dict  # id -> Benchmark, in file order
    sections: tuple[Section, ...]
    metrics: tuple[tuple[str, str], ...]  # (metric id, column label)
    extras: tuple[tuple[str, str], ...]
    column_groups: dict  # task type -> ((metric id, column label), ...): the columns of that type's tables
    ranking: RankingSettings
    audit: AuditPolicy
    min_tier: str  # predictions | embeddings: the weakest verification runner submit files a reproduced result at

    def synthetic(self, benchmark_ids, data_synthetic: bool = False) -> bool:
        """Whether a task (its benchmarks; its data or result being synthetic) is kept out of clinical views."""
        return data_synthetic or any(self.benchmarks[b].synthetic for b in benchmark_ids if b in self.benchmarks)

    def section_of(self, benchmark_ids, data_synthetic: bool = False) -> str | None:
        """The section a task joins: the first that holds one of its benchmarks, among the synthetic sections for
        a synthetic task and the others for the rest; a synthetic task in none of them joins the first synthetic
        section (it is never shown as clinical). None: the task is on no front-page table."""
        synthetic = self.synthetic(benchmark_ids, data_synthetic)
        allowed = [s for s in self.sections if s.synthetic == synthetic]
        for section in allowed:
            if set(section.benchmarks) & set(benchmark_ids):
                return section.id
        return allowed[0].id if synthetic and allowed else None


def benchmarks_path(root: Path | None) -> Path:
    """The root's registry/benchmarks.yaml, or the project's when the root has none (registry.home)."""
    return find_home(root).benchmarks_file


_CACHE: OrderedDict[tuple, LeaderboardLayout] = OrderedDict()  # (path, sha256 of the bytes read) -> its layout
CACHE_MAX = 8


def load_layout(root: Path | None = None) -> LeaderboardLayout:
    """The whole file, defaults filled; raises CardError naming the file, line and field of a malformed entry."""
    path = benchmarks_path(root)
    # One bounded read (a FIFO or device is refused, not waited on) gives both the parse and the key: the key is the
    # sha256 of the very bytes parsed, not the file's size and time, so an edit that keeps both is read again.
    parsed, lines, digest = read_yaml_shared(path)
    key = (str(path), digest)
    kept = recall(_CACHE, key)
    if kept is not None:
        return kept
    data = copy.deepcopy(parsed)
    validator("benchmarks")  # checks the schema itself
    problems = schema_problems("benchmarks", data, [CardSource(path, lines)])
    if problems:
        raise CardError(problems)
    data = fill_defaults("benchmarks", data)

    def problem(message, pointer, **extra):
        problems.append(CardProblem(path, message, pointer, lines.get(pointer), **extra))

    declared: dict[str, Benchmark] = {}
    for index, item in enumerate(data["benchmarks"]):
        if item["id"] in declared:
            problem(f"benchmark id {item['id']!r} is declared twice", f"/benchmarks/{index}/id")
            continue
        run = item.get("run") or {}
        declared[item["id"]] = Benchmark(item["id"], item["title"], item["description"], item["synthetic"],
                                         tuple(run.get("encoders", ())), tuple(run.get("analyses", ())))
    board = data["leaderboard"]
    sections, placed = [], {}
    for index, item in enumerate(board["sections"]):
        for j, name in enumerate(item["benchmarks"]):
            pointer = f"/leaderboard/sections/{index}/benchmarks/{j}"
            if name not in declared:
                problem(f"section {item['id']!r} names benchmark {name!r}, which is not declared", pointer,
                        expected="one of " + ", ".join(declared), suggestion=did_you_mean(name, declared))
            elif name in placed:
                problem(f"benchmark {name!r} is in two sections ({placed[name]!r} and {item['id']!r})", pointer)
            placed.setdefault(name, item["id"])
        if item["id"] in {s.id for s in sections}:
            problem(f"section id {item['id']!r} is declared twice", f"/leaderboard/sections/{index}/id")
        sections.append(Section(item["id"], item["heading"], tuple(item["benchmarks"]),
                                all(declared[b].synthetic for b in item["benchmarks"] if b in declared),
                                item["all_rows"], item["floor_column"]))
    if not board["sections"]:  # one section per benchmark
        sections = [Section(b.id, b.title, (b.id,), b.synthetic) for b in declared.values()]
    for group in ("metrics", "extras"):
        ids = [m["id"] for m in board[group]]
        for index, name in enumerate(ids):
            if ids.index(name) != index:
                problem(f"{group} column {name!r} is listed twice", f"/leaderboard/{group}/{index}/id")
    for kind, block in board["column_groups"].items():
        ids = [m["id"] for m in block["metrics"]]
        for index, name in enumerate(ids):
            if ids.index(name) != index:
                problem(f"column group {kind!r}: column {name!r} is listed twice",
                        f"/leaderboard/column_groups/{kind}/metrics/{index}/id")
    ranking = board["ranking"]
    if ranking["default_benchmark"] is not None and ranking["default_benchmark"] not in declared:
        problem(f"default_benchmark {ranking['default_benchmark']!r} is not declared",
                "/leaderboard/ranking/default_benchmark", suggestion=did_you_mean(ranking["default_benchmark"],
                                                                                  declared))
    if problems:
        raise CardError(problems)
    layout = LeaderboardLayout(
        declared, tuple(sections), tuple((m["id"], m["label"]) for m in board["metrics"]),
        tuple((x["id"], x["label"]) for x in board["extras"]),
        {kind: tuple((m["id"], m["label"]) for m in block["metrics"]) for kind, block in board["column_groups"].items()},
        RankingSettings(ranking["default_benchmark"], ranking["replicates"], float(ranking["level"]),
                        ranking["seed"]),
        AuditPolicy(board["audit"]["images"], board["audit"]["seed"], float(board["audit"]["min_cosine"])),
        board["min_tier"])
    remember(_CACHE, key, layout, CACHE_MAX)
    return layout


def load_benchmarks(root: Path | None = None) -> dict[str, Benchmark]:
    """id -> Benchmark, in file order; raises CardError naming the file, line and field of a malformed declaration."""
    return load_layout(root).benchmarks


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
