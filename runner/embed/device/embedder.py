"""Read on the CPU, preprocess and embed on the device: the device backend.

Entry: `fast_compute(data_root, encoder, workers, batch_size) -> Compute`, the device backend of
`runner.embed.embedding.embed_manifest` (chosen by runner.embed.plan: automatic on CUDA, `--backend device`); same
result, same cache keys as the CPU backend.

Why: decoding + LUTs + resizing a 2k x 2k DICOM costs ~0.1 s of CPU, merely reading its pixel bytes ~2 ms, and a GPU
does the LUTs and the resize at thousands of images/s. So the CPU side only *reads* (runner.embed.device.read) and the
device preprocesses (runner.embed.device.preprocess).

Readers run in a torch DataLoader (worker processes, bounded prefetch: memory does not grow with the manifest) and
write each batch's stored integers straight into a shared, page-locked ring (runner.embed.device.staging: one host
copy per image). On CUDA each batch then travels in one asynchronous copy on a copy stream; the compute stream waits on
that copy's event, so the copy of batch i+1 overlaps the preprocessing and forward of batch i, and batch i's result is
fetched only after batch i+1 has been launched. Preprocessing reads no value back to the host: which images have a
window is known on the host, and the output rows come in group order and are put back in batch order on the host
after the fetch. bf16 autocast and channels_last follow the card's `precision` block; the batch size is the card's
(or --batch-size) and is halved on CUDA out-of-memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runner.embed.device.batches import group_order, read_batch_size
from runner.embed.device.preprocess import DevicePreprocessor
from runner.embed.device.staging import staged_batches
from runner.embed.rows import Compute
from runner.encoders.base import Encoder, LazyEncoder, adapter_class, pool_tokens
from runner.encoders.torch_base import TorchEncoder

if TYPE_CHECKING:
    from runner.embed.device.batches import RawBatch


def raw_batches(paths: list[str], batch_size: int, workers: int, pin: bool) -> Iterator[RawBatch]:
    """Read files in worker processes, in order, a bounded number of batches ahead, into the staging ring
    (page-locked when `pin`). A batch is valid until runner.embed.device.staging.DEPTH more have been taken (see detached())."""

    return staged_batches(paths, batch_size, workers, pin)


class DeviceEmbedder:
    """Preprocess + forward on the encoder's device; the batch size halves on CUDA out-of-memory.

    The encoder may be lazy (runner eval builds it only when something is not cached): whether its forward takes a
    device tensor is decided from the adapter class, and the model is built (and set to channels_last) on the first
    batch, so a lazily built encoder takes exactly the path an eagerly built one does.
    """

    def __init__(self, encoder: Encoder | LazyEncoder, batch_size: int | None = None):
        import torch


        self.torch = torch
        self.encoder = encoder
        self.device = torch.device(str(encoder.device))
        self.preprocess = DevicePreprocessor(encoder.contract, self.device)
        self.batch_size = int(batch_size or encoder.card["batch_size"])
        self.on_device = issubclass(adapter_class(encoder), TorchEncoder)  # forward() takes a device tensor
        precision = encoder.card["precision"]
        self.bf16 = bool(precision["bf16"]) and self.device.type == "cuda" and self.on_device
        self.channels_last = bool(precision["channels_last"]) and self.device.type == "cuda" and self.on_device
        self._model_ready = False

    def _built(self) -> Encoder:
        """The built encoder (building a lazy one now), its model in the card's memory format."""
        built = self.encoder.encoder if isinstance(self.encoder, LazyEncoder) else self.encoder
        if not self._model_ready:
            if self.channels_last:
                built.model.to(memory_format=self.torch.channels_last)
            self._model_ready = True
        return built

    def forward(self, x):
        """(B, C, h, w) device tensor -> (B, dim) float32 tensor, still on the device (no sync)."""
        torch = self.torch
        encoder = self._built()
        if not self.on_device:  # numpy adapters (pixels, random-cnn, radiomics): their own embed
            return torch.from_numpy(encoder.embed(x.cpu().numpy()))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        parts, i = [], 0
        while i < len(x):
            try:
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
                    out = encoder.forward(x[i : i + self.batch_size])
                pooling = encoder.card["embedding"]["pooling"]
                parts.append(pool_tokens(out.float(), pooling))  # pool_tokens works on tensors too
                i += self.batch_size
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size = max(self.batch_size // 2, 1)
                torch.cuda.empty_cache()
        return torch.cat(parts) if parts else torch.empty((0, self.encoder.dim), device=self.device)

    def read(self, paths: list[str], workers: int) -> Iterator[RawBatch]:
        """The read batches this embedder is fed (what eval reads): staged, page-locked on CUDA."""
        return raw_batches(paths, read_batch_size(self.batch_size), workers, pin=self.device.type == "cuda")

    def run(self, batches: Iterable[RawBatch]) -> Iterator[tuple[RawBatch, np.ndarray]]:
        """(read batch, (n_ok, dim) embeddings of its readable images in position order), in order.

        Read batches are small (READ_BATCH images: a reader's slot stays ~64 MB even for 3.6 Mpx frames); their
        preprocessed inputs are gathered into forward batches of `batch_size`. Three stages are in flight: the next
        read batch's host->device copy on the copy stream, this one's preprocessing and the forward pass on the
        compute stream, and the previous forward batch's result, fetched only after the next one was launched."""
        torch = self.torch
        copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        staged, gathered, rows, pending = None, [], 0, None
        for batch in _with_end(iter(batches)):  # None at the end flushes what is staged and gathered
            ready = None if batch is None else (batch, batch.to_device(self.device, copy_stream))
            if staged is not None:
                gathered.append(self._preprocess(*staged))
                rows += 0 if gathered[-1][1] is None else len(gathered[-1][1])
            if gathered and (rows >= self.batch_size or batch is None):
                launched = (gathered, self._forward_gathered(gathered))
                gathered, rows = [], 0
                if pending is not None:
                    yield from _fetch(*pending)
                pending = launched
            staged = ready
        if pending is not None:
            yield from _fetch(*pending)

    def _preprocess(self, batch: RawBatch, copied):
        """One read batch -> (batch, (n_ok, C, h, w) rows in group order) on the compute stream, after its copy."""
        torch = self.torch
        if copied is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(copied)  # the device waits, not the host
            buffer = batch.device_buffer
            for tensor in [buffer] if buffer is not None else [t for g in batch.groups for t in (g.pixels, g.params)]:
                tensor.record_stream(stream)  # allocated on the copy stream, used here
        n_ok = batch.size - len(batch.failures)
        return batch, (self.preprocess.from_groups(batch.groups, n_ok, in_group_order=True) if n_ok else None)

    def _forward_gathered(self, gathered):
        inputs = [x for _, x in gathered if x is not None]
        return self.forward(self.torch.cat(inputs)) if inputs else None


def _with_end(batches: Iterator[RawBatch]) -> Iterator[RawBatch | None]:
    yield from batches
    yield None


def _fetch(gathered, vectors) -> Iterator[tuple[RawBatch, np.ndarray | None]]:
    """Copy a forward batch's result back and split it per read batch, rows put in position order (they come in
    group order)."""
    host = None if vectors is None else vectors.float().cpu().numpy().astype(np.float32, copy=False)
    used = 0
    for batch, x in gathered:
        if x is None:
            yield batch, None
            continue
        rows = host[used : used + len(x)]
        used += len(x)
        yield batch, rows[np.argsort(group_order(batch.groups), kind="stable")]


def fast_compute(data_root: Path, encoder: Encoder, workers: int, batch_size: int | None) -> Compute:
    """The fast path as a `Compute` for embed_rows_with: DataLoader readers -> DeviceEmbedder."""
    embedder = DeviceEmbedder(encoder, batch_size)

    def compute(todo):
        paths = [str(Path(data_root) / rel) for _, rel, _ in todo]
        for batch, vectors in embedder.run(embedder.read(paths, workers)):
            chunk = todo[batch.start : batch.start + batch.size]
            yield chunk, results_in_order(batch, vectors)

    return compute


def results_in_order(batch: RawBatch, vectors: np.ndarray | None) -> list:
    """Per position of the batch: its embedding row, or its failure reason."""
    rows = iter(vectors if vectors is not None else ())
    return [batch.failures[p] if p in batch.failures else next(rows) for p in range(batch.size)]
