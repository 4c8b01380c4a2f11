"""registry.card_memo: a valid card's checks are kept on disk for the next process, by the card's bytes and the
registry's code; a missing, broken, foreign or forged entry is a miss and the card is checked again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry import card_memo, cards
from registry.errors import CardError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def memo(tmp_path, monkeypatch):
    """An empty cache root and an empty in-process memo (so every load_card below asks the disk); returns a function
    that says how many times the schema check ran."""
    monkeypatch.setenv(card_memo.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cards, "_CHECKED", type(cards._CHECKED)())
    calls = []
    real = cards.schema_problems

    def counted(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(cards, "schema_problems", counted)

    return lambda: len(calls)


def load_card(path: Path):
    """registry.cards.load_card in a new process, as far as the in-process memo goes."""
    cards._CHECKED.clear()
    return cards.load_card(path)


def _card_copy(tmp_path: Path) -> Path:
    path = tmp_path / "encoders" / "pixels.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((REPO / "encoders" / "pixels.yaml").read_bytes())
    return path


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "card-checks").rglob("*.json"))


def _same_card(a, b) -> bool:
    return (a.data, a.sha256, a.behaviour_sha256, a.kind) == (b.data, b.sha256, b.behaviour_sha256, b.kind)


def test_the_next_process_reads_the_checks_and_gets_the_same_card(memo, tmp_path):
    path = _card_copy(tmp_path)
    first = load_card(path)
    assert memo() == 1 and len(_entries(tmp_path)) == 1
    again = load_card(path)
    assert memo() == 1, "the stored checks were not used"
    assert _same_card(again, first) and again.data is not first.data
    again.data["id"] = "changed"  # each Card still gets its own copy
    assert load_card(path).data["id"] == "pixels"


def test_an_edited_card_is_checked_again(memo, tmp_path):
    path = _card_copy(tmp_path)
    load_card(path)
    path.write_text(path.read_text() + "\nunexpected_field: 1\n")
    with pytest.raises(CardError, match="unexpected_field"):
        load_card(path)
    assert memo() == 2 and len(_entries(tmp_path)) == 1  # the invalid card is not remembered


def test_other_registry_code_is_a_miss(memo, tmp_path, monkeypatch):
    path = _card_copy(tmp_path)
    load_card(path)
    monkeypatch.setattr(card_memo, "code_fingerprint", lambda: "0" * 64)  # e.g. an edited schema
    load_card(path)
    assert memo() == 2 and len(_entries(tmp_path)) == 2


def test_only_the_most_recent_code_versions_are_kept(memo, tmp_path, monkeypatch):
    """Each change of the registry's code starts a folder; the oldest go when one more starts, never the newest."""
    import os

    path = _card_copy(tmp_path)
    folders = tmp_path / "cache" / "card-checks"
    for age, code in enumerate("abcdef"):  # six earlier code versions, "a" the most recently written
        (folders / (code * 16)).mkdir(parents=True)
        (folders / (code * 16) / "entry.json").write_text("{}")
        os.utime(folders / (code * 16), (1e9 - age, 1e9 - age))
    outside = tmp_path / "not-the-cache"
    (outside / "keep.txt").parent.mkdir()
    (outside / "keep.txt").write_text("mine")
    (folders / ("z" * 16)).symlink_to(outside)  # a hostile link: not a folder of the cache's own
    monkeypatch.setattr(card_memo, "code_fingerprint", lambda: "9" * 64)
    load_card(path)
    kept = sorted(f.name[0] for f in folders.iterdir() if not f.is_symlink())
    assert kept == ["9", "a", "b", "c"] and card_memo.KEEP_CODE_VERSIONS == 4
    assert (outside / "keep.txt").read_text() == "mine" and (folders / ("z" * 16)).is_symlink()
    load_card(path)  # the folder exists: nothing more is removed
    assert sorted(f.name[0] for f in folders.iterdir() if not f.is_symlink()) == kept


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-json", "a-list", "other-key", "other-code",
                                    "forged-data", "no-hash", "deep"])
def test_a_broken_or_forged_entry_is_a_miss_and_is_replaced(memo, tmp_path, damage):
    path = _card_copy(tmp_path)
    first = load_card(path)
    (entry,) = _entries(tmp_path)
    text = entry.read_text()
    stored = json.loads(text)
    if damage == "empty":
        entry.write_text("")
    elif damage == "truncated":
        entry.write_text(text[: len(text) // 2])
    elif damage == "not-json":
        entry.write_bytes(b"\xff\xfe not json")
    elif damage == "a-list":
        entry.write_text("[]")
    elif damage == "other-key":
        entry.write_text(json.dumps({**stored, "key": ["encoder", "0" * 64]}))
    elif damage == "other-code":
        entry.write_text(json.dumps({**stored, "code": "0" * 64}))
    elif damage == "forged-data":  # the data changed, the recorded card hash not
        entry.write_text(json.dumps({**stored, "filled": {**stored["filled"], "adapter": "custom"}}))
    elif damage == "no-hash":
        entry.write_text(json.dumps({k: v for k, v in stored.items() if k != "behaviour_sha256"}))
    else:
        entry.write_text("[" * 100_000 + "]" * 100_000)
    again = load_card(path)
    assert memo() == 2, "a damaged entry was used"
    assert _same_card(again, first)
    assert json.loads(entry.read_text()) == stored  # checked again and stored again


def test_an_unwritable_cache_changes_nothing(memo, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(card_memo.CACHE_ENV, str(blocker / "cache"))  # below a file: cannot be made
    path = _card_copy(tmp_path)
    first = load_card(path)
    assert _same_card(load_card(path), first) and memo() == 2


def test_data_json_cannot_give_back_is_not_stored(memo, tmp_path):
    key = ("encoder", b"\x01" * 32)
    card_memo.remember_checked(key, ({1: "an int key"}, "x", "y"))
    card_memo.remember_checked(key, ({"a": (1, 2)}, "x", "y"))
    assert _entries(tmp_path) == [] and card_memo.recall_checked(key) is None
    data = {"a": [1, 1.0, None, True, "é"]}
    card_memo.remember_checked(key, (data, card_memo.sha256_of(data), "y"))
    recalled = card_memo.recall_checked(key)
    assert recalled == (data, card_memo.sha256_of(data), "y") and type(recalled[0]["a"][1]) is float


def test_the_embedding_cache_and_the_card_checks_share_one_root(monkeypatch, tmp_path):
    from runner.embed.cache import default_cache_dir

    monkeypatch.setenv(card_memo.CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == card_memo.cache_root() == tmp_path
    monkeypatch.delenv(card_memo.CACHE_ENV)
    assert default_cache_dir() == card_memo.cache_root() == Path.home() / ".cache" / "cxr-registry"
