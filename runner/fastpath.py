"""Read on the CPU, preprocess on the device: the fast embedding pipeline.

Entry: `fast_compute(data_root, encoder, workers, batch_size) -> Compute`, the device backend of
`runner.embed.embed_manifest` (chosen there by `plan_embedding`: automatic on CUDA, `--pipeline fast`); same result,
same cache keys as the CPU pool.

Why: decoding + LUTs + resizing a 2k x 2k DICOM costs ~0.1 s of CPU, merely reading its pixel bytes ~2 ms, and a GPU
does the LUTs and the resize at thousands of images/s. So the CPU side here only *reads*:
  * uncompressed DICOM: PixelData straight into a uint8/uint16/int16 buffer (np.frombuffer, no float copy);
  * compressed DICOM: pydicom's decoder, still to integers;
  * 8/16-bit grayscale PNG (and JPEG/TIFF in mode L / I;16) via Pillow, to uint8/uint16.
Anything unusual (LUT sequences, big-endian, RGB PNGs, a file that fails the fast read) takes the canonical
`runner.imaging.load_image` route instead, so exclusions carry exactly the reasons the CPU pipeline gives.

The device side, batched per image shape, in float32: modality LUT (slope/intercept), VOI window (DICOM PS3.3
C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID, with pydicom's output range), min-max to [0, 1] (PNG: divide by the bit
depth's maximum), MONOCHROME1 inversion, then the encoder card's contract exactly as `imaging.to_encoder_input` applies
it: quantise to `bit_depth`, resize, replicate channels, normalise.

The resize is Pillow's own separable filter (box/bilinear/bicubic a=-0.5/nearest, antialiased by widening the support
when downsampling), applied pass by pass as a gather of each output pixel's taps times the weights Pillow computes. F.interpolate(antialias=True) is a
port of the same filters, but its 'area' mode is adaptive average pooling, not Pillow's box filter; using Pillow's
weights makes the device path agree with the CPU path to float rounding (see tests/test_fastpath.py for the bounds).

Readers run in a torch DataLoader (worker processes, bounded prefetch: memory does not grow with the manifest) and
write each batch's stored integers straight into a shared, page-locked ring (runner.staging: one host copy per
image). On CUDA each batch then travels in one asynchronous copy on a copy stream; the compute stream waits on that
copy's event, so the copy of batch i+1 overlaps the preprocessing and forward of batch i, and batch i's result is
fetched only after batch i+1 has been launched. Preprocessing reads no value back to the host: which images have a
window is known on the host, and the output rows come in group order and are put back in batch order on the host
after the fetch. bf16 autocast and channels_last follow the card's `precision` block; the batch size is the card's
(or --batch-size) and is halved on CUDA out-of-memory.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from runner.embed import Compute
from runner.encoders.base import Encoder, LazyEncoder, adapter_class, pool_tokens
from runner.imaging import (
    PIL_SUFFIXES,
    ImageDecodeError,
    PreprocessContract,
    check_dicom_header,
    load_image,
    normalise,
    read_dicom,
)

# Stored DICOM sample -> numpy dtype for the direct read (little-endian only; others take the canonical route).
_NATIVE_DTYPES = {(8, 0): np.uint8, (8, 1): np.int8, (16, 0): np.uint16, (16, 1): np.int16}
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass
class RawImage:
    """What the CPU hands to the device: stored pixel values and the scalars that turn them into a [0, 1] image.

    `full_scale` set (PNG): image = pixels / full_scale. Unset (DICOM): image = min-max of the LUT output.
    A file that took the canonical route arrives as float32 pixels already in [0, 1] with full_scale 1.
    """

    pixels: np.ndarray  # HxW uint8 | int8 | uint16 | int16 | float32
    slope: float = 1.0
    intercept: float = 0.0
    window: tuple[float, float, str, float, float] | None = None  # (center, width, function, y_min, y_max)
    invert: bool = False  # MONOCHROME1
    full_scale: float | None = None


# ---------------------------------------------------------------------------------------------- CPU: read only


def read_raw(path: str | Path) -> RawImage:
    """Read one file's stored pixels (no float conversion). Raises ImageDecodeError exactly as load_image would."""
    path = Path(path)
    try:
        raw = _read_pil(path) if path.suffix.lower() in PIL_SUFFIXES else _read_dicom_raw(path)
    except Exception:  # noqa: BLE001 - any fast-read failure is re-judged by the canonical loader below
        raw = None
    if raw is None:  # the canonical route: decodes fully, or raises the reason the CPU pipeline records
        return RawImage(pixels=load_image(path), full_scale=1.0)
    return raw


def read_one(path: str) -> tuple[RawImage | str, float]:
    """(RawImage or the exclusion reason, seconds): one image fails, not the run."""
    start = time.perf_counter()
    try:
        item: RawImage | str = read_raw(path)
    except (ImageDecodeError, OSError, MemoryError) as exc:
        from runner.imaging import failure_reason

        item = failure_reason(exc)
    return item, time.perf_counter() - start


def _read_pil(path: Path) -> RawImage | None:
    from PIL import Image

    with Image.open(path) as im:
        if getattr(im, "n_frames", 1) != 1 or im.mode not in ("L", "I;16", "I;16L", "I;16B"):
            return None
        im.load()
        pixels = np.asarray(im)
    if im.mode == "L":
        return RawImage(pixels=pixels, full_scale=255.0)
    return RawImage(pixels=pixels.astype(np.uint16, copy=False), full_scale=65535.0)


def _read_dicom_raw(path: Path) -> RawImage | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    ds = read_dicom(path)
    try:
        header = check_dicom_header(ds, path)
    except ImageDecodeError:
        return None  # the canonical route (load_image) names the reason
    rows, cols, bits, stored, signed = header.rows, header.cols, header.bits, header.stored, header.signed
    photometric, tsyntax = header.photometric, header.transfer_syntax
    # Beyond the shared check, the direct read handles only native sample types without LUT sequences.
    if (bits, signed) not in _NATIVE_DTYPES or ds.get("ModalityLUTSequence") or ds.get("VOILUTSequence") \
            or tsyntax is None:
        return None
    if tsyntax.is_compressed:
        pixels = ds.pixel_array  # pydicom's decoder plugin; integers, like the stored values
    elif tsyntax.is_little_endian and (signed == 0 or stored == bits):
        data = ds.PixelData
        if len(data) < rows * cols * bits // 8:
            return None  # short PixelData: the canonical route names the reason
        pixels = np.frombuffer(data, dtype=_NATIVE_DTYPES[bits, signed], count=rows * cols).reshape(rows, cols)
    else:
        return None
    if pixels.shape != (rows, cols) or pixels.dtype.kind not in "ui":
        return None
    slope, intercept = 1.0, 0.0
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    return RawImage(pixels=pixels, slope=slope, intercept=intercept, window=_window(ds, stored, signed, slope, intercept),
                    invert=photometric == "MONOCHROME1")


def _window(ds, stored: int, signed: int, slope: float, intercept: float):
    """pydicom.apply_windowing's parameters (first window, its output range); ValueError where pydicom raises."""
    if ds.get("WindowCenter") is None or ds.get("WindowWidth") is None:
        return None
    first = [float(ds[k].value[0] if ds[k].VM > 1 else ds[k].value) for k in ("WindowCenter", "WindowWidth")]
    center, width = first
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    if function not in VOI_FUNCTIONS or width < (1 if function == "LINEAR" else 1e-300):
        raise ValueError(f"window {function} width {width}")  # -> canonical route -> its exclusion reason
    y_min, y_max = (0.0, 2.0**stored - 1) if signed == 0 else (-(2.0 ** (stored - 1)), 2.0 ** (stored - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
    return center, width, function, y_min, y_max


# ---------------------------------------------------------------------------------------------- device: preprocess


def _filter(interpolation: str) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """Pillow's resampling filters (Resample.c) and their support."""
    if interpolation == "area":  # Pillow BOX
        return (lambda x: ((x > -0.5) & (x <= 0.5)).astype(np.float64)), 0.5
    if interpolation == "bilinear":
        return (lambda x: np.clip(1.0 - np.abs(x), 0.0, None)), 1.0
    if interpolation == "bicubic":
        a = -0.5

        def cubic(x):
            x = np.abs(x)
            near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
            return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))

        return cubic, 2.0
    raise ValueError(interpolation)


def resize_weights(in_size: int, out_size: int, interpolation: str) -> np.ndarray:
    """(out_size, in_size) matrix M with out = M @ in along one axis, exactly Pillow's coefficients."""
    scale = in_size / out_size
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    centers = (np.arange(out_size) + 0.5) * scale
    if interpolation == "nearest":  # Pillow maps output pixel centres back and truncates (ImagingScaleAffine)
        # ... stepping by repeated addition, whose rounding decides the exact .0 cases
        centers = np.cumsum(np.r_[0.5 * scale, np.full(out_size - 1, scale)])
        weights[np.arange(out_size), np.minimum(centers.astype(np.int64), in_size - 1)] = 1.0
        return weights
    kernel, support = _filter(interpolation)
    filterscale = max(scale, 1.0)
    support *= filterscale
    for i, center in enumerate(centers):
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
        w = kernel((np.arange(lo, hi) - center + 0.5) / filterscale)
        total = w.sum()
        weights[i, lo:hi] = w / total if total != 0 else w
    return weights


class DevicePreprocessor:
    """RawImages -> (B, C, h, w) float32 encoder input on `device`, per an encoder card's `preprocess` block."""

    CHUNK_PIXELS = (8 * 2**20, 256 * 2**20)  # (CPU: stays near the caches, GPU: ~1 GB per float temporary)

    def __init__(self, contract: dict, device="cpu"):
        import torch

        self.torch = torch
        self.spec = PreprocessContract.of(contract)
        self.device = torch.device(device)
        self._weights: dict[tuple[int, int], tuple] = {}
        self.lookup_tables = self.device.type == "cuda"  # see _to_unit
        mean_std = None
        if self.spec.normalize not in ("none", None, "zscore", "xrv"):
            # mean/std checks and broadcasting: the CPU path's own function on a probe array gives (x - m) / s = a x + b
            probe = np.zeros((self.spec.channels, 1, 1), dtype=np.float32)
            b = normalise(probe, self.spec.normalize)
            a = normalise(probe + 1.0, self.spec.normalize) - b
            mean_std = (torch.as_tensor(a, device=self.device), torch.as_tensor(b, device=self.device))
        self._affine = mean_std

    def _band(self, n_in: int, n_out: int):
        """Pillow's weights as (n_out, K) source indices and weights: only the filter's taps, not a dense matrix."""
        key = (n_in, n_out)
        if key not in self._weights:
            dense = resize_weights(n_in, n_out, self.spec.interpolation)
            nonzero = dense != 0
            first = np.where(nonzero.any(1), nonzero.argmax(1), 0)
            taps = int(max((nonzero.shape[1] - nonzero[:, ::-1].argmax(1) - first).max(), 1))
            index = np.minimum(first[:, None] + np.arange(taps), n_in - 1)
            weight = np.take_along_axis(dense, index, 1) * (first[:, None] + np.arange(taps) < n_in)
            self._weights[key] = (self.torch.as_tensor(index, device=self.device),
                                  self.torch.as_tensor(weight, dtype=self.torch.float32, device=self.device))
        return self._weights[key]

    def _resample_last(self, y, n_out: int):
        """Resize the last axis: out[..., j] = sum_k y[..., index[j, k]] * weight[j, k]."""
        index, weight = self._band(y.shape[-1], n_out)
        return (y[..., index] * weight).sum(-1)

    def __call__(self, raws: list[RawImage]):
        return self.from_groups(group_raws(raws), len(raws))

    def from_groups(self, groups: list[RawGroup], n: int, in_group_order: bool = False):
        """(n, C, h, w): row p is the image at position p of the groups; with `in_group_order`, the rows follow the
        groups instead (group_order(groups)), which needs no index on the device: the hot path reorders on the host."""
        torch = self.torch
        out, row = None, 0
        for group in groups:
            pixels = group.pixels.to(self.device, non_blocking=True)
            params = group.params.to(self.device, non_blocking=True)
            # Full-resolution float temporaries in slices of ~CHUNK_PIXELS: bounded memory at any batch size.
            step = max(1, self.CHUNK_PIXELS[self.device.type == "cuda"] // max(pixels[0].numel(), 1))
            for i in range(0, len(pixels), step):
                y = self._resize(self._to_unit(group, pixels[i : i + step], params[i : i + step]))
                if out is None:
                    out = torch.empty((n, *y.shape[1:]), dtype=torch.float32, device=self.device)
                if in_group_order:
                    out[row : row + len(y)] = y
                    row += len(y)
                else:
                    out[torch.as_tensor(group.positions[i : i + step]).to(self.device)] = y
        if out is None:
            return torch.empty((0, self.spec.channels, 1, 1), device=self.device)
        return self._normalise(out[:, None].expand(-1, self.spec.channels, -1, -1))

    # Stored integer type -> (first value, number of values) of its lookup table; floats take the elementwise route.
    _LUT_RANGES: ClassVar[dict[str, tuple[int, int]]] = {"uint8": (0, 256), "int8": (-128, 256), "int16": (-32768, 65536), "uint16": (0, 65536)}

    def _to_unit(self, group: RawGroup, pixels, params):
        """Stored values -> [0, 1] MONOCHROME2 (g, H, W), quantised to the card's bit depth.

        Integer pixels (every direct read) go through one lookup table per image: the whole chain (modality LUT,
        window, min-max, inversion, quantisation) is applied to the 2^bits possible values, then one gather maps
        the image: three passes over the full-resolution frame instead of a dozen. The chain is monotone in the
        stored value, so the image's min and max after the window are the table's values at the stored min and max.
        The table holds exactly the values the elementwise route computes (same float32 operations per value).
        On the CPU device the elementwise route is used: there a gather costs ~120 ms per 3.6 Mpx frame against
        ~3 ms per elementwise pass (measured on the 2-core dev machine, one thread); the GPU has not been measured."""
        torch = self.torch
        kind = "uint16" if group.unsigned16 else str(pixels.dtype).removeprefix("torch.")
        stored = pixels.view(torch.uint16) if group.unsigned16 else pixels  # uint16 travels as int16
        if not self.lookup_tables or kind not in self._LUT_RANGES:  # canonical-route floats, or the CPU device
            x = stored.to(torch.float32)
            windowed = self._window(group, x, params)
            return self._quantise(self._unit(windowed, windowed.amin(dim=(-2, -1), keepdim=True),
                                             windowed.amax(dim=(-2, -1), keepdim=True), params))
        first, count = self._LUT_RANGES[kind]
        g = len(pixels)
        index = stored.to(torch.int32)
        if first:
            index.sub_(first)
        values = torch.arange(first, first + count, dtype=torch.float32, device=pixels.device)
        table = self._window(group, values.expand(g, 1, count).clone(), params)  # (g, 1, count)
        low, high = torch.aminmax(index.view(g, -1), dim=1)
        at_low, at_high = (table[:, 0].gather(1, v[:, None].long())[:, :, None] for v in (low, high))
        table = self._quantise(self._unit(table, torch.minimum(at_low, at_high), torch.maximum(at_low, at_high),
                                          params))
        index.add_((torch.arange(g, dtype=torch.int32, device=pixels.device) * count)[:, None, None])
        return table.view(-1)[index]

    def _window(self, group: RawGroup, x, params):
        """Modality LUT (slope/intercept) and VOI window, in place where possible, per image (g, ...) scalars."""
        torch = self.torch
        slope, intercept, has_window, center, width, func, y_min, y_max = params[:, :8, None, None].unbind(1)
        x.mul_(slope).add_(intercept)
        if group.any_window:
            linear = (func == 0).float()  # pydicom's LINEAR: centre - 0.5, width - 1
            c, w, y_range = center - 0.5 * linear, width - linear, y_max - y_min
            if group.any_sigmoid:
                windowed = torch.where(func == 2, y_range / (1 + torch.exp(-4 * (x - c) / w)) + y_min,
                                       ((x - c) / w + 0.5).clamp_(0.0, 1.0) * y_range + y_min)
            else:  # below the window -> y_min, above -> y_max, linear between: one clamped affine map
                windowed = x.sub(c).div_(w).add_(0.5).clamp_(0.0, 1.0).mul_(y_range).add_(y_min)
            x = windowed if group.all_window else torch.where(has_window > 0, windowed, x)  # host flag: no sync
        return x

    def _unit(self, x, x_min, x_max, params):
        """min-max (DICOM) or / full scale (PNG), and MONOCHROME1 inversion, folded into one affine map per image."""
        torch = self.torch
        invert, full_scale = params[:, 8:10, None, None].unbind(1)
        scaled = full_scale > 0
        lo = torch.where(scaled, torch.zeros_like(full_scale), x_min)
        hi = torch.where(scaled, full_scale, x_max)
        span = hi - lo
        flat = span <= 0  # a flat image carries no information: zeros, as the CPU path
        gain = torch.where(flat, torch.zeros_like(span), 1.0 / torch.where(flat, torch.ones_like(span), span))
        gain = torch.where(invert > 0, -gain, gain)  # (max - x) then min-max == 1 - min-max(x)
        offset = torch.where(flat, torch.zeros_like(span), torch.where(invert > 0, hi, -lo) * gain.abs())
        return x.mul_(gain).add_(offset).clamp_(0.0, 1.0)

    def _quantise(self, y):
        """The card's bit depth, as imaging._quantise_and_resize: 8-bit as grey levels 0..255 (the resize works on
        those, as Pillow does), 16-bit rounded to 1/65535."""
        if self.spec.bit_depth == 8:
            return self.torch.round(y * 255.0)  # half to even, as np.round in the CPU path
        if self.spec.bit_depth == 16:
            return self.torch.round(y * 65535.0) / 65535.0
        return y

    def _resize(self, y):
        """The resize of imaging._quantise_and_resize on a quantised (g, H, W) batch, in Pillow's order of passes."""
        torch = self.torch
        spec = self.spec
        eight = spec.bit_depth == 8  # y is already quantised (_to_unit): grey levels 0..255 when eight
        if spec.size is not None:
            h, w = spec.size
            # Pillow runs the horizontal pass first, except when it widens while the vertical pass shrinks
            passes = ("h", "v") if not (w > y.shape[-1] and h < y.shape[-2]) else ("v", "h")
            for axis in passes:
                if axis == "h" and y.shape[-1] != w:
                    y = self._resample_last(y, w)
                elif axis == "v" and y.shape[-2] != h:
                    y = self._resample_last(y.transpose(-1, -2), h).transpose(-1, -2)
                else:
                    continue
                if eight:  # Pillow keeps the intermediate image in uint8 (round half up, clip)
                    y = torch.floor(y + 0.5).clamp_(0, 255)
        return y / 255.0 if eight else y.clamp_(0.0, 1.0)

    def _normalise(self, x):
        normalize = self.spec.normalize
        if normalize in ("none", None):
            return x.contiguous()
        if normalize == "zscore":  # per image, as the CPU path's x.std() over the whole CxHxW array
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
            return (x - mean) / self.torch.where(std > 0, std, self.torch.ones_like(std))
        if normalize == "xrv":
            return (2.0 * x - 1.0) * 1024.0
        a, b = self._affine
        return x * a + b


# ---------------------------------------------------------------------------------------------- batching on the CPU

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
    ring: object = None  # runner.staging.StagingRing holding the pixels (None: the groups own their tensors)
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
        """A copy that owns its pixels (a ring-backed batch is valid only until runner.staging.DEPTH more are taken)."""
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


def raw_batches(paths: list[str], batch_size: int, workers: int, pin: bool) -> Iterator[RawBatch]:
    """Read files in worker processes, in order, a bounded number of batches ahead, into the staging ring
    (page-locked when `pin`). A batch is valid until runner.staging.DEPTH more have been taken (see detached())."""
    from runner.staging import staged_batches

    return staged_batches(paths, batch_size, workers, pin)


# ---------------------------------------------------------------------------------------------- device: embed


class DeviceEmbedder:
    """Preprocess + forward on the encoder's device; the batch size halves on CUDA out-of-memory.

    The encoder may be lazy (runner eval builds it only when something is not cached): whether its forward takes a
    device tensor is decided from the adapter class, and the model is built (and set to channels_last) on the first
    batch, so a lazily built encoder takes exactly the path an eagerly built one does.
    """

    def __init__(self, encoder: Encoder | LazyEncoder, batch_size: int | None = None):
        import torch

        from runner.encoders.torch_base import TorchEncoder

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


# ---------------------------------------------------------------------------------------------- manifest -> cache

# compute(todo rows) yields (chunk of rows, per row: embedding vector or exclusion reason), in order.
def read_batch_size(batch_size: int) -> int:
    """Images per read batch (a reader's unit of work and staging slot); forward batches gather several."""
    return max(1, min(int(batch_size), READ_BATCH))


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


__all__ = [
    "DeviceEmbedder",
    "DevicePreprocessor",
    "RawImage",
    "RawReader",
    "collate_raw",
    "fast_compute",
    "group_order",
    "raw_batches",
    "raw_params",
    "read_one",
    "read_raw",
    "resize_weights",
    "results_in_order",
]
