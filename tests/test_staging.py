"""The staging ring and the three-deep device loop, on torch's CPU device (CI has no GPU).

What must hold whatever the device: every batch read through the shared ring holds exactly the pixels and parameters
the plain route (collate_raw) gives, also after its slot has been reused many times and when a batch does not fit its
slot; the iterator waits for the release of the batch DEPTH steps back before taking the next one; and the embedder's
rows, computed in group order, come back in position order with failures in place.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from runner.embed.device import staging
from runner.embed.device.batches import RawReader, collate_raw, group_order
from runner.embed.device.embedder import raw_batches, results_in_order
from runner.embed.device.preprocess import DevicePreprocessor
from runner.embed.device.read import read_raw

CONTRACT = {"size": 24, "channels": 1, "interpolation": "bilinear", "normalize": "none", "bit_depth": "float"}


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    """23 files: 8- and 16-bit PNGs and 16-bit DICOMs of three shapes, interleaved, and two unreadable files."""
    from PIL import Image

    from tests.support import stored_pixels, write_dicom

    folder = tmp_path_factory.mktemp("staging")
    paths = []
    for i in range(23):
        if i in (5, 17):
            path = folder / f"broken{i}.png"
            path.write_bytes(b"not an image")
        elif i % 3 == 0:
            path = folder / f"img{i}.dcm"
            write_dicom(path, stored_pixels((40, 30), np.uint16, 0, 4000, seed=i), WindowCenter=2000, WindowWidth=3000,
                         photometric="MONOCHROME1")
        else:
            path = folder / f"img{i}.png"
            dtype = np.uint8 if i % 3 == 1 else np.uint16
            Image.fromarray(stored_pixels((32 + i % 2, 28), dtype, 0, 250 if dtype == np.uint8 else 60000, seed=i)).save(path)
        paths.append(str(path))
    return paths


def _content(batch) -> dict:
    """position -> (pixels, params) as numpy, whatever the batch's layout."""
    out = {}
    for g in batch.groups:
        for j, p in enumerate(g.positions):
            out[batch.start + p] = (g.pixels[j].numpy().copy(), g.params[j].numpy().copy(), g.all_window)
    return out


def _plain(paths, batch_size):
    reader = RawReader(paths)
    return [collate_raw([reader[i] for i in range(s, min(s + batch_size, len(paths)))])
            for s in range(0, len(paths), batch_size)]


@pytest.mark.parametrize("workers", [0, 2])
def test_ring_batches_hold_what_the_plain_route_reads(mixed_files, workers):
    """Batch size 2, 12 batches: with 2 workers the ring has PREFETCH*2 + DEPTH = 8 slots, so slots are reused."""
    expected = {}
    for batch in _plain(mixed_files, 2):
        expected.update(_content(batch))
    got, failures, slots = {}, {}, set()
    for batch in raw_batches(mixed_files, 2, workers, pin=False):
        got.update(_content(batch))  # read now: the slot is rewritten DEPTH batches later
        failures.update({batch.start + p: r for p, r in batch.failures.items()})
        slots.add(batch.number % batch.ring.slots)
        assert all(g.slot_offsets is not None for g in batch.groups)  # written in place, not inline
    assert len(slots) == min(batch.number + 1, batch.ring.slots) and batch.number + 1 > batch.ring.slots
    assert sorted(failures) == [5, 17] and set(got) == set(expected) == set(range(23)) - {5, 17}
    for pos, (pixels, params, all_window) in expected.items():
        np.testing.assert_array_equal(got[pos][0], pixels)
        np.testing.assert_array_equal(got[pos][1], params)
        assert got[pos][2] == all_window


def test_a_batch_larger_than_its_slot_travels_inline(mixed_files, monkeypatch):
    monkeypatch.setattr(staging, "IMAGE_BYTES", 64)  # slots far too small for any image
    seen = []
    for batch in raw_batches(mixed_files, 4, 0, pin=False):
        seen.append(batch)
        assert all(g.slot_offsets is None for g in batch.groups)
    assert seen[0].ring.stats["inline_batches"] == len(seen) == 6
    got = {}
    for batch in seen:  # inline batches own their pixels: valid however long they are held
        got.update(_content(batch))
    expected = {}
    for batch in _plain(mixed_files, 4):
        expected.update(_content(batch))
    assert all(np.array_equal(got[p][0], expected[p][0]) for p in expected)


def test_the_iterator_waits_for_the_batch_depth_steps_back(mixed_files):
    """Before taking batch j (which lets a reader start writing batch j + P into the slot of batch j - DEPTH), the
    iterator blocks on batch j - DEPTH's release: its device copy's event on CUDA, here a recording stand-in."""
    waited, taken = [], []

    class Released:
        def __init__(self, number):
            self.number = number

        def synchronize(self):
            waited.append((self.number, len(taken)))

    for batch in raw_batches(mixed_files, 2, 2, pin=False):
        batch.released = Released(batch.number)
        taken.append(batch.number)
    assert sorted(n for n, _ in waited) == taken  # every batch released once
    # batch k was awaited just before batch k + DEPTH was taken (the last DEPTH ones at the end)
    assert all(before == min(n + staging.DEPTH, len(taken)) for n, before in waited)


@pytest.mark.parametrize("read_batch", [5, 2, 7])
def test_embedder_rows_come_back_in_position_order(mixed_files, read_batch):
    """Mixed shapes make group order differ from position order; the host permutation after the fetch restores it,
    and failures stay in their places (results_in_order). Read batches of 2 or 7 gather into forward batches of 5
    (several read batches per forward, and one split across two)."""
    from runner.embed.device.embedder import DeviceEmbedder

    class Flatten:  # a numpy-free stand-in encoder: the embedding is the preprocessed image itself
        def __init__(self):
            self.device, self.contract, self.dim = "cpu", CONTRACT, 24 * 24
            self.card = {"batch_size": 5, "precision": {"bf16": False, "channels_last": False},
                         "embedding": {"pooling": "none"}}

        def embed(self, x):
            return x.reshape(len(x), -1)

    embedder = DeviceEmbedder(Flatten(), 5)
    reference = DevicePreprocessor(CONTRACT, "cpu")
    results, reordered, forwards = [], 0, []
    original_forward = embedder.forward
    embedder.forward = lambda x: forwards.append(len(x)) or original_forward(x)
    for batch, vectors in embedder.run(raw_batches(mixed_files, read_batch, 2, pin=False)):
        reordered += group_order(batch.groups) != sorted(group_order(batch.groups))
        results += results_in_order(batch, vectors)
    assert reordered >= 1 or read_batch < 5  # the permutation was exercised (two images are never out of order)
    assert sum(forwards) == 21 and all(n >= 5 for n in forwards[:-1])  # gathered up to the forward batch size
    assert [i for i, r in enumerate(results) if isinstance(r, str)] == [5, 17]
    for i, path in enumerate(mixed_files):
        if i not in (5, 17):
            expected = reference([read_raw(path)])[0].numpy().reshape(-1)
            np.testing.assert_allclose(results[i], expected, atol=1e-6)


def test_to_device_on_cpu_uses_the_slot_in_place(mixed_files):
    batch = next(iter(raw_batches(mixed_files, 3, 0, pin=False)))
    before = batch.groups[0].pixels.data_ptr()
    assert batch.to_device("cpu") is None and batch.groups[0].pixels.data_ptr() == before
    assert batch.ring.slot_tensor(batch.number, 0, 1).data_ptr() <= before  # a view into the ring, not a copy
    copy = batch.detached()
    assert copy.groups[0].pixels.data_ptr() != before
    np.testing.assert_array_equal(copy.groups[0].pixels.numpy(), batch.groups[0].pixels.numpy())


def test_a_spawned_reader_maps_the_same_memory_and_close_removes_it():
    import os
    import pickle

    ring = staging.StagingRing(slots=3, slot_bytes=128)
    other = pickle.loads(pickle.dumps(ring))  # what a spawned reader process receives
    other.slot_array(4)[:5] = [1, 2, 3, 4, 5]  # batch 4 -> slot 1
    assert ring.slot_tensor(1, 0, 5).tolist() == [1, 2, 3, 4, 5]
    ring.close()
    other.close()  # not the owner: removes nothing twice
    assert not os.path.exists(ring.path)
