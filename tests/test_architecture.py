"""The architecture's promises, checked: layering, one embedding path for `runner eval` and `runner bench`,
a renderer that only renders, and a result that depends only on its own inputs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("registry", "runner", "leaderboard")


def _imports(path: Path):
    """(module imported, names imported from it, line) for every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            yield module, [a.name for a in node.names], node.lineno


def _files(package: str):
    return sorted((REPO / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(include_function_level: bool = True) -> dict[str, set[str]]:
    """module -> the project modules importing it runs, at module level and (optionally) inside functions; an import
    of a.b.c also runs a and a.b (their __init__), except the packages the importer itself lives in.
    Imports under `if TYPE_CHECKING:` never run and are left out."""
    files = [f for package in PACKAGES for f in _files(package)]
    names = {_module_name(f) for f in files}
    graph: dict[str, set[str]] = {}
    for f in files:
        me = _module_name(f)
        package = me if f.name == "__init__.py" else me.rpartition(".")[0]
        targets = _imported(ast.parse(f.read_text(encoding="utf-8")), package, names, include_function_level)
        graph[me] = {ancestor for target in targets for ancestor in _ancestors(target, names)
                     if not (me == ancestor or me.startswith(ancestor + "."))}
    return graph


def _imported(node, package: str, names: set[str], include_function_level: bool, in_function: bool = False) -> set:
    """The project modules a module's statements import (relative imports resolved against `package`)."""
    targets: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        if not in_function or include_function_level:
            if isinstance(child, ast.Import):
                targets.update(a.name for a in child.names if a.name.split(".")[0] in PACKAGES)
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    module = ".".join([*base, module] if module else base)
                if module.split(".")[0] in PACKAGES:
                    targets.update(f"{module}.{a.name}" if f"{module}.{a.name}" in names else module
                                   for a in child.names)
        nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
        targets |= _imported(child, package, names, include_function_level, nested)
    return targets


def _ancestors(module: str, names: set[str]) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in names]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles_in_any_package():
    """Over registry/, runner/ and leaderboard/, imports inside functions included (they hid two cycles before)."""
    assert _cycles(_import_graph()) == []


def test_the_cycle_check_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Modules whose functions may import project modules: the CLI defers every stage so that `runner --help` loads no
# pandas, jsonschema or torch, and the renderer's build_site runs the summarize stage without the renderer proper
# importing statistics. Everywhere else a function-level import defers a heavy third-party library only.
LAZY_IMPORTERS = ("runner.cli", "leaderboard.site.render")


def test_function_level_imports_of_project_modules_only_where_they_defer_startup_cost():
    top_level = _import_graph(include_function_level=False)
    everything = _import_graph()
    bad = sorted(f"{module} imports {target} inside a function" for module, targets in everything.items()
                 for target in targets - top_level[module] if not module.startswith(LAZY_IMPORTERS))
    assert bad == []


def test_the_registry_imports_nothing_from_the_runner_or_the_leaderboard():
    bad = [f"{f.relative_to(REPO)}:{line} imports {module}" for f in _files("registry")
           for module, _, line in _imports(f) if module.split(".")[0] in ("runner", "leaderboard")]
    assert bad == []


def test_the_runner_core_imports_no_cli_module():
    cli = ("runner.cli",)
    core = [f for f in _files("runner") if "cli" not in f.relative_to(REPO).parts]
    bad = [f"{f.relative_to(REPO)}:{line} imports {module}" for f in core for module, _, line in _imports(f)
           if module.startswith(cli)]
    assert bad == []


def test_no_private_name_is_imported_across_modules():
    bad = []
    for package in PACKAGES:
        for f in _files(package):
            for module, names, line in _imports(f):
                if module.split(".")[0] in PACKAGES:
                    bad += [f"{f.relative_to(REPO)}:{line} imports {module}.{n}" for n in names
                            if n.startswith("_") and not n.startswith("__")]
    assert bad == []


def test_the_renderer_imports_no_statistics():
    """leaderboard/site/render.py fills templates from leaderboard.json: no analysis or metrics module, statically and when
    it renders a real summary."""
    site = REPO / "leaderboard" / "site" / "render.py"
    bad = [m for m, _, _ in _imports(site) if m.startswith(("runner.analysis", "runner.metrics", "sklearn", "scipy"))]
    assert bad == []


def test_rendering_from_the_summary_alone_loads_no_statistics_module(tmp_path, real_site):
    summary = real_site.out / "leaderboard.json"  # summarize() of the filed results, as build_site wrote it
    code = ("import sys, pathlib; from leaderboard.site.render import render_site; "
            f"render_site(pathlib.Path({str(summary)!r}), pathlib.Path({str(tmp_path / 'site')!r})); "
            "bad = sorted(m for m in sys.modules if m.startswith(('runner.analysis', 'runner.metrics', 'sklearn')));"
            "print('BAD', bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "BAD []" in done.stdout, done.stdout
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_plugin_name_is_one_lazy_entry_that_resolves():
    """Every adapter, dataset kind and analysis name is a lazy "module:attr" entry of registry.plugins that resolves,
    and the names cards may use are exactly those: the schema's analyses, the readers, the adapters."""
    from registry import plugins
    from registry.specs import AnalysesSpec

    for kind in plugins.BUILTIN:
        for name in plugins.names(kind):
            loaded = plugins.load(kind, name)
            assert callable(loaded) or (kind == "task_type" and loaded.name == name), (kind, name)
    assert set(plugins.names("analysis")) == set(AnalysesSpec.NAMES) - {"paired"}  # paired: the summarize stage's
    with pytest.raises(plugins.PluginError, match="did you mean 'timm'"):
        plugins.load("adapter", "tim")


# ---------------------------------------------------------------------------------------------- embedding path


def test_a_lazily_built_encoder_plans_the_device_path_on_cuda_like_an_eager_one():
    """`runner eval` builds encoders lazily, `runner bench` eagerly: on a CUDA device both get the same plan, and the
    device embedder treats the lazy torch encoder as a torch module (no device -> host -> device round trip)."""
    from registry import plugins
    from registry.cards import load_registry
    from runner.embed.device.embedder import DeviceEmbedder
    from runner.embed.plan import plan_embedding
    from runner.encoders import adapter_class, load_encoder

    card = load_registry().encoders["xrv-densenet121-random"]
    lazy = load_encoder(card.data, device="cpu", lazy=True)
    eager_class = plugins.load("adapter", card.data["adapter"])
    assert plan_embedding(adapter_class(lazy), "cuda").backend == "device"
    assert plan_embedding(adapter_class(lazy), "cuda") == plan_embedding(eager_class, "cuda")
    assert plan_embedding(adapter_class(lazy), "cpu").backend == "cpu"
    embedder = DeviceEmbedder(lazy)
    assert embedder.on_device and not lazy.built  # decided from the class; the model is built on the first batch


@pytest.mark.parametrize(("encoder_id", "device", "backend", "augment", "expected"), [
    ("random-cnn", "cuda", "auto", False, "device"),
    ("random-cnn", "cpu", "auto", False, "cpu"),
    ("random-cnn", "cpu", "device", False, "device"),
    ("random-cnn", "cuda", "cpu", False, "cpu"),
    ("random-cnn", "cuda", "auto", True, "cpu"),  # augmented views are drawn on the CPU image
    ("random-cnn", "cuda", "ray", False, "ray"),
    ("cxr-foundation", "cuda", "auto", False, "cpu"),  # prepares its own inputs (PNG bytes)
    ("cxr-foundation", "cuda", "device", False, "cpu"),
])
def test_the_backend_is_chosen_in_one_place(encoder_id, device, backend, augment, expected):
    from registry import plugins
    from registry.cards import load_registry
    from runner.embed.plan import plan_embedding

    reg = load_registry()
    card = reg.encoders[encoder_id]
    adapter = plugins.load("adapter", card.data["adapter"])
    spec = reg.tasks["effusion-demo"].spec.augmentations if augment else None
    plan = plan_embedding(adapter, device, backend, spec)
    assert plan.backend == expected, plan
    with pytest.raises(ValueError, match="expected one of auto, cpu, device, ray"):
        plan_embedding(adapter, device, "fast", spec)


def test_the_old_entry_points_are_gone():
    import runner.embed.device.embedder
    import runner.embed.ray_pool

    assert not hasattr(runner.embed.device.embedder, "embed_manifest_fast")
    assert not hasattr(runner.embed.ray_pool, "embed_manifest_ray")
    assert not hasattr(runner.embed.device.embedder, "choose_pipeline")


def test_runner_bench_measures_the_call_runner_eval_makes(tmp_path, monkeypatch, demo_data_dir):
    """bench's pipeline stage calls runner.embed.embedding.embed_manifest with backend auto on a lazily built encoder,
    as runner.embed.for_task.embed_task does."""
    import pandas as pd

    import runner.embed.bench
    import runner.embed.embedding
    from registry.cards import load_registry
    from runner.embed.bench import measure_pipeline
    from runner.encoders import LazyEncoder, load_encoder

    assert runner.embed.bench.embed_manifest is runner.embed.embedding.embed_manifest
    calls = []
    real = runner.embed.embedding.embed_manifest

    def recording(*args, **kwargs):
        calls.append({"lazy": isinstance(args[3], LazyEncoder), "backend": kwargs.get("backend")})
        return real(*args, **kwargs)

    monkeypatch.setattr(runner.embed.bench, "embed_manifest", recording)
    card = load_registry().encoders["pixels"]
    meta = pd.read_csv(demo_data_dir / "metadata.csv")
    frame = meta[meta["view"].isin(["PA", "AP"])].head(6)[["image_id", "path"]].astype(str)
    frame = frame[[not str(p).endswith("corrupt") for p in frame["path"]]]
    encoder = load_encoder(card.data, device="cpu", lazy=True)
    try:
        measure_pipeline(frame, demo_data_dir, encoder, card.behaviour_sha256, tmp_path / "cache", 0, 4)
    except RuntimeError:  # a corrupt demo file in the sample: the call was made all the same
        pass
    assert calls and all(c == {"lazy": True, "backend": "auto"} for c in calls), calls


# ---------------------------------------------------------------------------------------------- docs/ARCHITECTURE.md

ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
FILE_SUFFIXES = ("json", "csv", "yaml", "yml", "md", "html", "py", "txt", "parquet", "npz", "js", "css")


def _documented_modules(text: str) -> list[str]:
    """The module lines of the "Packages and modules" section: under a heading "### `pkg/dir/` ...", each line
    "- `name.py` ..." documents pkg/dir/name.py. Returned in order, repeats kept."""
    modules, package, in_section = [], None, False
    for line in text.splitlines():
        if line.startswith("## "):
            in_section, package = line.strip() == "## Packages and modules", None
        elif in_section and (heading := re.match(r"### `((?:[\w-]+/)+)`", line)):
            package = heading.group(1)
        elif in_section and package and (module := re.match(r"- `([\w-]+\.py)`", line)):
            modules.append(package + module.group(1))
    return modules


def _package_modules(repo: Path) -> set[str]:
    return {p.relative_to(repo).as_posix() for package in PACKAGES for p in (repo / package).rglob("*.py")
            if p.name != "__init__.py" and "__pycache__" not in p.parts}


def _module_line_problems(text: str, modules: set[str]) -> list[str]:
    documented = _documented_modules(text)
    return ([f"{m}: no line in docs/ARCHITECTURE.md" for m in sorted(modules - set(documented))]
            + [f"{m}: documented but no such module" for m in sorted(set(documented) - modules)]
            + [f"{m}: documented twice" for m in sorted({m for m in documented if documented.count(m) > 1})])


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _stale_references(text: str, repo: Path) -> list[str]:
    """Paths ending in .py that do not exist, and dotted names (runner.x.y.name) whose module or top-level name does
    not. A bare file name ("`plan.py`") must name some file of the packages, tests/, benchmarks/ or the root."""
    stale = []
    known = {p.name for d in (*PACKAGES, "tests", "benchmarks") for p in (repo / d).rglob("*.py")}
    known |= {p.name for p in repo.glob("*.py")}
    for path in set(re.findall(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.py)\b", text)):
        if not ((repo / path).is_file() if "/" in path else path in known):
            stale.append(f"{path}: no such file")
    for dotted in set(re.findall(rf"(?<![\w/.-])((?:{'|'.join(PACKAGES)})(?:\.\w+)+)", text)):
        parts = dotted.split(".")
        if parts[-1] in FILE_SUFFIXES:  # leaderboard.json, a file name
            continue
        files = [next((f for f in (repo.joinpath(*parts[:i]) / "__init__.py",
                                   repo.joinpath(*parts[:i]).with_suffix(".py")) if f.is_file()), None)
                 for i in range(1, len(parts) + 1)]
        depth = max(i + 1 for i, f in enumerate(files) if f is not None)  # the longest prefix that is a module
        if depth < len(parts) and parts[depth] not in _top_level_names(files[depth - 1]):
            stale.append(f"{dotted}: {'.'.join(parts[:depth])} has no {parts[depth]}")
    return sorted(stale)


def test_every_module_has_one_line_in_the_architecture_doc_and_every_line_a_module():
    """A new module needs its line in docs/ARCHITECTURE.md, a removed one takes its line away."""
    assert _module_line_problems(ARCHITECTURE.read_text(encoding="utf-8"), _package_modules(REPO)) == []


def test_the_architecture_doc_names_no_missing_file_or_name():
    assert _stale_references(ARCHITECTURE.read_text(encoding="utf-8"), REPO) == []


def test_the_architecture_doc_checks_can_fail():
    doc = ("## Packages and modules\n### `runner/embed/` — x\n- `plan.py` — y\n- `plan.py` — again\n- `gone.py` — z\n"
           "## Later\n- `rows.py` — outside the section, not a module line\n")
    assert _module_line_problems(doc, {"runner/embed/plan.py", "runner/embed/rows.py"}) == [
        "runner/embed/rows.py: no line in docs/ARCHITECTURE.md", "runner/embed/gone.py: documented but no such module",
        "runner/embed/plan.py: documented twice"]
    stale = ("`runner/fastpath.py`, `nowhere.py`, runner.embed.plan.plan_embedding, runner.embed.plan.gone, "
             "runner.metrics.summary.summarize, runner.no_module, leaderboard.json")
    assert _stale_references(stale, REPO) == [
        "nowhere.py: no such file", "runner.embed.plan.gone: runner.embed.plan has no gone",
        "runner.no_module: runner has no no_module", "runner/fastpath.py: no such file"]
