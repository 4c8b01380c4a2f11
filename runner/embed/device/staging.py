"""Host staging for the device path: reader processes write stored pixels straight into one shared, pinned buffer.

Entry: `staged_batches(paths, batch_size, workers, pin) -> iterator of RawBatch` (runner.embed.device.embedder.raw_batches).

Why: the plain DataLoader route copies each image three times on the host (np.stack in the worker, the worker ->
main transfer through shared memory, the pin-memory thread's copy into page-locked memory) before the one
host -> device copy. Here the main process allocates a ring of `slots` batch-sized slots in shared memory once (and
registers it with CUDA as page-locked memory, cudaHostRegister); the worker reading batch b writes each image's
stored integers directly into slot b % slots, grouped by shape, with the per-image parameters beside them, and sends
back only a small descriptor. One asynchronous copy per batch then moves the used part of the slot to the device.

Slot reuse. The DataLoader hands batch b + P to a worker when the main process takes batch b (P = prefetch_factor x
workers batches are outstanding), so the worker writing batch b + P overwrites the slot of batch b + P - slots. With
slots = P + DEPTH, that is the batch DEPTH steps back; before taking the next batch, the iterator waits for that
batch's release (its device copy's event on CUDA, its consumption on the CPU). A batch's pixels are therefore valid
until DEPTH more batches have been taken; `RawBatch.detached()` copies one out for longer use.

A batch whose pixels do not fit its slot (an unusually large image) travels inline instead, like the plain route,
and is counted (`StagingRing.stats`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from runner.embed.device.batches import PARAMS, RawBatch, RawGroup, bucket_raws, split_reads
from runner.embed.device.read import read_one
from runner.runtime.workers import bounded_workers

ALIGN = 64  # byte alignment of every group inside a slot (any dtype view, cache lines)
DEPTH = 4  # batches the consumer may hold (staged, launched, being fetched) + one spare
PREFETCH = 2  # batches outstanding per reader process (DataLoader prefetch_factor)
IMAGE_BYTES = 8 * 2**20  # slot budget per image: a 2048 x 2048 16-bit frame (the real CR is 1955 x 1841)
SHARED_MEMORY = "/dev/shm"
SHARED_MEMORY_SHARE = 0.5  # at most this share of the free /dev/shm (a container's is often small)
RING_LIMIT = 8 * 2**30


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass
class StagedGroup:
    """Where one same-shape group of a batch lies in its slot (what a reader sends back instead of the pixels)."""

    positions: list[int]  # batch positions of the group's images, in order
    shape: tuple[int, int]
    dtype: str  # numpy dtype string of the stored pixels
    offset: int  # byte offset of the pixels in the slot (params follow at params_offset)
    params_offset: int
    any_window: bool
    all_window: bool
    any_sigmoid: bool
    inline: tuple[np.ndarray, np.ndarray] | None = None  # (pixels, params) when the batch did not fit its slot


@dataclass
class StagedBatch:
    number: int
    start: int
    size: int
    groups: list[StagedGroup]
    failures: dict[int, str] = field(default_factory=dict)
    read_s: float = 0.0
    used_bytes: int = 0  # of the slot


class StagingRing:
    """`slots` x `slot_bytes` bytes of a file in /dev/shm mapped shared (pages allocated on first write), page-locked
    for CUDA when `pin`. Reader processes forked by the DataLoader inherit the mapping; spawned ones map the file by
    its path. The mmap object lives as long as any tensor view of it (torch.frombuffer holds it)."""

    def __init__(self, slots: int, slot_bytes: int, pin: bool = False):
        import tempfile

        import torch

        self.slots, self.slot_bytes = int(slots), int(slot_bytes)
        folder = SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) else None
        fd, self.path = tempfile.mkstemp(prefix="cxr-staging-", dir=folder)
        try:
            os.ftruncate(fd, self.slots * self.slot_bytes)
            self.host = _map(fd, self.slots * self.slot_bytes, torch)
        finally:
            os.close(fd)
        self._owner = True
        self.pinned = False
        if pin and torch.cuda.is_available():
            result = torch.cuda.cudart().cudaHostRegister(self.host.data_ptr(), self.host.numel(), 0)
            self.pinned = int(result) == 0  # otherwise: pageable, still correct (the copy just synchronises)
        self.stats = {"inline_batches": 0}  # batches with an image too large for its slot (sent through the queue)

    def __getstate__(self) -> dict:  # a spawned reader maps the same file
        return {"path": self.path, "slots": self.slots, "slot_bytes": self.slot_bytes, "stats": self.stats}

    def __setstate__(self, state: dict) -> None:
        import torch

        self.__dict__.update(state)
        self._owner, self.pinned = False, False
        fd = os.open(self.path, os.O_RDWR)
        try:
            self.host = _map(fd, self.slots * self.slot_bytes, torch)
        finally:
            os.close(fd)

    @classmethod
    def for_batches(cls, batch_size: int, workers: int, pin: bool) -> StagingRing:
        slots = PREFETCH * max(workers, 0) + DEPTH
        budget = min(RING_LIMIT, _free_shared_memory() * SHARED_MEMORY_SHARE)
        slot_bytes = _aligned(int(min(batch_size * IMAGE_BYTES, budget // slots)))
        return cls(slots, max(slot_bytes, ALIGN), pin)

    def slot_array(self, number: int) -> np.ndarray:
        """Slot of batch `number` as a writable numpy byte array (in a reader process: the inherited mapping)."""
        start = (number % self.slots) * self.slot_bytes
        return self.host.numpy()[start : start + self.slot_bytes]

    def slot_tensor(self, number: int, offset: int, nbytes: int):
        start = (number % self.slots) * self.slot_bytes + offset
        return self.host[start : start + nbytes]

    def close(self) -> None:
        """Unpin and remove the segment's name; the memory goes when the last view of it does."""
        if self.pinned:
            import torch

            torch.cuda.cudart().cudaHostUnregister(self.host.data_ptr())
            self.pinned = False
        if self._owner:
            self._owner = False
            os.unlink(self.path)


def _map(fd: int, size: int, torch):
    import mmap

    return torch.frombuffer(mmap.mmap(fd, size, mmap.MAP_SHARED), dtype=torch.uint8)


def _free_shared_memory() -> float:
    try:
        st = os.statvfs(SHARED_MEMORY)
        return float(st.f_bavail * st.f_frsize)
    except OSError:
        return float(RING_LIMIT)


def write_batch(ring: StagingRing, number: int, start: int, raws: list, failures: dict[int, str],
                read_s: float) -> StagedBatch:
    """Group a batch's RawImages by (shape, dtype) and write each group, then its parameters, into the batch's slot.

    One copy per image (its stored pixels into the slot). Positions are batch positions; failed reads are absent."""

    buckets = bucket_raws(raws)
    slot = ring.slot_array(number)
    fits = sum(_aligned(_pixel_bytes(b)) + _aligned(b.params.nbytes) for b in buckets) <= ring.slot_bytes
    offset, groups = 0, []
    for b in buckets:
        pixels = b.raws[0].pixels
        group = StagedGroup(positions=b.positions, shape=tuple(pixels.shape), dtype=pixels.dtype.str, offset=offset,
                            params_offset=0, any_window=b.any_window, all_window=b.all_window,
                            any_sigmoid=b.any_sigmoid)
        if fits:
            nbytes = _pixel_bytes(b)
            target = slot[offset : offset + nbytes].view(pixels.dtype).reshape(len(b.raws), *pixels.shape)
            for j, raw in enumerate(b.raws):
                target[j] = raw.pixels
            group.params_offset = _aligned(offset + nbytes)
            slot[group.params_offset : group.params_offset + b.params.nbytes].view(np.float32)[:] = b.params.ravel()
            offset = _aligned(group.params_offset + b.params.nbytes)
        else:
            group.inline = (b.stacked(), b.params)
        groups.append(group)
    return StagedBatch(number, start, len(raws), groups, failures, read_s, offset)


def _pixel_bytes(bucket) -> int:
    return len(bucket.raws) * bucket.raws[0].pixels.nbytes


class BatchReader:
    """torch Dataset over batch numbers: item b -> StagedBatch of paths[b*batch_size : (b+1)*batch_size]."""

    def __init__(self, paths: list[str], batch_size: int, ring: StagingRing):
        self.paths, self.batch_size, self.ring = paths, int(batch_size), ring

    def __len__(self) -> int:
        return (len(self.paths) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, number: int) -> StagedBatch:

        start = number * self.batch_size
        raws, failures, read_s = split_reads([read_one(p) for p in self.paths[start : start + self.batch_size]])
        return write_batch(self.ring, number, start, raws, failures, read_s)


def _as_is(batch):
    return batch


def staged_batches(paths: list[str], batch_size: int, workers: int, pin: bool) -> object:
    """RawBatches read by `workers` processes (0: in this one) through a StagingRing (page-locked when `pin`), in
    order, each released (its slot reusable) DEPTH batches later. Yields runner.embed.device.batches.RawBatch."""
    import torch
    from torch.utils.data import DataLoader


    if not paths:
        return
    workers = bounded_workers(workers, -(-len(paths) // max(int(batch_size), 1)))  # at most one per batch
    ring = StagingRing.for_batches(batch_size, workers, pin=pin)
    reader = BatchReader(paths, batch_size, ring)
    loader = DataLoader(reader, batch_size=None, sampler=range(len(reader)), num_workers=workers,
                        collate_fn=_as_is, prefetch_factor=PREFETCH if workers else None, pin_memory=False)
    held: dict[int, RawBatch] = {}
    try:
        it = iter(loader)
        number = 0
        while True:
            # Taking batch `number` lets a reader start on batch number + P, which overwrites the slot of batch
            # number + P - slots = number - DEPTH: that batch must have left its slot.
            old = held.pop(number - DEPTH, None)
            if old is not None:
                old.wait_released()
            try:
                staged = next(it)
            except StopIteration:
                break
            ring.stats["inline_batches"] += any(g.inline is not None for g in staged.groups)
            groups = []
            for g in staged.groups:
                if g.inline is not None:
                    pixels, params = (torch.from_numpy(a) for a in g.inline)
                else:
                    h, w = g.shape
                    nbytes = len(g.positions) * h * w * np.dtype(g.dtype).itemsize
                    pixels = ring.slot_tensor(staged.number, g.offset, nbytes)
                    params = ring.slot_tensor(staged.number, g.params_offset, len(g.positions) * PARAMS * 4)
                    pixels = pixels.view(_torch_dtype(torch, g.dtype)).view(len(g.positions), h, w)
                    params = params.view(torch.float32).view(len(g.positions), -1)
                unsigned16 = np.dtype(g.dtype) == np.uint16
                groups.append(RawGroup(positions=g.positions, pixels=pixels, params=params, unsigned16=unsigned16,
                                       any_window=g.any_window, any_sigmoid=g.any_sigmoid, all_window=g.all_window,
                                       slot_offsets=None if g.inline is not None else (g.offset, g.params_offset)))
            batch = RawBatch(start=staged.start, size=staged.size, groups=groups, failures=staged.failures,
                             read_s=staged.read_s, ring=ring, number=staged.number, used_bytes=staged.used_bytes)
            held[staged.number] = batch
            number += 1
            yield batch
    finally:
        for batch in held.values():
            batch.wait_released()
        del loader
        ring.close()


def _torch_dtype(torch, dtype: str):
    """Stored sample type -> the torch view of its bytes (uint16 travels as int16 and is reinterpreted on the device,
    as the plain route does)."""
    return {"|u1": torch.uint8, "|i1": torch.int8, "<u2": torch.int16, "<i2": torch.int16,
            "<f4": torch.float32}[np.dtype(dtype).str]

