"""The device path's batches: read images grouped by (shape, dtype) with the scalars the device needs
(`RawBucket`, `RawGroup`, `RawBatch`), and the torch Dataset readers run in (`RawReader`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from runner.embed.device.read import VOI_FUNCTIONS, read_one

if TYPE_CHECKING:
    from runner.embed.device.read import RawImage


READ_BATCH = 8  # images per reader task: 8 x a 3.6 Mpx 16-bit frame = 58 MB per staging slot

PARAMS = 10  # slope, intercept, has_window, center, width, function, y_min, y_max, invert, full_scale


@dataclass
class RawGroup:
    """Same-shape, same-dtype images of one batch, stacked for one host->device copy."""

    positions: list[int]
    pixels: object  # torch tensor (g, H, W)
    params: object  # torch float32 (g, PARAMS)
    unsigned16: bool
    any_window: bool
    any_sigmoid: bool
    all_window: bool = False
    slot_offsets: tuple[int, int] | None = None  # (pixels, params) byte offsets in a StagingRing slot


def group_order(groups: list[RawGroup]) -> list[int]:
    """Batch positions in the order from_groups(in_group_order=True) emits their rows."""
    return [p for g in groups for p in g.positions]


@dataclass
class RawBucket:
    """Same-shape, same-dtype images of one batch and what the device needs to know about them (host side)."""

    positions: list[int]
    raws: list[RawImage]
    params: np.ndarray  # float32 (g, PARAMS)
    any_window: bool
    all_window: bool
    any_sigmoid: bool

    def stacked(self) -> np.ndarray:
        """(g, H, W) stored pixels; uint16 travels as int16 (reinterpreted on the device)."""
        pixels = np.stack([r.pixels for r in self.raws])
        return pixels.view(np.int16) if pixels.dtype == np.uint16 else pixels


def bucket_raws(raws: Iterable[RawImage | None]) -> list[RawBucket]:
    """Images by (shape, dtype), in order of first appearance; None entries (failed reads) are skipped."""
    by_key: dict[tuple, list[tuple[int, RawImage]]] = {}
    for pos, raw in enumerate(raws):
        if raw is not None:
            by_key.setdefault((raw.pixels.shape, raw.pixels.dtype.str), []).append((pos, raw))
    buckets = []
    for items in by_key.values():
        windows = [r.window for _, r in items if r.window is not None]
        buckets.append(RawBucket(
            positions=[p for p, _ in items], raws=[r for _, r in items],
            params=np.array([raw_params(r) for _, r in items], dtype=np.float32), any_window=bool(windows),
            all_window=len(windows) == len(items), any_sigmoid=any(w[2] == "SIGMOID" for w in windows)))
    return buckets


def group_raws(raws: Iterable[RawImage | None]) -> list[RawGroup]:
    """Stack images by (shape, dtype) into tensors; failed reads keep their positions free."""
    import torch

    return [RawGroup(positions=b.positions, pixels=torch.from_numpy(b.stacked()), params=torch.from_numpy(b.params),
                     unsigned16=b.raws[0].pixels.dtype == np.uint16, any_window=b.any_window,
                     any_sigmoid=b.any_sigmoid, all_window=b.all_window)
            for b in bucket_raws(raws)]


def raw_params(raw: RawImage) -> list[float]:
    center, width, function, y_min, y_max = raw.window or (0.0, 1.0, "LINEAR", 0.0, 1.0)
    return [raw.slope, raw.intercept, float(raw.window is not None), center, width, VOI_FUNCTIONS.index(function),
            y_min, y_max, float(raw.invert), raw.full_scale or 0.0]


@dataclass
class RawBatch:
    """One DataLoader batch: the groups to preprocess, and which positions failed to read (with the reason)."""

    start: int
    size: int
    groups: list[RawGroup]
    failures: dict[int, str] = field(default_factory=dict)
    read_s: float = 0.0  # CPU seconds spent reading, summed over the batch (in the worker)
    ring: object = None  # runner.embed.device.staging.StagingRing holding the pixels (None: the groups own their tensors)
    number: int = 0  # batch number (its ring slot is number % slots)
    used_bytes: int = 0  # of the slot
    released: object = None  # CUDA event after which the slot may be rewritten (its copy to the device is done)
    device_buffer: object = None  # the slot bytes on the device (to_device), kept alive while the compute stream uses them

    def to_device(self, device, stream=None) -> object:
        """Move the groups to `device` (one copy of the used slot bytes when ring-backed), on `stream` if given;
        returns the CUDA event the consumer waits on (None on the CPU, where the slot's views are used in place)."""
        import torch

        device = torch.device(device)
        if device.type != "cuda":
            return None
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            buffer = None
            if self.ring is not None and self.used_bytes:
                buffer = self.ring.slot_tensor(self.number, 0, self.used_bytes).to(device, non_blocking=True)
            for g in self.groups:
                if g.slot_offsets is not None and buffer is not None:
                    h, w = g.pixels.shape[1:]
                    count, itemsize = len(g.positions), g.pixels.element_size()
                    pixels_at, params_at = g.slot_offsets
                    g.pixels = buffer[pixels_at : pixels_at + count * h * w * itemsize].view(g.pixels.dtype).view(
                        count, h, w)
                    g.params = buffer[params_at : params_at + g.params.numel() * 4].view(torch.float32).view(
                        count, -1)
                else:
                    g.pixels, g.params = g.pixels.to(device, non_blocking=True), g.params.to(device, non_blocking=True)
            self.device_buffer = buffer
            event = torch.cuda.Event()
            event.record()
        self.released = event
        return event

    def wait_released(self) -> None:
        """Block until the batch's slot may be rewritten (CUDA: its copy is done; CPU: it was consumed in place)."""
        if self.released is not None:
            self.released.synchronize()

    def detached(self) -> RawBatch:
        """A copy that owns its pixels (a ring-backed batch is valid only until runner.embed.device.staging.DEPTH more are taken)."""
        groups = [RawGroup(g.positions, g.pixels.clone(), g.params.clone(), g.unsigned16, g.any_window, g.any_sigmoid,
                           g.all_window) for g in self.groups]
        return RawBatch(self.start, self.size, groups, dict(self.failures), self.read_s)


class RawReader:
    """torch Dataset over file paths: item i -> (i, RawImage | exclusion reason, seconds)."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        item, seconds = read_one(self.paths[i])
        return i, item, seconds


def split_reads(items) -> tuple[list, dict[int, str], float]:
    """`read_one` results of one batch -> (RawImages, None for failures; {position: reason}; read seconds summed)."""
    raws = [None if isinstance(item, str) else item for item, _ in items]
    failures = {pos: item for pos, (item, _) in enumerate(items) if isinstance(item, str)}
    return raws, failures, sum(s for _, s in items)


def collate_raw(items) -> RawBatch:
    raws, failures, read_s = split_reads([(item, s) for _, item, s in items])
    return RawBatch(start=items[0][0], size=len(items), groups=group_raws(raws), failures=failures, read_s=read_s)


# compute(todo rows) yields (chunk of rows, per row: embedding vector or exclusion reason), in order.
def read_batch_size(batch_size: int) -> int:
    """Images per read batch (a reader's unit of work and staging slot); forward batches gather several."""
    return max(1, min(int(batch_size), READ_BATCH))
