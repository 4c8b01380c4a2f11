"""Cards: every card validates; broken cards give exit 2 with file and field; hashing is stable."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from registry.cards import CardError, collect, load_card, load_registry, validate_files
from registry.hashing import canonical_json, sha256_of
from tests.support import run_in_process

REPO = Path(__file__).resolve().parent.parent
PAPER_TASKS = [f"{label}-{ds}" for label in ("atelectasis", "edema", "effusion", "opacity") for ds in ("mimic", "nih")]


def run_cli(*args: str, root: Path | None = None) -> subprocess.CompletedProcess:
    """`runner ARGS` through the real entry point, in a subprocess (~1 s of imports each on a 2-core box)."""
    env = None
    if root is not None:
        import os

        env = {**os.environ, "CXR_REGISTRY_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "runner.cli.main", *args], check=False, capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)


def run_cli_here(*args: str, root: Path | None = None) -> subprocess.CompletedProcess:
    """The same command in this process (typer's CliRunner, tests.support.run_in_process): the subprocess start is
    proven by test_cli_validate_passes_and_show_prints_hash and the SUBPROCESS_SAMPLE of broken cards."""
    return run_in_process(list(args), {"CXR_REGISTRY_ROOT": str(root)} if root is not None else None)


@pytest.fixture()
def registry_copy(tmp_path: Path) -> Path:
    """A copy of the repo's cards in a temp root, to break without touching the repo."""
    for folder in ("tasks", "encoders", "registry/datasets"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


# ------------------------------------------------------------------ the real registry


def test_every_card_in_repo_validates():
    reg, problems = collect(REPO)
    assert problems == [], "\n".join(map(str, problems))
    assert set(PAPER_TASKS) <= set(reg.tasks)
    assert {"mimic-cxr", "mimic-cxr-jpg", "nih-cxr14"} <= set(reg.datasets)
    assert {"cxr-foundation", "medimageinsight"} <= set(reg.encoders)


def test_cli_validate_passes_and_show_prints_hash():
    result = run_cli("validate")
    assert result.returncode == 0, result.stderr
    shown = run_cli("show", "task", "effusion-mimic")
    assert shown.returncode == 0, shown.stderr
    card = load_registry(REPO).tasks["effusion-mimic"]
    assert card.sha256 in shown.stdout
    body = yaml.safe_load("\n".join(line for line in shown.stdout.splitlines() if not line.startswith("#")))
    assert body == card.data  # the printed card is the resolved card, defaults included
    assert "extends" not in body


def test_cli_list_tables():
    for kind, some_id in (("tasks", "effusion-nih"), ("encoders", "medimageinsight"), ("datasets", "nih-cxr14")):
        result = run_cli_here("list", kind)
        assert result.returncode == 0, result.stderr
        assert some_id in result.stdout


def test_show_unknown_id_suggests():
    result = run_cli_here("show", "task", "efusion-mimic")
    assert result.returncode == 2
    assert "effusion-mimic" in result.stderr
    assert "Traceback" not in result.stderr


def test_paper_tasks_say_what_the_paper_says():
    reg = load_registry(REPO)
    for task_id in PAPER_TASKS:
        data = reg.tasks[task_id].data
        assert data["sampling"]["positives"] == 1000 and data["sampling"]["negatives"] == 1000
        assert sorted(data["views"]) == ["AP", "PA"]
        assert data["split"]["method"] == "stratified-group-kfold" and data["split"]["folds"] == 5


# ------------------------------------------------------------------ broken cards


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _task_text(root: Path, task_id: str = "effusion-mimic") -> str:
    return (root / "tasks" / f"{task_id}.yaml").read_text()


def _mutated_task(root: Path, **changes) -> str:
    """The effusion-mimic card with top-level fields replaced (None deletes)."""
    data = yaml.safe_load(_task_text(root))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


BROKEN = {
    # name: (relative file, content builder(root) -> text/bytes, field pointer expected in the message)
    "unknown-key": ("tasks/effusion-mimic.yaml", lambda r: _task_text(r) + "samplng: {positives: 5}\n", "/samplng"),
    "duplicate-key": ("tasks/effusion-mimic.yaml", lambda r: _task_text(r) + "dataset: nih-cxr14\n", "/dataset"),
    "wrong-type": ("tasks/effusion-mimic.yaml", lambda r: _mutated_task(r, title=["not", "a", "string"]), "/title"),
    "missing-field": ("tasks/effusion-mimic.yaml", lambda r: _mutated_task(r, dataset=None), "dataset"),
    "unknown-dataset": ("tasks/effusion-mimic.yaml", lambda r: _mutated_task(r, dataset="mimic-cxr-v9"), "/dataset"),
    "unknown-label": ("tasks/effusion-mimic.yaml",
                      lambda r: _mutated_task(r, label={"id": "pneumothorax-x", "name": "X"}), "/label/id"),
    "negative-sample-size": ("tasks/effusion-mimic.yaml",
                             lambda r: _mutated_task(r, sampling={"positives": -5, "negatives": 10, "seed": 0}),
                             "/sampling/positives"),
    "bad-extends-target": ("tasks/effusion-mimic.yaml",
                           lambda r: "extends: _nope.yaml\n" + _mutated_task(r, extends=None), "/extends"),
    "extends-cycle": ("tasks/_cycle_a.yaml", None, "/extends"),
    "not-yaml": ("tasks/effusion-mimic.yaml", lambda r: "id: [unclosed\n  title: x: y\n", ""),
    "empty-file": ("tasks/effusion-mimic.yaml", lambda r: "", ""),
    "top-level-list": ("tasks/effusion-mimic.yaml", lambda r: "- a\n- b\n", ""),
    "non-utf8": ("tasks/effusion-mimic.yaml", lambda r: b"id: effusion-mimic\ntitle: \xff\xfe\n", ""),
    "id-not-filename": ("tasks/effusion-mimic.yaml", lambda r: _mutated_task(r, id="effusion-other"), "/id"),
    "bad-enum": ("tasks/effusion-mimic.yaml",
                 lambda r: _mutated_task(r, split={"method": "stratified-group-kfld", "folds": 5, "seed": 0}),
                 "/split/method"),
    "huge-number": ("tasks/effusion-mimic.yaml",
                    lambda r: _mutated_task(r, sampling={"positives": 10**30, "negatives": 10, "seed": 0}),
                    "/sampling/positives"),
    "encoder-unknown-adapter": ("encoders/pixels.yaml",
                                lambda r: (r / "encoders/pixels.yaml").read_text().replace("adapter: pixels",
                                                                                           "adapter: pixles"),
                                "/adapter"),
    "dataset-path-escapes-root": ("registry/datasets/nih-cxr14.yaml", None, "/files"),
    "encoder-bad-dim": ("encoders/pixels.yaml",
                        lambda r: yaml.safe_dump({**yaml.safe_load((r / "encoders/pixels.yaml").read_text()),
                                                  "embedding": {"dim": "many"}}), "/embedding/dim"),
}


def _build_broken(name: str, root: Path) -> Path:
    rel, builder, _ = BROKEN[name]
    if name == "extends-cycle":
        _write(root / "tasks/_cycle_b.yaml", "extends: _cycle_a.yaml\n")
        _write(root / "tasks/_cycle_a.yaml", "extends: _cycle_b.yaml\n")
        return _write(root / "tasks/effusion-mimic.yaml", "extends: _cycle_a.yaml\n" + _mutated_task(root, extends=None))
    if name == "dataset-path-escapes-root":
        data = yaml.safe_load((root / rel).read_text())
        data["files"] = {**data.get("files", {}), "metadata": ["../../etc/passwd"]}
        return _write(root / rel, yaml.safe_dump(data, sort_keys=False))
    return _write(root / rel, builder(root))


def test_there_are_at_least_15_broken_cards():
    assert len(BROKEN) >= 15


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_card_is_named_with_file_and_field(name: str, registry_copy: Path):
    path = _build_broken(name, registry_copy)
    problems = validate_files([path], root=registry_copy)
    assert problems, f"{name}: no problem reported"
    text = "\n".join(map(str, problems))
    assert path.name in text or "_cycle" in text, text
    assert BROKEN[name][2] in text, text


SUBPROCESS_SAMPLE = {"non-utf8"}  # through the real entry point; the others in this process (run_cli_here)


@pytest.mark.parametrize("name", ["unknown-key", "duplicate-key", "non-utf8", "extends-cycle", "unknown-label"])
def test_broken_card_cli_exit_2_without_traceback(name: str, registry_copy: Path):
    path = _build_broken(name, registry_copy)
    for args in (("validate", str(path)), ("validate",)):
        result = (run_cli if name in SUBPROCESS_SAMPLE else run_cli_here)(*args, root=registry_copy)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert path.name in result.stderr or "_cycle" in result.stderr
        assert "Traceback" not in result.stderr


def test_messages_carry_line_and_did_you_mean(registry_copy: Path):
    original = (registry_copy / "tasks/effusion-mimic.yaml").read_text()
    path = _build_broken("unknown-key", registry_copy)
    problem = validate_files([path], root=registry_copy)[0]
    assert problem.line == len(path.read_text().splitlines())
    assert problem.suggestion == "sampling"
    _write(path, original)
    dup = _build_broken("duplicate-key", registry_copy)
    with pytest.raises(CardError) as info:
        load_card(dup)
    assert "duplicate key 'dataset'" in str(info.value) and info.value.line is not None
    _write(path, original)
    unknown = _build_broken("unknown-dataset", registry_copy)
    problem = validate_files([unknown], root=registry_copy)[0]
    assert problem.suggestion == "mimic-cxr"


def test_error_in_defaults_file_points_at_the_defaults_file(registry_copy: Path):
    card = load_card(registry_copy / "tasks/effusion-mimic.yaml")
    defaults = [s.file for s in card.sources[1:]]
    assert defaults, "paper task cards extend a defaults file"
    text = defaults[-1].read_text()
    _write(defaults[-1], text + "\nunexpected_field: 1\n")
    problems = validate_files([registry_copy / "tasks/effusion-mimic.yaml"], root=registry_copy)
    assert any(p.file == defaults[-1] and p.pointer == "/unexpected_field" for p in problems), problems


# ------------------------------------------------------------------ hashing


def test_hash_is_stable_and_order_independent():
    a = {"b": [1, 2, {"y": 1, "x": 2}], "a": "é"}
    b = {"a": "é", "b": [1, 2, {"x": 2, "y": 1}]}
    assert sha256_of(a) == sha256_of(b)
    assert canonical_json(a) == '{"a":"é","b":[1,2,{"x":2,"y":1}]}'
    assert sha256_of(a) != sha256_of({**a, "a": "e"})
    assert sha256_of(a) != sha256_of({**a, "b": [2, 1, {"x": 2, "y": 1}]})  # list order matters
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_card_hash_ignores_comments_and_key_order_but_not_values(registry_copy: Path):
    path = registry_copy / "tasks/effusion-mimic.yaml"
    original = load_card(path).sha256
    data = yaml.safe_load(path.read_text())
    reordered = dict(reversed(list(data.items())))
    _write(path, "# a comment\n" + yaml.safe_dump(reordered, sort_keys=False))
    assert load_card(path).sha256 == original
    data["sampling"] = {**data.get("sampling", {}), "seed": 12345}
    _write(path, yaml.safe_dump(data, sort_keys=False))
    assert load_card(path).sha256 != original


def test_changing_the_defaults_file_changes_every_extending_card_hash(registry_copy: Path):
    before = {t: load_card(registry_copy / f"tasks/{t}.yaml").sha256 for t in PAPER_TASKS}
    defaults = load_card(registry_copy / "tasks/effusion-mimic.yaml").sources[-1].file
    data = yaml.safe_load(defaults.read_text())
    data["metrics"] = {**data.get("metrics", {}), "threshold": 0.4}
    _write(defaults, yaml.safe_dump(data))
    after = {t: load_card(registry_copy / f"tasks/{t}.yaml").sha256 for t in PAPER_TASKS}
    assert all(before[t] != after[t] for t in PAPER_TASKS)


def test_show_json_roundtrip():
    shown = run_cli_here("show", "encoder", "medimageinsight", "--json")
    assert shown.returncode == 0, shown.stderr
    payload = json.loads(shown.stdout)
    assert payload["sha256"] == sha256_of(payload["card"])


@pytest.mark.parametrize("schema_path", sorted((REPO / "registry" / "schemas").glob("*.schema.json")),
                         ids=lambda p: p.name)
def test_every_schema_is_a_valid_json_schema(schema_path: Path):
    """The meta-schema check the loaders no longer repeat in every process (registry.schemas.validator)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    Draft202012Validator.check_schema(json.loads(schema_path.read_text(encoding="utf-8")))
    broken = {**json.loads(schema_path.read_text(encoding="utf-8")), "type": 42}
    with pytest.raises(SchemaError):  # the check can fail
        Draft202012Validator.check_schema(broken)


def test_remembered_parses_are_bounded(tmp_path: Path, monkeypatch):
    """read_yaml remembers parses by content hash, least recently used first out, never more than PARSED_MAX."""
    from registry import yaml_reading

    monkeypatch.setattr(yaml_reading, "PARSED_MAX", 5)
    monkeypatch.setattr(yaml_reading, "_PARSED", type(yaml_reading._PARSED)())
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"c{i}.yaml")
        paths[-1].write_text(f"id: card-{i}\n")
        assert yaml_reading.read_yaml(paths[-1])[0] == {"id": f"card-{i}"}
    assert len(yaml_reading._PARSED) == 5
    yaml_reading.read_yaml(paths[3])  # used again: now the most recent
    paths.append(tmp_path / "c8.yaml")
    paths[-1].write_text("id: card-8\n")
    yaml_reading.read_yaml(paths[-1])
    remembered = [data["id"] for data, _ in yaml_reading._PARSED.values()]
    assert remembered == ["card-5", "card-6", "card-7", "card-3", "card-8"]


def test_remembered_checks_follow_every_file_a_card_is_made_of(registry_copy: Path, monkeypatch):
    """load_card remembers what the schema check, defaults and hashes made of a valid card by its kind and the bytes
    of every file it is resolved from: an edit to the card or to the defaults it extends is checked again, the same
    bytes read as another kind are checked as that kind, and every Card gets its own copy of the data."""
    from registry import cards

    monkeypatch.setattr(cards, "_CHECKED", type(cards._CHECKED)())
    path = registry_copy / "tasks/effusion-mimic.yaml"
    first = load_card(path)
    first.data["sampling"]["seed"] = 99  # a caller's change stays in its own copy
    again = load_card(path)
    assert again.data["sampling"]["seed"] != 99 and again.data == load_card(REPO / "tasks/effusion-mimic.yaml").data
    defaults = first.sources[-1].file
    text = defaults.read_text()
    _write(defaults, text + "\nunexpected_field: 1\n")  # the card file itself is unchanged
    with pytest.raises(CardError, match="unexpected_field"):
        load_card(path)
    assert "seed: 0" in text
    _write(defaults, text.replace("seed: 0", "seed: 7", 1))
    assert load_card(path).sha256 != again.sha256
    _write(defaults, text)
    assert load_card(path).sha256 == again.sha256
    load_card(registry_copy / "encoders/pixels.yaml")
    with pytest.raises(CardError):  # the same bytes as a task card: checked against the task schema
        load_card(registry_copy / "encoders/pixels.yaml", kind="task")
    monkeypatch.setattr(cards, "CHECKED_MAX", 2)
    for name in ("effusion-nih", "edema-nih", "opacity-nih"):
        load_card(registry_copy / f"tasks/{name}.yaml")
    assert len(cards._CHECKED) == 2


def test_a_site_shows_each_card_as_it_is_now(monkeypatch):
    """The site's card YAML (leaderboard.site.render._card_yaml) is remembered by the pickle of the card's data: an
    edit in place, a changed number type or key order each gives the YAML of the edited card, never a stale one."""
    from leaderboard.site import render

    monkeypatch.setattr(render, "_CARD_YAML", type(render._CARD_YAML)())

    def fresh(data):
        saved, render._CARD_YAML = render._CARD_YAML, type(render._CARD_YAML)()
        try:
            return render._card_yaml(data)
        finally:
            render._CARD_YAML = saved

    # a copy: the registry load is cached for the process, and this test edits the card data in place
    data = copy.deepcopy(load_registry(REPO).tasks["effusion-mimic"].data)
    first = render._card_yaml(data)
    assert render._card_yaml(data) is first and first == fresh(data)
    data["sampling"]["seed"] = 7  # in place
    assert "seed: 7" in render._card_yaml(data) and render._card_yaml(data) == fresh(data)
    data["sampling"]["seed"] = 7.0
    assert "seed: 7.0" in render._card_yaml(data)
    data["sampling"] = dict(reversed(list(data["sampling"].items())))
    assert render._card_yaml(data) == fresh(data) != first
    monkeypatch.setattr(render, "CARD_YAML_MAX", 2)
    for task in ("effusion-nih", "edema-nih", "opacity-nih"):
        render._card_yaml(load_registry(REPO).tasks[task].data)
    assert len(render._CARD_YAML) == 2


def test_resolved_child_is_path_resolve(tmp_path: Path):
    """registry.extends.resolved_child (one lstat for a plain name in a resolved folder) gives what Path.resolve gives:
    for a plain file, a symlink (to a file, to a folder, dangling), '..', a path with folders, an absolute path, a
    name that does not exist."""
    from registry.extends import resolved_child

    folder = (tmp_path / "reg" / "tasks")
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text("id: a\n")
    (tmp_path / "outside.yaml").write_text("id: o\n")
    (folder / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    (folder / "dir-link").symlink_to(tmp_path)
    (folder / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    folder = folder.resolve()
    for name in ("a.yaml", "link.yaml", "dir-link", "dangling.yaml", "..", ".", "dir-link/outside.yaml",
                 "../tasks/a.yaml", str(tmp_path / "outside.yaml"), "missing.yaml"):
        assert resolved_child(folder, name) == (folder / name).resolve(), name


def test_a_card_outside_the_registry_takes_the_kind_of_its_innermost_kind_folder(tmp_path: Path):
    """`runner validate PATH` on an encoder card kept in a researcher's own ~/tasks/study/encoders/ checks it as an
    encoder card, not as a task card because some folder above is called tasks; no kind folder: its fields decide."""
    encoder = (REPO / "encoders" / "pixels.yaml").read_text(encoding="utf-8")
    nested = tmp_path / "tasks" / "study" / "encoders" / "pixels.yaml"
    nested.parent.mkdir(parents=True)
    nested.write_text(encoder, encoding="utf-8")
    loose = tmp_path / "pixels.yaml"
    loose.write_text(encoder, encoding="utf-8")
    for path in (nested, loose):
        assert load_card(path).kind == "encoder", path
    assert load_card(REPO / "tasks" / "effusion-nih.yaml").kind == "task"
