"""`runner submit` and `runner leaderboard build|serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry.errors import CardError
from runner.cli.app import RunnerApp, app, fail, load_cli_registry, outside_cards, progress_mode
from runner.cli.run_cards import cards_in, copy_cards, run_folder_of
from runner.runtime.progress import phase, reporting

leaderboard_app = RunnerApp(help="Build or view the static leaderboard site.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")

RESULTS_DIR_HELP = "Folder of filed results (default: the registry's leaderboard/results/)."


def _registry(copies: list[tuple[Path, str]] = ()):
    """The registry the commands check against (a seam for tests), with the card copies of a run or results folder."""
    return load_cli_registry(copies=copies)


def cards_of_result(registry, result: dict) -> list:
    """The cards a filed result names (those the registry has)."""
    task = registry.tasks.get(result["task"]["id"])
    found = [registry.encoders.get(result["encoder"]["id"]), task,
             registry.datasets.get(task.spec.dataset) if task else None]
    return [card for card in found if card is not None]


@app.command("submit")
def submit(
    results: Annotated[list[Path], typer.Argument(help="Result JSON file(s) written by `runner eval`.")],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Overwrite a result already filed for the same task, encoder and provenance "
        "(prints what changed).")] = False,
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", help="The frozen manifest to verify the result against: a folder holding manifest.json + "
        "manifest.parquet (or its manifest.json); default: beside the result or one folder up (OUT/<task>/).")] = None,
    results_dir: Annotated[Path | None, typer.Option("--results-dir", help=RESULTS_DIR_HELP)] = None,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="The task's data set: every image the run says it could not embed is read again, and a "
        "claim that does not hold is refused.")] = None,
):
    """File results as the registry regenerates them: against the schema and the current cards, on the manifest the
    registry pins for the task, every number recomputed from the run's predictions (with an embeddings bundle beside
    the result, the classifier refitted by the registry itself); reported results: exactly their publication's
    numbers. The filed file is the registry's regeneration, never the submitted one.

    Exit codes: 0 filed, 1 refused (card changed since the run, another manifest than the pinned one, numbers that do
    not regenerate, over the exclusion budget, a false exclusion claim, already filed), 2 invalid input.
    """
    from leaderboard.filing.submit import SubmitError
    from leaderboard.filing.submit import submit as submit_one
    from leaderboard.filing.verified import default_records_dir, remember_filed
    from runner.results.result import read_result

    worst = 0
    for path in results:
        try:  # the out-of-tree cards the run used travel in its folder (runner.cli.run_cards)
            registry = _registry(cards_in(run_folder_of(path)))
            filed = submit_one(path, registry, results_dir, replace=replace, manifest_path=manifest,
                               data_root=data_root)
        except (SubmitError, CardError) as exc:
            typer.echo(f"error: {path}: {exc}" if str(path) not in str(exc) else f"error: {exc}", err=True)
            worst = max(worst, exc.exit_code)
            continue
        filed_result = read_result(filed.path)
        copy_cards(filed.path.parent, outside_cards(registry, cards_of_result(registry, filed_result)))
        remember_filed(filed.path, registry, default_records_dir())  # a build need not regenerate it again
        if not filed.replaced:
            typer.echo(f"filed {filed.path}")
            continue
        changed = filed.changes(filed_result) if filed.previous is not None else ["(earlier file unreadable)"]
        typer.echo(f"replaced {filed.path}: " + ("; ".join(changed) if changed else "nothing shown changed"))
    raise typer.Exit(worst)


@app.command("audit")
def audit_command(
    result: Annotated[Path, typer.Argument(help="A filed result (in a results folder) with an embeddings bundle.")],
    data_root: Annotated[Path, typer.Option("--data-root", help="The task's data set (its images).")],
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")] = "auto",
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder of the encoder's weights.")] = None,
    trust_custom_code: Annotated[bool, typer.Option(
        "--trust-custom-code", help="Allow an encoder card with adapter: custom to run its Python entry point.")
    ] = False,
):
    """Re-embed a seeded sample of a filed result's images with its encoder and compare each with the filed
    embeddings (registry/benchmarks.yaml leaderboard.audit: how many, seed, minimum cosine); the outcome is recorded
    beside the result (audits/), and the site shows the result as audited only while a passed record is there.

    Exit codes: 0 passed, 1 failed (an embedding differs, or an image could not be embedded), 2 invalid input.
    """
    from leaderboard.filing.audit import audit

    record = audit(result, _registry(cards_in(run_folder_of(result))), data_root, device=device, weights_dir=weights_dir,
                   trust_custom_code=trust_custom_code)
    worst = "n/a" if record.worst is None else f"{record.worst:.6f}"
    typer.echo(f"{'passed' if record.passed else 'FAILED'}: {len(record.image_ids)} images re-embedded, lowest "
               f"cosine {worst} (needed {record.min_cosine}); recorded in audits/{record.embeddings_sha256}.json")
    raise typer.Exit(0 if record.passed else 1)


@leaderboard_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the site into.")] = Path("site"),
    results_dir: Annotated[Path | None, typer.Option("--results-dir", help=RESULTS_DIR_HELP)] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 when any file of the results folder is unparseable, left off the site or fails "
        "verification (a result that fails is shown marked either way).")] = False,
    reverify: Annotated[bool, typer.Option(
        "--reverify", help="Regenerate every filed result, ignoring the records of earlier checks (a record is "
        "reused only when the result, its predictions, embeddings, pinned manifest, cards and the registry's code "
        "are all byte-identical to when it was made).")] = False,
):
    """Render the static site (index.html = Table 1, encoders.html = the encoders ranked, a page per task and
    encoder, leaderboard.json/.csv); prints index.html's path.

    Every filed result is verified again: regenerated by the registry (refitted from its embeddings where filed, every
    number recomputed on the task's pinned manifest) and compared field by field; reported numbers against their
    publication. One that fails is an error here and a visible mark on the site, never left out. A regeneration is
    skipped only where a record (under the embedding cache folder) proves every input unchanged since it passed.
    OUT must be empty, absent, or a site this command built: only the files it wrote there are ever replaced.
    """
    from leaderboard.filing.verified import default_records_dir
    from leaderboard.site.render import SiteDirError, build_site

    results_dir = results_dir or load_cli_registry().home.results_dir
    if not results_dir.is_dir():
        fail(f"results folder {results_dir} does not exist")
    registry = _registry(cards_in(results_dir))  # cards filed beside the results by `runner submit`
    problems: list[tuple[str, str]] = []
    try:
        with reporting(progress_mode()), phase(f"building the site from {results_dir} into {out}"):
            index = build_site(out, results_dir, registry, problems=problems,
                               records_dir=None if reverify else default_records_dir())
    except SiteDirError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot write the site to {out}: {exc}", 1)
    for name, problem in problems:
        what = "not shown" if name == "(not shown)" else f"{name}: not verified"
        typer.echo(f"error: {what}: {problem}", err=True)
    typer.echo(str(index))
    if strict and problems:
        fail(f"{len(problems)} problem(s) with filed results: unverified, unparseable or left off the site "
             "(--strict)", 1)


@leaderboard_app.command("serve")
def serve(
    site_dir: Annotated[Path, typer.Option("--dir", help="Folder of a built site.")] = Path("site"),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1.")] = 8000,
):
    """Serve a built site on http://127.0.0.1:PORT/ for viewing (Ctrl-C stops it)."""
    from leaderboard.site.render import serve as serve_site

    if not (site_dir / "index.html").is_file():
        fail(f"{site_dir} has no index.html; run `runner leaderboard build --out {site_dir}` first")
    try:
        serve_site(site_dir, port)
    except OSError as exc:
        fail(f"cannot serve on 127.0.0.1:{port}: {exc}", 1)
