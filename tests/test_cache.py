"""The embedding cache: keys, namespaces, atomic shards, concurrent writers; and exclusions at the embedding stage."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import time

import numpy as np
import pandas as pd
import pytest

from runner.embed.cache import EmbeddingCache, ImageIdentity, _checksum, _keys_sha256


def test_put_then_lookup_roundtrip_is_memory_mapped_and_counted(tmp_path):
    cache = EmbeddingCache("a" * 64, {"size": 32}, root=tmp_path)
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(["k1", "k2", "k3"], vectors)
    fresh = EmbeddingCache("a" * 64, {"size": 32}, root=tmp_path)  # another run reads the shard from disk
    found = fresh.lookup(["k1", "k3", "nope"])
    assert fresh.hits == 2 and fresh.misses == 1
    np.testing.assert_array_equal(found["k3"], vectors[2])
    assert isinstance(found["k1"].base, np.memmap) or isinstance(found["k1"], np.memmap)


def test_encoder_card_or_contract_change_gives_a_new_namespace(tmp_path):
    base = EmbeddingCache("a" * 64, {"size": 32}, root=tmp_path)
    base.put(["k"], np.ones((1, 2), dtype=np.float32))
    assert "k" not in EmbeddingCache("b" * 64, {"size": 32}, root=tmp_path)
    assert "k" not in EmbeddingCache("a" * 64, {"size": 64}, root=tmp_path)
    assert "k" in EmbeddingCache("a" * 64, {"size": 32}, root=tmp_path)


def test_image_key_changes_with_the_file_and_the_augmentation(tmp_path):
    f = tmp_path / "img.dcm"
    f.write_bytes(b"x" * 10)
    k1 = ImageIdentity.of_file("ds", tmp_path, "img.dcm").key()
    assert ImageIdentity.of_file("ds", tmp_path, "img.dcm").key() == k1
    assert ImageIdentity.of_file("ds", tmp_path, "img.dcm").key("rot1|seed=0") != k1
    assert ImageIdentity.of_file("other", tmp_path, "img.dcm").key() != k1
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert ImageIdentity.of_file("ds", tmp_path, "img.dcm").key() != k1


def test_half_written_shards_are_never_read(tmp_path):
    cache = EmbeddingCache("a" * 64, {}, root=tmp_path)
    cache.put(["k1"], np.ones((1, 2), dtype=np.float32))
    # a run killed between the .npy and its keys file leaves an orphan array; a killed temp write leaves a .tmp
    np.save(cache.dir / "shard-orphan.npy", np.zeros((1, 2), dtype=np.float32))
    (cache.dir / ".shard-x.keys.json.123.tmp").write_text('["k2"')
    (cache.dir / "shard-broken.keys.json").write_text('["k3"')  # truncated keys file: ignored, recomputed
    again = EmbeddingCache("a" * 64, {}, root=tmp_path)
    assert again.lookup(["k1", "k2", "k3"]).keys() == {"k1"}


def test_non_finite_embeddings_are_refused(tmp_path):
    cache = EmbeddingCache("a" * 64, {}, root=tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        cache.put(["k"], np.array([[np.nan, 1.0]], dtype=np.float32))


def _writer(root, start):
    cache = EmbeddingCache("c" * 64, {}, root=root)
    for i in range(start, start + 20):
        cache.put([f"k{i}", f"shared{i % 5}"], np.full((2, 8), i, dtype=np.float32))


def test_two_processes_writing_the_same_cache_do_not_corrupt_it(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(tmp_path, s)) for s in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = EmbeddingCache("c" * 64, {}, root=tmp_path)
    keys = [f"k{i}" for i in [*range(20), *range(100, 120)]]
    found = cache.lookup(keys)
    assert len(found) == 40
    assert all(float(found[f"k{i}"][0]) == i for i in [*range(20), *range(100, 120)])
    assert not list(cache.dir.glob("*.tmp"))


@pytest.fixture
def pixels_card():
    from registry.cards import load_registry

    return load_registry().encoders["pixels"]


def test_embed_records_missing_and_undecodable_files_as_exclusions(tmp_path, demo_data_dir, pixels_card):
    from runner.embed.embedding import embed_manifest
    from runner.encoders import load_encoder

    data = tmp_path / "data"
    shutil.copytree(demo_data_dir / "files", data / "files")
    meta = pd.read_csv(demo_data_dir / "metadata.csv")
    paths = [p for p in meta["path"].astype(str) if (data / p).is_file()][:6]
    (data / paths[1]).write_bytes(b"not a dicom at all")
    (data / paths[2]).unlink()
    manifest = pd.DataFrame({"image_id": [f"i{k}" for k in range(6)], "path": paths})
    encoder = load_encoder(pixels_card.data, device="cpu")
    cache = EmbeddingCache(pixels_card.sha256, encoder.contract, root=tmp_path / "cache")
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    out = embed_manifest(manifest, data, "demo-cxr", encoder, cache, workers=0, progress=False)
    # in-process decoding leaves the run's Ctrl-C and SIGTERM handling alone (a decode worker's setup ignored SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    reasons = {e["image_id"]: e["reason"] for e in out.exclusions}
    assert reasons["i2"] == "missing-file"
    assert reasons["i1"].startswith("decode-failed")
    assert "i0" in out.image_ids and "i1" not in out.image_ids and out.original.shape[1] == 1024
    assert np.isfinite(out.original).all()
    # a rerun decodes nothing: embeddings and the decode failure both come from the cache
    again = embed_manifest(manifest, data, "demo-cxr", encoder, EmbeddingCache(
        pixels_card.sha256, encoder.contract, root=tmp_path / "cache"), workers=0, progress=False)
    assert again.n_computed == 0
    assert again.exclusions == out.exclusions
    np.testing.assert_array_equal(again.original, out.original)
    # a repaired file (new size/mtime) is a new image: it is decoded again
    shutil.copy(demo_data_dir / paths[1], data / paths[1])
    repaired = embed_manifest(manifest, data, "demo-cxr", encoder, EmbeddingCache(
        pixels_card.sha256, encoder.contract, root=tmp_path / "cache"), workers=0, progress=False)
    assert repaired.n_computed == 1 and "i1" in repaired.image_ids


# ------------------------------------------------------------------------------------------ issue 25 item 6


def _reverse_rows(shard):
    np.save(shard, np.load(shard)[::-1].copy())  # a valid .npy: only the checksum can tell


def _flip_a_byte(shard):
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x01  # inside the last row's float32 bytes
    shard.write_bytes(bytes(data))


def _wider(shard):
    rows = np.load(shard)
    np.save(shard, np.concatenate([rows, rows[:, :1]], axis=1))  # the same rows, one column more


def _keys_reversed(shard):
    keys_file = shard.with_name(shard.name[: -len(".npy")] + ".keys.json")
    meta = json.loads(keys_file.read_text())
    if isinstance(meta, dict):
        meta["keys"] = meta["keys"][::-1]
    else:  # the format before issue 25: a plain list
        meta = meta[::-1]
    keys_file.write_text(json.dumps(meta))


@pytest.mark.parametrize("corrupt", [_reverse_rows, _flip_a_byte, _wider, _keys_reversed])
def test_a_shard_that_is_not_what_was_written_is_quarantined_and_recomputed(tmp_path, capfd, corrupt):
    """Issue 25: a shard with its rows reversed (a valid file) gave AUROC 0.843 -> 0.508 with no warning. Each shard
    carries a checksum of its keys and rows; a mismatch moves it aside, says so in one line, and its keys miss."""
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    EmbeddingCache("a" * 64, {}, root=tmp_path).put(["k1", "k2", "k3"], vectors)
    shard = next(tmp_path.glob("*/shard-*.npy"))
    corrupt(shard)
    capfd.readouterr()
    again = EmbeddingCache("a" * 64, {}, root=tmp_path)
    assert again.lookup(["k1", "k2", "k3"]) == {} and again.misses == 3
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is corrupt" in lines[0] and "recomputing" in lines[0], lines
    assert (shard.parent / "quarantine" / shard.name).exists() and not shard.exists()
    again.put(["k1", "k2", "k3"], vectors)  # recomputed, and read back intact
    np.testing.assert_array_equal(EmbeddingCache("a" * 64, {}, root=tmp_path).lookup(["k3"])["k3"], vectors[2])


def _forge(shard, rows):
    """Replace a shard's rows and write the checksum that matches them: only the other checks can refuse it."""
    keys_file = shard.with_name(shard.name[: -len(".npy")] + ".keys.json")
    meta = json.loads(keys_file.read_text())
    np.save(shard, rows)
    meta["sha256"] = _checksum(_keys_sha256(meta["keys"]), np.load(shard))
    keys_file.write_text(json.dumps(meta))


@pytest.mark.parametrize("rows, why", [
    (np.full((3, 4), np.nan, dtype=np.float32), "3 of its 3 rows hold NaN or Infinity"),
    (np.ones((3, 5), dtype=np.float32), "rows 5 wide, the encoder's embeddings are 4 wide"),
])
def test_a_shard_put_would_never_write_is_quarantined_even_with_its_checksum(tmp_path, capfd, rows, why):
    """One check and one quarantine for every shard problem: rows `put` refuses (NaN, another width than the
    encoder's) are refused even when the keys file's checksum was made to match them."""
    EmbeddingCache("a" * 64, {}, root=tmp_path).put(["k1", "k2", "k3"], np.zeros((3, 4), dtype=np.float32))
    shard = next(tmp_path.glob("*/shard-*.npy"))
    _forge(shard, rows)
    capfd.readouterr()
    again = EmbeddingCache("a" * 64, {}, root=tmp_path)
    assert again.lookup(["k1", "k2", "k3"], dim=4) == {} and again.misses == 3
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and why in lines[0] and "is corrupt" in lines[0], lines
    assert (shard.parent / "quarantine" / shard.name).exists() and not shard.exists()


def test_the_width_is_checked_on_every_lookup(tmp_path, capfd):
    """A shard already read (its checksum checked) is still refused by a lookup that expects another width."""
    EmbeddingCache("a" * 64, {}, root=tmp_path).put(["k1"], np.zeros((1, 4), dtype=np.float32))
    cache = EmbeddingCache("a" * 64, {}, root=tmp_path)
    assert cache.lookup(["k1"], dim=4).keys() == {"k1"}
    assert cache.lookup(["k1"], dim=8) == {} and "rows 4 wide, the encoder's embeddings are 8 wide" in \
        capfd.readouterr().err
    assert len(cache.quarantined) == 1 and "k1" not in cache


def test_an_intact_shard_passes_its_check_once(tmp_path, capfd):
    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    keys = [f"k{i}" for i in range(50)]
    EmbeddingCache("a" * 64, {}, root=tmp_path).put(keys, vectors)
    again = EmbeddingCache("a" * 64, {}, root=tmp_path)
    found = again.lookup(keys)
    np.testing.assert_array_equal(np.stack([found[k] for k in keys]), vectors)
    assert again.quarantined == [] and capfd.readouterr().err == ""


def test_re_embed_reads_nothing_older_and_the_new_rows_win(tmp_path):
    """--re-embed: a cache opened with not_before_ns reads none of the earlier entries or failure records; what it
    writes replaces them for every later reader, even when the new shard groups the keys differently."""
    old = EmbeddingCache("a" * 64, {}, root=tmp_path)
    old.put(["k1", "k2"], np.zeros((2, 2), dtype=np.float32))
    old.put_failures({"k3": "decode-failed: truncated"})
    since = time.time_ns()
    fresh = EmbeddingCache("a" * 64, {}, root=tmp_path, not_before_ns=since)
    assert fresh.lookup(["k1", "k2"]) == {} and fresh.failure("k3") is None
    fresh.put(["k2"], np.full((1, 2), 2.0, dtype=np.float32))  # another chunking: a new shard beside the old one
    fresh.put(["k1"], np.full((1, 2), 1.0, dtype=np.float32))
    assert float(fresh.lookup(["k1"])["k1"][0]) == 1.0
    later = EmbeddingCache("a" * 64, {}, root=tmp_path)  # a later run, no --re-embed: the new rows, not the old
    found = later.lookup(["k1", "k2"])
    assert float(found["k1"][0]) == 1.0 and float(found["k2"][0]) == 2.0
    assert later.failure("k3") == "decode-failed: truncated"  # an ordinary run still reads the failure record


def test_the_namespace_follows_what_made_the_embeddings(tmp_path):
    from runner.embed.made_by import EncoderInputs

    made = EncoderInputs({"w.safetensors": "1" * 64}, "", {}, {"torch": "2.0"})
    EmbeddingCache("a" * 64, {}, root=tmp_path, made_by=made).put(["k"], np.ones((1, 2), dtype=np.float32))
    assert "k" in EmbeddingCache("a" * 64, {}, root=tmp_path, made_by=EncoderInputs(**made.__dict__))
    for other in (EncoderInputs({"w.safetensors": "2" * 64}, "", {}, {"torch": "2.0"}),  # other weights
                  EncoderInputs({"w.safetensors": "1" * 64}, "", {"mine": "3" * 64}, {"torch": "2.0"}),  # code
                  EncoderInputs({"w.safetensors": "1" * 64}, "", {}, {"torch": "2.1"})):  # a package version
        assert "k" not in EmbeddingCache("a" * 64, {}, root=tmp_path, made_by=other)
