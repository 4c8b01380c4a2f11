"""The architecture's promises, checked: layering, one embedding path for `runner eval` and `runner bench`,
a renderer that only renders, and a result that depends only on its own inputs."""

from __future__ import annotations

import ast
import importlib
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


def test_rendering_from_the_summary_alone_loads_no_statistics_module(tmp_path):
    from leaderboard.filing.submit import RESULTS_DIR
    from leaderboard.summary.summarize import summarize, write_summary

    summary = write_summary(summarize(RESULTS_DIR), tmp_path / "leaderboard.json")
    code = ("import sys, pathlib; from leaderboard.site.render import render_site; "
            f"render_site(pathlib.Path({str(summary)!r}), pathlib.Path({str(tmp_path / 'site')!r})); "
            "bad = sorted(m for m in sys.modules if m.startswith(('runner.analysis', 'runner.metrics', 'sklearn')));"
            "print('BAD', bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "BAD []" in done.stdout, done.stdout
    assert (tmp_path / "site" / "index.html").is_file()


def test_adapter_names_live_in_the_registry_and_the_runner_uses_them():
    from registry.adapters import ADAPTER_MODULES
    from runner.encoders import ADAPTER_MODULES as RUNNER_VIEW

    assert RUNNER_VIEW is ADAPTER_MODULES


# ---------------------------------------------------------------------------------------------- embedding path


def test_a_lazily_built_encoder_plans_the_device_path_on_cuda_like_an_eager_one():
    """`runner eval` builds encoders lazily, `runner bench` eagerly: on a CUDA device both get the same plan, and the
    device embedder treats the lazy torch encoder as a torch module (no device -> host -> device round trip)."""
    from registry.cards import load_registry
    from runner.embed.plan import plan_embedding
    from runner.encoders import adapter_class, load_encoder, registered_adapters
    from runner.embed.device.embedder import DeviceEmbedder

    card = load_registry().encoders["xrv-densenet121-random"]
    lazy = load_encoder(card.data, device="cpu", lazy=True)
    eager_class = registered_adapters()[card.data["adapter"]]
    assert plan_embedding(adapter_class(lazy), "cuda").backend == "device"
    assert plan_embedding(adapter_class(lazy), "cuda") == plan_embedding(eager_class, "cuda")
    assert plan_embedding(adapter_class(lazy), "cpu").backend == "cpu-pool"
    embedder = DeviceEmbedder(lazy)
    assert embedder.on_device and not lazy.built  # decided from the class; the model is built on the first batch


@pytest.mark.parametrize(("encoder_id", "device", "pipeline", "backend", "augment", "expected"), [
    ("random-cnn", "cuda", "auto", "local", False, "device"),
    ("random-cnn", "cpu", "auto", "local", False, "cpu-pool"),
    ("random-cnn", "cpu", "fast", "local", False, "device"),
    ("random-cnn", "cuda", "auto", "local", True, "cpu-pool"),  # augmented views are drawn on the CPU image
    ("random-cnn", "cuda", "auto", "ray", False, "ray"),
    ("cxr-foundation", "cuda", "auto", "local", False, "cpu-pool"),  # prepares its own inputs (PNG bytes)
])
def test_the_backend_is_chosen_in_one_place(encoder_id, device, pipeline, backend, augment, expected):
    from registry.adapters import ADAPTER_MODULES
    from registry.cards import load_registry
    from runner.embed.plan import plan_embedding
    from runner.encoders import registered_adapters

    reg = load_registry()
    card = reg.encoders[encoder_id]
    importlib.import_module(ADAPTER_MODULES[card.data["adapter"]])
    spec = reg.tasks["effusion-demo"].spec.augmentations if augment else None
    plan = plan_embedding(registered_adapters()[card.data["adapter"]], device, pipeline, backend, spec)
    assert plan.backend == expected, plan


def test_the_old_entry_points_are_gone():
    import runner.embed.device.embedder
    import runner.embed.ray_pool

    assert not hasattr(runner.embed.device.embedder, "embed_manifest_fast")
    assert not hasattr(runner.embed.ray_pool, "embed_manifest_ray")
    assert not hasattr(runner.embed.device.embedder, "choose_pipeline")


def test_runner_bench_measures_the_call_runner_eval_makes(tmp_path, monkeypatch, demo_data_dir):
    """bench's pipeline stage calls runner.embed.embedding.embed_manifest with pipeline auto on a lazily built encoder, as
    runner.evaluate._embed does."""
    import pandas as pd

    import runner.embed.embedding
    from registry.cards import load_registry
    from runner.embed.bench import measure_pipeline
    from runner.encoders import LazyEncoder, load_encoder

    calls = []
    real = runner.embed.embedding.embed_manifest

    def recording(*args, **kwargs):
        calls.append({"lazy": isinstance(args[3], LazyEncoder), "pipeline": kwargs.get("pipeline")})
        return real(*args, **kwargs)

    monkeypatch.setattr(runner.embed.embedding, "embed_manifest", recording)
    card = load_registry().encoders["pixels"]
    meta = pd.read_csv(demo_data_dir / "metadata.csv")
    frame = meta[meta["view"].isin(["PA", "AP"])].head(6)[["image_id", "path"]].astype(str)
    frame = frame[[not str(p).endswith("corrupt") for p in frame["path"]]]
    encoder = load_encoder(card.data, device="cpu", lazy=True)
    try:
        measure_pipeline(frame, demo_data_dir, encoder, card.behaviour_sha256, tmp_path / "cache", 0, 4)
    except RuntimeError:  # a corrupt demo file in the sample: the call was made all the same
        pass
    assert calls and all(c == {"lazy": True, "pipeline": "auto"} for c in calls), calls
