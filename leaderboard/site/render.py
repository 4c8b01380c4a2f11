"""`runner leaderboard build`: render the summary (leaderboard.json) into a static site that works offline and from file://.

Two stages, one direction: `leaderboard.summary.summarize.summarize` computes every number from the filed results (tables,
best marks, tie groups, ROC curves, analysis views) and writes leaderboard.json; `render_site` fills the Jinja templates
from that JSON alone and draws its figures (runner.results.figures). This module imports nothing from runner.analysis or
runner.metrics: the site shows what the summary computed, and nothing else.

Pages: index.html (Table 1 and any further tasks, synthetic demo results in a section of their own), one page per task
(card, hashes, per-fold numbers, ROC curve, analyses), one per encoder; leaderboard.json and leaderboard.csv carry every
number shown. Sections, their headings and columns come from registry/benchmarks.yaml (through the summary), row
order and labels from the task cards' `leaderboard` block, never from this module.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import pickle
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

import yaml

from leaderboard.site.encoders_page import si_count, write_encoders_page
from leaderboard.site.site_dir import SiteDir, SiteDirError  # noqa: F401  SiteDirError: re-exported for the CLI
from leaderboard.site.text import citation_html, code_html, external_link, hub_url, metric_text, p_value
from registry.cards import load_registry
from runner.results.figures import plot_label_efficiency, plot_roc, plot_umap

HERE = Path(__file__).resolve().parent


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _num(value) -> str:
    """Generic display of an analysis value: floats to 4 significant digits, everything else as text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)


def _csv_safe(value):
    """Keep spreadsheet programs from running a submitted string as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_csv(out: Path, records: list[dict]) -> None:
    buffer = io.StringIO()
    fields = list(records[0]) if records else ["task", "encoder"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_safe(v) for k, v in record.items()})
    (out / "leaderboard.csv").write_text(buffer.getvalue(), encoding="utf-8")


# A card's YAML by the pickle of its data (the whole input, types, order and shared parts included), least recently
# used first: a process that builds sites again and again (`runner submit` then `leaderboard build`, the tests) dumps
# each unchanged card once (PyYAML's emitter takes ~2 ms a card, and a site shows ~150 cards).
_CARD_YAML: OrderedDict[bytes, str] = OrderedDict()

CARD_YAML_MAX = 1024


def _card_yaml(data: dict) -> str:
    """A resolved card as YAML, identity fields first (the merge with defaults puts them last)."""
    try:
        key = pickle.dumps(data)
    except (pickle.PicklingError, TypeError, AttributeError):
        key = None
    if key is not None and key in _CARD_YAML:
        _CARD_YAML.move_to_end(key)
        return _CARD_YAML[key]
    first = [k for k in ("id", "title", "dataset", "label", "adapter") if k in data]
    ordered = {**{k: data[k] for k in first}, **{k: v for k, v in data.items() if k not in first}}
    text = yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=100)
    if key is not None:
        _CARD_YAML[key] = text
        while len(_CARD_YAML) > CARD_YAML_MAX:
            _CARD_YAML.popitem(last=False)
    return text


@functools.cache
def _compiled_templates():
    """Jinja's bytecode cache, kept in memory for the process: each build has an Environment of its own (render_site
    sets globals on it), but compiling the templates costs ~0.3 s per build. Jinja keys a bucket by template name and
    file, and uses its code only while the template's source has the same checksum (an edited template compiles
    again). Every Environment that uses it is made by `_environment`, with the same options."""
    from jinja2 import BytecodeCache

    class CompiledTemplates(BytecodeCache):
        def __init__(self):
            self.code: dict[str, bytes] = {}

        def load_bytecode(self, bucket) -> None:
            if bucket.key in self.code:
                bucket.bytecode_from_string(self.code[bucket.key])  # reset (compiled again) on another checksum

        def dump_bytecode(self, bucket) -> None:
            self.code[bucket.key] = bucket.bytecode_to_string()

    return CompiledTemplates()


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, bytecode_cache=_compiled_templates())
    env.filters["fmt"] = _fmt
    env.filters["yaml"] = _card_yaml
    env.filters["num"] = _num

    env.filters["pvalue"] = p_value
    env.filters["cite"] = citation_html
    env.filters["code"] = code_html
    env.filters["metric"] = metric_text
    env.filters["link"] = external_link
    env.filters["hub"] = hub_url
    env.filters["si"] = si_count
    env.filters["keys_of"] = lambda rows: list(dict.fromkeys(k for row in rows if isinstance(row, dict) for k in row))
    env.tests["mapping"] = lambda v: isinstance(v, dict)
    env.tests["sequence"] = lambda v: isinstance(v, (list, tuple))
    return env


def _display_path(path: Path) -> str:
    """The results folder as a reader would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"


def build_site(out_dir: Path, results_dir: Path | None = None, registry=None, problems: list | None = None,
               records_dir: Path | None = None) -> Path:
    """Summarize the filed results into OUT/leaderboard.json, then render the site from that file alone.

    `out_dir` must be absent, empty or a site built here (leaderboard.site.site_dir: only files listed in its marker are
    ever removed; the registry is never touched). `problems`, when given, receives (file, problem) for every filed
    result that failed verification (shown marked, never ranked or tie-tested) and every file of the results folder
    that could not be shown at all (unparseable, invalid, a card that no longer exists): `--strict` fails on any.
    `records_dir`: regeneration records to reuse where their key matches (leaderboard.filing.verified).
    """
    from leaderboard.summary.summarize import summarize, write_summary

    if registry is None:
        registry = load_registry()
    results_dir = Path(results_dir) if results_dir is not None else registry.home.results_dir
    out = Path(out_dir)
    site = SiteDir.claim(out, protected=[registry.root, HERE.parent])
    out.mkdir(parents=True, exist_ok=True)
    summary_path = write_summary(summarize(Path(results_dir), registry, records_dir), out / "leaderboard.json")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if problems is not None:
        problems.extend((file, problem) for file, found in summary["unverified"] for problem in found)
        problems.extend(("(not shown)", message) for message in summary["skipped"])
    else:
        for message in summary["skipped"]:
            print(f"warning: not shown: {message}", file=sys.stderr)
    index = render_site(summary_path, out, display_results_dir=_display_path(Path(results_dir)))
    site.commit()
    return index


def render_site(summary_path: Path, out_dir: Path, display_results_dir: str | None = None) -> Path:
    """Fill the templates from a summary file (leaderboard.json) into `out_dir`; returns the path of index.html."""

    summary = json.loads(Path(summary_path).read_text(encoding="utf-8"))
    out = Path(out_dir)
    for sub in ("tasks", "encoders", "static"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for asset in (HERE / "static").iterdir():
        shutil.copyfile(asset, out / "static" / asset.name)
    env = _environment()
    titles = {e: v["title"] for e, v in summary["encoders"].items()}
    env.globals["encoder_title"] = lambda e: titles.get(e, e)
    env.filters["encoder_title"] = env.globals["encoder_title"]
    common = {"skipped": summary["skipped"], "n_results": summary["n_results"],
              "results_dir": display_results_dir or summary["results_dir"], "unverified": summary["unverified"],
              "tiers": summary["tiers"], "tier_counts": summary["tier_counts"]}

    for task_id, task in summary["tasks"].items():
        roc = None
        if task["roc_curves"]:
            roc = f"{task_id}-roc.png"
            plot_roc(task["roc_curves"], out / "tasks" / roc)
        views = dict(task["views"])
        for u in views["umap"]:  # figures drawn from the coordinates the summary carries
            plot_umap(list(zip(u["x"], u["y"])), u["label"], out / "tasks" / f"{u['stem']}.png",
                      out / "tasks" / f"{u['stem']}.svg", title=f"{u['encoder']} on {task_id}")
            u.update(png=f"{u['stem']}.png", svg=f"{u['stem']}.svg")
        views["label_efficiency"] = None
        if task["views"]["label_efficiency"]:
            views["label_efficiency"] = f"{task_id}-label-efficiency.png"
            plot_label_efficiency(task["views"]["label_efficiency"], out / "tasks" / views["label_efficiency"],
                                  title=task_id)
        page = env.get_template("task.html").render(
            root="../", title=task["title"], card=task["card"], entries=task["entries"], roc=roc,
            disease=task["disease"], dataset=task["dataset"], citations=task["citations"], ties=task["ties"],
            views=views, floors=task["floors"], floor_source=summary["floors"]["source"],
            floor_below_chance=summary["floors"]["below_chance"],
            floor_label_source_note=summary["floors"].get("label_source_note"), trained_on=task["trained_on"],
            encoder_titles=titles, dataset_card=task["dataset_card"], controls=task["controls"],
            benchmarks=task["benchmarks"], task_type=task["task_type"], negatives=task.get("negatives"), **common)
        (out / "tasks" / f"{task_id}.html").write_text(page, encoding="utf-8")

    for encoder_id, encoder in summary["encoders"].items():
        page = env.get_template("encoder.html").render(
            root="../", title=encoder["title"], card=encoder["card"], entries=encoder["entries"],
            control=encoder["control"], p=encoder["profile"], places=encoder["places"],
            trained_on_datasets=encoder["trained_on_datasets"], seen_tasks=encoder["seen_tasks"], **common)
        (out / "encoders" / f"{encoder_id}.html").write_text(page, encoding="utf-8")

    index = out / "index.html"
    index.write_text(env.get_template("index.html").render(
        root="", title="CXR embedding leaderboard", tables=summary["tables"], unplaced=summary["unplaced"],
        tasks={k: v["card"] for k, v in summary["tasks"].items()},
        encoders={k: v["card"] for k, v in summary["encoders"].items()}, floors=summary["floors"],
        negative_classes=summary.get("negative_classes", {}), **common),
        encoding="utf-8")
    _write_csv(out, summary["results"])

    write_encoders_page(out, summary["encoders_page"], Path(summary["results_dir"]), env, common)
    return index


def serve(directory: Path, port: int = 8000) -> None:
    """Serve a built site on 127.0.0.1 until interrupted (for viewing only)."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {directory} at http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
