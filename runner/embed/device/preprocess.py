"""The device path's preprocessing, batched per image shape, in float32 (`DevicePreprocessor`).

Modality LUT (slope/intercept), VOI window (DICOM PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID, with pydicom's
output range), min-max to [0, 1] (PNG: divide by the bit depth's maximum), MONOCHROME1 inversion, then the encoder
card's contract exactly as `imaging.to_encoder_input` applies it: quantise to `bit_depth`, resize, replicate channels,
normalise.

The resize is Pillow's own separable filter (box/bilinear/bicubic a=-0.5/nearest, antialiased by widening the support
when downsampling), applied pass by pass as a gather of each output pixel's taps times the weights Pillow computes.
F.interpolate(antialias=True) is a port of the same filters, but its 'area' mode is adaptive average pooling, not
Pillow's box filter; using Pillow's weights makes the device path agree with the CPU path to float rounding (see
tests/test_fastpath.py for the bounds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from runner.data.imaging import (
    PreprocessContract,
    normalise,
)
from runner.embed.device.batches import group_raws

if TYPE_CHECKING:
    from runner.embed.device.batches import RawGroup
    from runner.embed.device.read import RawImage


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
