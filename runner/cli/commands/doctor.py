"""`runner doctor`: the first command on a new machine (runner/doctor.py collects, this module prints)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from runner.cli.app import EXIT_FAILURE, app, fail, load_cli_registry, unknown_id


@app.command("doctor")
def doctor_command(
    encoder: Annotated[list[str] | None, typer.Option(
        "--encoder", help="An encoder the run will use (id; several: repeat or separate by commas): its packages, "
        "weights, pins and device must be there.", show_default=False)] = None,
    task: Annotated[list[str] | None, typer.Option(
        "--task", help="A task the run will evaluate: its data sets' roots must be there.", show_default=False)] = None,
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", help="A data set the run will read (dataset card id).", show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]: the device the run will ask for.")
                      ] = "auto",
    data_root: Annotated[Path | None, typer.Option("--data-root", help="The root of the one asked data set.")] = None,
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Where the run's weight files are.")] = None,
    hashes: Annotated[bool, typer.Option(
        "--hashes", help="Check the sha256 of every encoder's weight files (default: the asked-for encoders' only; "
        "sizes are always checked).")] = False,
    no_tensorflow: Annotated[bool, typer.Option(
        "--no-tensorflow", help="Do not start TensorFlow (seconds) to ask which devices it sees.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
) -> None:
    """Check this machine for a run: Python and package versions, the devices torch and TensorFlow each see (and the
    CUDA/cuDNN each was built for), free GPU memory, every encoder's packages and weights (present? pinned sizes and
    sha256s match?), every data root (set? what it holds), the cache folders and their free space.

    Exit 1 when something the asked-for run needs (--encoder, --task, --dataset with --device) is missing, else 0."""
    from runner.doctor import DoctorRequest, diagnose

    reg = load_cli_registry()
    encoders = _ids(encoder, reg.encoders, "encoder")
    datasets = _ids(dataset, reg.datasets, "dataset")
    for task_id in _ids(task, reg.tasks, "task"):
        spec = reg.tasks[task_id].data
        datasets.append(spec["dataset"])
        if spec.get("type") == "transfer":
            datasets.append(reg.tasks[spec["transfer"]["train_task"]].data["dataset"])
    datasets = list(dict.fromkeys(datasets))
    if data_root is not None and len(datasets) != 1:
        fail("--data-root names the root of one data set: ask for exactly one with --dataset or --task")
    if device != "auto" and device != "cpu" and not (device.startswith("cuda") and
                                                      device.partition(":")[2] in ("", *map(str, range(64)))):
        fail(f"--device {device!r}; expected auto, cpu or cuda[:N]")
    report = diagnose(reg, DoctorRequest(encoders, datasets, device, data_root, weights_dir, hashes,
                                         tensorflow=not no_tensorflow))
    if as_json:
        typer.echo(json.dumps(report, indent=2, allow_nan=False))
    else:
        for line in render(report):
            typer.echo(line)
    if report["problems"]:
        raise typer.Exit(EXIT_FAILURE)


def _ids(values: list[str] | None, known: dict, kind: str) -> list[str]:
    ids = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    unknown = [i for i in ids if i not in known]
    if unknown:
        fail(unknown_id(kind, unknown[0], known))
    return ids


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _gpus(gpus) -> str:
    return "; ".join(g if isinstance(g, str) else f"{g['index']}: {g['name']}, {g['free_mib']:,} of "
                     f"{g['total_mib']:,} MiB free" for g in gpus) or "none"


def render(report: dict) -> list[str]:
    """The report as text: one section per block, the problems last."""
    lines = [f"runner {report['runner'] or '(not installed)'}, Python {report['python']}, {report['platform']}", "",
             "packages"]
    lines += _table([[name, version or "-"] for name, version in report["packages"].items()])
    torch, tf, smi = report["torch"], report["tensorflow"], report["nvidia_smi"]
    lines += ["", "frameworks"]
    rows = [["", "version", "built for CUDA", "cuDNN", "GPUs it sees", "import"]]
    if torch.get("installed"):
        rows.append(["torch", torch["version"], torch["cuda_built"] or "-", torch["cudnn"] or "-",
                     _gpus(torch["gpus"]), f"{torch['import_s']} s"])
    else:
        rows.append(["torch", "not installed", "", "", "", ""])
    if not tf.get("checked"):
        rows.append(["tensorflow", "not checked (--no-tensorflow)", "", "", "", ""])
    elif not tf.get("installed"):
        rows.append(["tensorflow", "not installed", "", "", "", ""])
    elif tf.get("error"):
        rows.append(["tensorflow", f"check failed: {tf['error']}", "", "", "", ""])
    else:
        rows.append(["tensorflow", tf["version"], tf["cuda_built"] or "-", tf["cudnn_built"] or "-",
                     _gpus(tf["gpus"]), f"{tf['import_s']} s (in a child process, {tf['child_s']} s in all)"])
    lines += _table(rows)
    if tf.get("checked") and tf.get("installed") and not tf.get("error"):
        lines.append(f"  tensorflow-text: {'imported' if tf['tensorflow_text'] else 'not installed'}; "
                     f"TensorFlow's CUDA-12 libraries: {tf['cuda12_libraries'] or 'not installed (make install-gpu)'}")
    if smi is None:
        lines.append("  nvidia-smi: not found (no NVIDIA driver on this machine)")
    elif smi.get("error"):
        lines.append(f"  nvidia-smi: {smi['error']}")
    else:
        lines.append(f"  nvidia-smi: driver {smi['gpus'][0]['driver'] if smi['gpus'] else '-'}; {_gpus(smi['gpus'])}")
    lines += ["", "encoders"]
    rows = [["id", "adapter", "framework", "packages", "weights", "pins"]]
    for e in report["encoders"]:
        rows.append([e["id"], e["adapter"], e["framework"] or "-",
                     "missing " + ", ".join(e["missing_packages"]) if e["missing_packages"] else "ok",
                     e["weights"] + (f" @ {e['revision'][:12]}" if e.get("revision") and e["weights"] == "missing"
                                     else ""), e["pins"] or "-"])
    lines += _table(rows)
    lines += ["", "data roots"]
    rows = [["dataset", "variable", "root", "holds"]]
    for d in report["datasets"]:
        holds = d["holds"] if isinstance(d["holds"], str) else "; ".join(
            f"{k}: {', '.join(v) if isinstance(v, list) else v or 'MISSING'}" for k, v in (d["holds"] or {}).items())
        rows.append([d["id"], d["root_env"] or "-", d["root"] or "(not set)", holds or "-"])
    lines += _table(rows)
    lines += ["", "folders"]
    lines += _table([[label, f["path"], "exists" if f["exists"] else "absent",
                      f"{f['free_gib']} GiB free" if f["free_gib"] is not None else ""]
                     for label, f in report["folders"].items()])
    lines += ["", f"checked in {report['seconds']} s"]
    if report["problems"]:
        lines += ["", "missing for the asked-for run:"] + [f"  - {p}" for p in report["problems"]]
    return lines
