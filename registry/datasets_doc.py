"""docs/datasets.md, generated from the dataset and task cards (and manifests/index.json), so the tables never drift.

Run `python -m registry.datasets_doc` after changing a dataset or task card or refreezing manifests; a test fails
while docs/datasets.md is out of date (`--check`).
"""

from __future__ import annotations

import json
from pathlib import Path

from registry.cards import load_registry
from registry.docs import write_generated
from registry.negatives import negative_class

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "datasets.md"


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _count(value) -> str:
    return "—" if value is None else f"{value:,}"


def _views(size: dict) -> str:
    views = size.get("views") or {}
    return ", ".join(f"{v} {n:,}" for v, n in sorted(views.items(), key=lambda kv: -kv[1])) or "—"


def _rule(dataset: dict, label_id: str) -> str:
    """How one label is read, in words, from the card's label source."""
    spec = dataset["labels"][label_id]
    table = spec.get("table", "metadata")
    where = f"`{spec['column'].strip()}`" + ("" if table == "metadata" else f" ({table} table)")
    if "contains" in spec:
        terms = [spec["contains"]] if isinstance(spec["contains"], str) else spec["contains"]
        rule = f"{where} lists " + " or ".join(f"'{t}'" for t in terms)
    elif any(k in spec for k in ("positive", "negative", "uncertain")):
        parts = [f"{k} {', '.join(map(str, spec[k]))}" for k in ("positive", "negative", "uncertain") if k in spec]
        if spec.get("other_values", "error") != "error":
            parts.append(f"any other value {spec['other_values']}")
        rule = f"{where}: " + "; ".join(parts)
    else:
        rule = f"{where} (1 / 0 / -1 / blank)"
    if dataset.get("reads"):
        reads = dataset["reads"]
        rule += (f"; per image, ≥ {reads['positive_min']} readers (`{reads['rater_column']}`) → 1, none → 0, "
                 "else uncertain")
    return rule


def render(reg=None) -> str:
    reg = reg or load_registry()
    datasets = [d for d in sorted(reg.datasets.values(), key=lambda c: c.id) if not d.data.get("synthetic")]
    index_path = reg.home.manifests_dir / "index.json"
    frozen = json.loads(index_path.read_text(encoding="utf-8"))["manifests"] if index_path.is_file() else {}
    lines = [
        "# Data sets",
        "",
        "Generated from `registry/datasets/*.yaml`, `tasks/*.yaml` and `manifests/index.json` by",
        "`python -m registry.datasets_doc`; do not edit by hand. Synthetic demo data sets are left out.",
        "",
        "## Overview",
        "",
        "| data set | images | patients | views | labels | metadata features | licence | metadata here |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for card in datasets:
        data, size = card.data, card.data.get("size") or {}
        package = data.get("fallback_package")
        here = f"ships in `{package['name']}` ({', '.join(package['tables'])})" if package else "no: credentialed"
        features = ", ".join(f"{f['name']} ({f['kind']})" for f in data.get("metadata_features") or []) or "—"
        lines.append(f"| `{card.id}` {_cell(data['title'])} | {_count(size.get('images'))} | "
                     f"{_count(size.get('patients')) if size else '—'} | {_views(size)} | "
                     f"{', '.join(sorted(data['labels']))} | {features} | {_cell(data.get('license', '—'))} | {here} |")
    labels = sorted({x for d in datasets for x in d.data["labels"]})
    lines += ["", "## Label harmonisation", "",
              ("How each registry label id is read from each data set's own table (1.0 positive, 0.0 negative, "
               "-1.0 uncertain, blank); the task's `label_policy` then decides what uncertain and blank become."), "",
              "| label | " + " | ".join(f"`{d.id}`" for d in datasets) + " |",
              "| --- |" + " --- |" * len(datasets)]
    for label in labels:
        cells = [_cell(_rule(d.data, label)) if label in d.data["labels"] else "—" for d in datasets]
        lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
    lines += ["", "## Tasks", "",
              ("Committed manifests (`manifests/<task>/`, made by `python -m runner.sample.committed` from the shipped "
               "metadata) are used by `runner eval` after checking the data root against them; the others are "
               "sampled at run time from the user's data."), "",
              ("The negatives column is the class the task's label policy makes on its data set (registry/negatives.py): "
               "stated-absent (the label source states the finding absent), not-positive (every image not positive: "
               "stated absent, not mentioned or not listed), no-finding ('No Finding' images)."), "",
              "| task | data set | label | negatives | views | sample (positives / negatives, images or patients) | manifest |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    real = {d.id for d in datasets}
    for task in sorted(reg.tasks.values(), key=lambda c: (c.data["dataset"], c.id)):
        data = task.data
        if data["dataset"] not in real:
            continue
        entry = frozen.get(task.id)
        manifest = f"committed, sha256 `{entry['sha256'][:12]}`" if entry else "sampled at run time"
        kind = f" ({data['type']})" if data.get("type", "classification") != "classification" else ""
        sampling = data["sampling"]
        size = (f"{sampling['positives']:,} / {sampling['negatives']:,}" if "positives" in sampling else
                f"{sampling['images']:,} images" if "images" in sampling else f"{sampling['patients']:,} patients")
        labels = ", ".join(x["id"] for x in data.get("labels") or []) or data["label"]["id"]
        negatives = negative_class(data, reg.datasets[data["dataset"]].data) or "—"
        lines.append(f"| `{task.id}`{kind} | `{data['dataset']}` | {labels} | {negatives} | {'/'.join(data['views'])} | "
                     f"{size} | {manifest} |")
    lines += ["", "## Access, citation and notes", ""]
    for card in datasets:
        data = card.data
        lines += [f"### `{card.id}`: {data['title']}", "", _cell(data.get("description", "")), "",
                  f"- **Access:** {_cell(data['access'])}",
                  f"- **Data root:** `--data-root` or `${data['root_env']}`" if data.get("root_env") else "- **Data root:** `--data-root`",
                  f"- **Licence:** {_cell(data.get('license', '—'))}",
                  f"- **Citation:** {_cell(data.get('citation', '—'))}"]
        lines += [f"- {_cell(note)}" for note in data.get("notes") or []]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_generated(DOC_PATH, render(), "registry.datasets_doc", argv)


if __name__ == "__main__":
    raise SystemExit(main())
