"""The device path's CPU side: read a file's stored pixels, no float conversion (`read_raw`, `read_one`).

  * uncompressed DICOM: PixelData straight into a uint8/uint16/int16 buffer (np.frombuffer, no float copy);
  * compressed DICOM: pydicom's decoder, still to integers;
  * 8/16-bit grayscale PNG (and JPEG/TIFF in mode L / I;16) via Pillow, to uint8/uint16.
Anything unusual (LUT sequences, big-endian, RGB PNGs, a file that fails the fast read) takes the canonical
`runner.data.imaging.load_image` route instead, so exclusions carry exactly the reasons the CPU pipeline gives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.data.imaging import (
    PIL_SUFFIXES,
    ImageDecodeError,
    check_dicom_header,
    check_pil_header,
    failure_reason,
    load_image,
    read_dicom,
)

# Stored DICOM sample -> numpy dtype for the direct read (little-endian only; others take the canonical route).
_NATIVE_DTYPES = {(8, 0): np.uint8, (8, 1): np.int8, (16, 0): np.uint16, (16, 1): np.int16}

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
FLOAT32_SAFE = 1e30  # modality LUT outputs beyond this (float32 tops out at 3.4e38) take the canonical route


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

        item = failure_reason(exc)
    return item, time.perf_counter() - start


def _read_pil(path: Path) -> RawImage | None:
    from PIL import Image

    with Image.open(path) as im:
        check_pil_header(im, path)  # too small, 16-bit colour: the canonical route names the reason
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
    if abs(slope) * 2.0**stored + abs(intercept) > FLOAT32_SAFE:
        return None  # the device computes in float32: past its range the canonical float64 route decides
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
