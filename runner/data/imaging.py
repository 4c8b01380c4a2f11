"""Decode one image file to a float32 HxW array in [0, 1], MONOCHROME2, and shape it for an encoder.

`load_image` is the one entry point for pixels. DICOM goes through pydicom: modality LUT (rescale), VOI LUT or
window (always in float, so rescaled data cannot trip an integer-range bug), MONOCHROME1 inversion, then min-max
to [0, 1]. PNG/JPEG go through Pillow and are divided by the true maximum of their bit depth.
Every failure to read one file becomes `ImageDecodeError` with a short machine-readable `.reason`, so the
pipeline can count and record the exclusion instead of crashing.

`to_encoder_input` applies an encoder card's `preprocess` block (size, interpolation, channels, bit depth, normalisation).
"""

from __future__ import annotations

import errno
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from registry.errors import RegistryError

PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
# Decompression-bomb bound: declared pixels above it are excluded before any decode (50 MP: a 7000 x 7000 detector;
# the largest CXRs are ~4300 x 3500). Its float64 working copy is then at most 400 MB. The dataset card field
# `max_image_megapixels` overrides it where sampling checks files (runner.sample.sampler); this default is the schema's.
DEFAULT_MAX_PIXELS = 50_000_000
# Fewer pixels a side than this is no image (a 1 x 1 file min-max scales to one flat value): excluded, reason
# `bad-dimensions`. The bound DICOM always had (Rows/Columns >= 2), now for PNG/JPEG too; it excludes no radiograph,
# so it changes no number of a valid image and lives here rather than in a card.
MIN_IMAGE_SIDE = 2
PNG_COLOUR_TYPES_WITH_CHANNELS = {2: "RGB", 4: "grey + alpha", 6: "RGBA"}  # PNG spec, IHDR colour type
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian: the whole dataset is zlib-compressed
# Errors that say nothing about the file: the same bytes may read fine on the next try, so they are never
# remembered as a permanent decode failure (runner.embed.rows does not cache them).
TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.EINTR, errno.ENOMEM, errno.EBUSY, errno.ESTALE}


def is_transient(exc: BaseException) -> bool:
    """True for out-of-memory, timeouts and I/O errors of the storage, not of the file's content."""
    return isinstance(exc, (MemoryError, TimeoutError)) or (isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS)


def failure_reason(exc: BaseException) -> str:
    """The exclusion reason recorded for a file that could not be prepared; 'transient: ...' is not cached."""
    if isinstance(exc, ImageDecodeError):
        return f"decode-failed: {exc.reason}"
    if is_transient(exc):
        return f"transient: {'out of memory' if isinstance(exc, MemoryError) else type(exc).__name__}" + (
            f" ({exc.strerror})" if isinstance(exc, OSError) and exc.strerror else "")
    return f"unreadable: {getattr(exc, 'strerror', None) or type(exc).__name__}"


class ImageDecodeError(RegistryError):
    """One file could not be turned into an image. `.reason` is a short slug, `str()` the human message."""

    exit_code = 2

    def __init__(self, reason: str, path: str | Path, detail: str):
        self.reason = reason
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.path}: {detail} ({reason})")


# ---------------------------------------------------------------------------------------------- loading


def load_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read a DICOM, PNG or JPEG file → float32 HxW in [0, 1], bright = dense. Raises ImageDecodeError.

    An image declaring more than `max_pixels` (default DEFAULT_MAX_PIXELS) is refused before it is decoded
    (reason `too-many-pixels`; a deflated DICOM inflating past it: `decompression-bomb`). MemoryError and transient
    I/O errors propagate (`is_transient`): they are not a property of the file."""
    path = Path(path)
    limit = int(max_pixels or DEFAULT_MAX_PIXELS)
    try:
        _check_file(path)
        if path.suffix.lower() in PIL_SUFFIXES:
            return _load_pil(path, limit)
        return _load_dicom(path, limit)
    except (ImageDecodeError, MemoryError, OSError):  # OSError: the callers tell transient from unreadable
        raise
    except Exception as exc:  # noqa: BLE001 - a header value no check foresaw: this file is excluded, on every path
        raise ImageDecodeError("decode-failed", path, f"{type(exc).__name__}: {exc}"[:300]) from None


def read_view_position(path: str | Path) -> str:
    """The DICOM ViewPosition tag, upper-case and stripped ("" if absent or not DICOM); pixels are not decoded."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in PIL_SUFFIXES:
        return ""
    ds = read_dicom(path, stop_before_pixels=True)
    return str(ds.get("ViewPosition", "") or "").strip().upper()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageDecodeError("missing-file", path, "file does not exist")
    if not path.is_file():
        raise ImageDecodeError("not-a-file", path, "path is not a regular file")
    if path.stat().st_size == 0:
        raise ImageDecodeError("zero-bytes", path, "file is empty (0 bytes)")


def _check_deflated(path: Path, max_pixels: int) -> None:
    """A deflated DICOM is inflated whole by pydicom before any header can be read: inflate it here first, in
    bounded steps, and refuse one that inflates past what `max_pixels` 32-bit pixels (+ 1 MB of header) need."""
    import zlib

    from pydicom.filereader import _read_file_meta_info, read_preamble

    try:
        with path.open("rb") as handle:
            read_preamble(handle, False)
            meta = _read_file_meta_info(handle)
            if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
                return
            limit, inflated = max_pixels * 4 + (1 << 20), 0
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            for block in iter(lambda: handle.read(1 << 16), b""):
                inflated += len(inflater.decompress(block, limit - inflated + 1))
                while inflater.unconsumed_tail and inflated <= limit:
                    inflated += len(inflater.decompress(inflater.unconsumed_tail, limit - inflated + 1))
                if inflated > limit:
                    raise ImageDecodeError("decompression-bomb", path, f"deflated DICOM inflates past {limit:,} bytes "
                                           f"(the {max_pixels:,}-pixel bound)")
    except ImageDecodeError:
        raise
    except OSError as exc:
        if is_transient(exc):
            raise
    except Exception:  # noqa: BLE001 - not a readable deflated file: dcmread reports what is wrong with it
        return


def read_dicom(path: Path, stop_before_pixels: bool = False, defer_size: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS):
    """pydicom.dcmread with every failure (and a truncation pydicom only warns about) as an ImageDecodeError;
    a deflated file is inflated in bounded steps first (decompression bombs)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    _check_deflated(path, max_pixels)

    # pydicom only *warns* when a file ends inside an undefined-length element (e.g. a truncated JPEG 2000
    # PixelData) and then silently drops the element, so the warning is the only evidence of truncation.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size)
        except InvalidDicomError as exc:
            raise ImageDecodeError("not-dicom", path, f"not a DICOM file ({exc})") from None
        except PermissionError as exc:
            raise ImageDecodeError("unreadable", path, f"cannot read file ({exc})") from None
        except MemoryError:
            raise
        except OSError as exc:
            if is_transient(exc):
                raise
            raise ImageDecodeError("truncated", path, f"file ends unexpectedly ({exc})") from None
        except EOFError as exc:
            raise ImageDecodeError("truncated", path, f"file ends unexpectedly ({exc})") from None
        except Exception as exc:  # noqa: BLE001  pydicom raises many types on malformed headers
            raise ImageDecodeError("bad-header", path, f"cannot parse DICOM header ({type(exc).__name__}: {exc})") from None
    if any("end of file" in str(w.message).lower() for w in caught):
        raise ImageDecodeError("truncated", path, "file ends before the end of an element (truncated)")
    return ds


@dataclass(frozen=True)
class DicomHeader:
    """What a DICOM header says about its pixels, after the checks every read makes (CPU and device paths)."""

    rows: int
    cols: int
    bits: int  # BitsAllocated
    stored: int  # BitsStored
    signed: int  # PixelRepresentation
    photometric: str  # MONOCHROME1 | MONOCHROME2
    transfer_syntax: object  # pydicom UID or None


def check_dicom_header(ds, path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> DicomHeader:
    """The one DICOM header check: one grayscale frame with sane dimensions, no more than `max_pixels` declared, a
    known transfer syntax. Raises ImageDecodeError with a machine-readable reason."""
    if "PixelData" not in ds:
        raise ImageDecodeError("no-pixel-data", path, "DICOM has no PixelData element")
    _check_dicom_geometry(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    rows, cols, bits = (int_tag(ds, k, 0, path) for k in ("Rows", "Columns", "BitsAllocated"))
    if rows * cols > max_pixels:
        raise ImageDecodeError("too-many-pixels", path, f"{rows} x {cols} = {rows * cols:,} pixels declared, more than "
                               f"the {max_pixels:,} allowed (dataset card max_image_megapixels)")
    stored = int_tag(ds, "BitsStored", bits, path)
    if not 1 <= stored <= bits:
        raise ImageDecodeError("bad-bit-depth", path, f"BitsStored={stored} does not fit BitsAllocated={bits}")
    tsyntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if tsyntax is not None and not tsyntax.is_transfer_syntax:  # .is_compressed raises on an unknown UID
        raise ImageDecodeError("unsupported-transfer-syntax", path, f"unknown transfer syntax UID {tsyntax}")
    _check_rescale(ds, path)
    return DicomHeader(rows, cols, bits, stored, int_tag(ds, "PixelRepresentation", 0, path), photometric, tsyntax)


def _one_value(ds, keyword: str, path: Path):
    """A header element's single value (None when absent or empty); several values are a malformed header."""
    value = ds.get(keyword)
    if value is None or isinstance(value, (str, bytes)) and not value.strip():
        return None
    if not isinstance(value, (str, bytes, int, float)):  # pydicom's MultiValue (or a list): VM > 1
        shown = ", ".join(str(v)[:20] for v in list(value)[:4])
        raise ImageDecodeError("bad-header", path, f"{keyword} holds {len(value)} values ({shown}); one expected")
    return value


def int_tag(ds, keyword: str, default: int, path: Path) -> int:
    """A DICOM integer tag (Rows, SamplesPerPixel, NumberOfFrames...) that pydicom read but int() may refuse:
    a tag with several values or text that is not a whole number becomes ImageDecodeError `bad-header`."""
    value = _one_value(ds, keyword, path)
    if value is None:
        return default
    try:
        number = float(value)
        if not number.is_integer():
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise ImageDecodeError("bad-header", path, f"{keyword} is {str(value)[:40]!r}, not a whole number") from None


def _check_rescale(ds, path: Path) -> None:
    """RescaleSlope 0 maps every pixel to the intercept (a blank image that min-max would pass on as zeros): the
    file is excluded, like a slope that is not a finite number. A Modality LUT Sequence, where present, is used
    instead of the slope (pydicom apply_modality_lut) and is not judged here."""
    if "ModalityLUTSequence" in ds:
        return
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = _one_value(ds, keyword, path)
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ImageDecodeError("bad-rescale", path, f"{keyword} is {str(value)[:40]!r}, not a number") from None
        if not math.isfinite(number) or (keyword == "RescaleSlope" and number == 0):
            raise ImageDecodeError("bad-rescale", path, f"{keyword} {str(value)[:40]}: every pixel would be the "
                                   "same value (slope 0) or not a number; the image is not usable")


def verify_header(path: str | Path, max_pixels: int | None = None) -> None:
    """The fast file check (`sampling.verify: header`): header parses and the pixel data is all there, undecoded.

    DICOM: the header is read with large values deferred (pydicom `defer_size`), then the same grayscale, frame and
    dimension rules as `load_image`; native (uncompressed) PixelData must hold Rows x Columns x BitsAllocated/8 bytes
    and end inside the file; encapsulated (compressed) PixelData must have been read to its delimiter without a
    truncation warning and hold at least one non-empty fragment. PNG/JPEG/...: Pillow's header and chunk `verify()`.
    Raises ImageDecodeError with the reason `load_image` would give for the same defect. A valid header with a
    corrupt compressed bitstream passes here and fails at decoding (recorded then as an exclusion at embedding).
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in PIL_SUFFIXES:
        from PIL import Image

        try:
            with Image.open(path) as image:
                check_pil_header(image, path, int(max_pixels or DEFAULT_MAX_PIXELS))
                image.verify()
        except ImageDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad file
            raise ImageDecodeError("bad-header", path, f"{type(exc).__name__}: {exc}"[:300]) from None
        return
    limit = int(max_pixels or DEFAULT_MAX_PIXELS)
    ds = read_dicom(path, defer_size=1024, max_pixels=limit)
    header = check_dicom_header(ds, path, limit)  # the same header rules as load_image
    element = ds._dict[0x7FE00010]  # the raw element: its value is not read when deferred
    rows, cols, bits, tsyntax = header.rows, header.cols, header.bits, header.transfer_syntax
    if tsyntax is not None and tsyntax.is_encapsulated:
        value = ds.PixelData
        if not value or len(value) <= 16:  # basic offset table item + an empty fragment is 16 bytes
            raise ImageDecodeError("no-pixel-data", path, "encapsulated PixelData holds no fragment")
        return
    expected = rows * cols * (bits // 8)
    length = getattr(element, "length", None)
    if length is None:  # read in full (small): its actual size
        length = len(element.value or b"")
    if length < expected:
        raise ImageDecodeError("truncated", path, f"PixelData has {length} bytes; Rows x Columns x BitsAllocated/8 "
                                                  f"= {expected}")
    tell = getattr(element, "value_tell", None)
    if tell is not None and tell + length > path.stat().st_size:
        raise ImageDecodeError("truncated", path, f"PixelData of {length} bytes at offset {tell} runs past the end "
                                                  f"of the {path.stat().st_size}-byte file")


def _check_dicom_geometry(ds, path: Path) -> None:
    """Grayscale, one frame, sane dimensions: what `load_image` accepts (ImageDecodeError otherwise)."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if int_tag(ds, "SamplesPerPixel", 1, path) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageDecodeError("not-grayscale", path, f"PhotometricInterpretation {photometric or 'missing'} is not grayscale")
    frames = int_tag(ds, "NumberOfFrames", 1, path)
    if frames != 1:
        raise ImageDecodeError("multi-frame", path, f"{frames} frames; one frame expected")
    rows, cols, bits = (int_tag(ds, k, 0, path) for k in ("Rows", "Columns", "BitsAllocated"))
    if rows < MIN_IMAGE_SIDE or cols < MIN_IMAGE_SIDE or bits not in (8, 16, 32):
        raise ImageDecodeError("bad-dimensions", path, f"Rows={rows} Columns={cols} BitsAllocated={bits}")


def _load_dicom(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder

    ds = read_dicom(path, max_pixels=max_pixels)
    header = check_dicom_header(ds, path, max_pixels)
    rows, cols, bits, photometric, tsyntax = header.rows, header.cols, header.bits, header.photometric, \
        header.transfer_syntax
    element = ds.get_item("PixelData")
    if tsyntax is not None and tsyntax.is_compressed:
        try:
            decoder = get_decoder(tsyntax)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            raise ImageDecodeError(
                "unsupported-transfer-syntax", path, f"no installed decoder for {tsyntax.name} ({tsyntax})"
            )
    elif getattr(element, "length", None) is not None and element.value is not None:
        declared, present = element.length, len(element.value)
        if 0 < present < declared:
            raise ImageDecodeError("truncated", path, f"PixelData has {present} of {declared} declared bytes")
        expected = rows * cols * bits // 8
        if present < expected:
            raise ImageDecodeError("pixel-data-short", path, f"PixelData has {present} bytes, {expected} expected")

    try:
        raw = ds.pixel_array
        image = apply_modality_lut(raw, ds).astype(np.float64, copy=False)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  decoder plugins raise assorted types
        raise ImageDecodeError("decode-failed", path, f"{type(exc).__name__}: {exc}") from None
    try:
        image = apply_voi_lut(image, ds)  # float in, float out: no integer-range assumption
    except Exception as exc:  # noqa: BLE001  e.g. WindowWidth < 1: the display intent is unknown, so the image is not used
        raise ImageDecodeError("bad-window", path, f"invalid VOI LUT / window ({type(exc).__name__}: {exc})") from None
    if image.ndim != 2:
        raise ImageDecodeError("bad-dimensions", path, f"decoded array has shape {image.shape}, expected 2-D")
    if photometric == "MONOCHROME1":
        image = image.max() - image
    return _min_max(image, path)


def _min_max(image: np.ndarray, path: Path) -> np.ndarray:
    if not np.all(np.isfinite(image)):
        raise ImageDecodeError("non-finite", path, "pixel values contain NaN or infinity after LUTs")
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:  # a flat image carries no information but is not a decode failure
        return np.zeros(image.shape, dtype=np.float32)
    return ((image - lo) / (hi - lo)).astype(np.float32)


def check_pil_header(im, path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """What an opened (not yet decoded) PNG/JPEG/... must be for `load_image` to read it fully: no more than
    `max_pixels` declared, at least MIN_IMAGE_SIDE a side, and not a 16-bit PNG with colour or alpha channels
    (Pillow reads those at 8 bits a channel, so their low byte would be cut silently). ImageDecodeError otherwise."""
    width, height = im.size
    if width * height > max_pixels:
        raise ImageDecodeError("too-many-pixels", path, f"{width} x {height} = {width * height:,} pixels "
                               f"declared, more than the {max_pixels:,} allowed (dataset card max_image_megapixels)")
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise ImageDecodeError("bad-dimensions", path, f"{width} x {height} pixels; at least {MIN_IMAGE_SIDE} a side")
    if im.format == "PNG":
        with open(path, "rb") as handle:  # IHDR: signature (8), length (4), "IHDR", width, height, depth, colour type
            header = handle.read(26)
        depth, colour = (header[24], header[25]) if header[12:16] == b"IHDR" else (0, 0)
        if depth == 16 and colour in PNG_COLOUR_TYPES_WITH_CHANNELS:
            raise ImageDecodeError("16-bit-colour", path, f"a 16-bit {PNG_COLOUR_TYPES_WITH_CHANNELS[colour]} PNG: "
                                   "Pillow reads it at 8 bits a channel, which would cut its depth; save the image "
                                   "as 16-bit greyscale")


def _load_pil(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only: the declared size is checked before any decode
            check_pil_header(im, path, max_pixels)
            im.load()
            if getattr(im, "n_frames", 1) != 1:
                raise ImageDecodeError("multi-frame", path, f"{im.n_frames} frames; one frame expected")
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(im).astype(np.float64)
                if array.min() < 0 or array.max() > 65535:
                    raise ImageDecodeError("bad-bit-depth", path, f"mode {mode} values outside 16-bit range")
                return (array / 65535.0).astype(np.float32)
            if mode == "F":
                return _min_max(np.asarray(im, dtype=np.float64), path)
            if mode != "L":  # RGB(A), LA, P, 1: a few NIH PNGs are RGBA; luminance keeps their content
                im = im.convert("L")
            return (np.asarray(im, dtype=np.float32) / 255.0).astype(np.float32)
    except (ImageDecodeError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too-many-pixels", path, str(exc)[:200]) from None
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not-image", path, f"not a readable image ({exc})") from None
    except (OSError, SyntaxError) as exc:  # Pillow reports truncated data as OSError
        if is_transient(exc):
            raise
        reason = "truncated" if "truncat" in str(exc).lower() else "decode-failed"
        raise ImageDecodeError(reason, path, f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  every failure of one file becomes a counted exclusion
        raise ImageDecodeError("decode-failed", path, f"{type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------------------------- encoder input

# Mean/std of named normalisations: properties of the normalisation, not of any task.
NAMED_MEAN_STD = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}
INTERPOLATIONS = ("bilinear", "bicubic", "area", "nearest")
CONTRACT_KEYS = {"size", "interpolation", "channels", "bit_depth", "normalize"}


@dataclass(frozen=True)
class PreprocessContract:
    """An encoder card's `preprocess` block, checked, with defaults filled in (shared by the CPU and device paths)."""

    size: tuple[int, int] | None
    interpolation: str
    channels: int
    bit_depth: object
    normalize: object

    @classmethod
    def of(cls, contract: dict) -> PreprocessContract:
        unknown = set(contract) - CONTRACT_KEYS
        if unknown:
            raise ValueError(f"preprocess: unknown key(s) {sorted(unknown)}; allowed: {sorted(CONTRACT_KEYS)}")
        interpolation = contract.get("interpolation", "bilinear")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"preprocess.interpolation {interpolation!r}; expected one of {INTERPOLATIONS}")
        channels = contract.get("channels", 1)
        if channels not in (1, 3):
            raise ValueError(f"preprocess.channels {channels!r}; expected 1 or 3")
        bit_depth = contract.get("bit_depth", "float")
        if bit_depth not in (8, 16, "float", None):
            raise ValueError(f"preprocess.bit_depth {bit_depth!r}; expected 8, 16 or 'float'")
        return cls(_target_size(contract.get("size")), interpolation, channels, bit_depth,
                   contract.get("normalize", "none"))


def to_encoder_input(image: np.ndarray, contract: dict) -> np.ndarray:
    """Shape a [0, 1] HxW image per an encoder card's `preprocess` block → CxHxW float32.

    Steps, in the order the reference pipelines use them: quantise to `bit_depth` levels (8-bit resizes in uint8,
    exactly as torchvision does on an 8-bit PIL image), resize without keeping aspect (antialiased), replicate
    to `channels`, normalise.
    """
    if image.ndim != 2:
        raise ValueError(f"to_encoder_input expects an HxW image, got shape {image.shape}")
    spec = PreprocessContract.of(contract)
    resized = _quantise_and_resize(np.clip(image, 0.0, 1.0), spec.bit_depth, spec.size, spec.interpolation)
    stacked = np.repeat(resized[None], spec.channels, axis=0)
    return normalise(stacked, spec.normalize).astype(np.float32, copy=False)


def _target_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"preprocess.size {size!r}; expected a positive int or [height, width]")


def _quantise_and_resize(image: np.ndarray, bit_depth, size, interpolation: str) -> np.ndarray:
    from PIL import Image

    resample = {
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
        "area": Image.Resampling.BOX,  # box filter = area averaging when downsampling
        "nearest": Image.Resampling.NEAREST,
    }[interpolation]
    if bit_depth == 8:
        pil = Image.fromarray(np.round(image * 255.0).astype(np.uint8), mode="L")
        if size is not None and pil.size != (size[1], size[0]):
            pil = pil.resize((size[1], size[0]), resample=resample)
        return np.asarray(pil, dtype=np.float32) / 255.0
    if bit_depth == 16:
        image = np.round(image * 65535.0) / 65535.0
    elif bit_depth not in ("float", None):
        raise ValueError(f"preprocess.bit_depth {bit_depth!r}; expected 8, 16 or 'float'")
    image = image.astype(np.float32)
    if size is not None and image.shape != size:
        # Pillow antialiases when downsampling (its filter support grows with the scale factor).
        image = np.asarray(Image.fromarray(image, mode="F").resize((size[1], size[0]), resample=resample))
    return np.clip(image, 0.0, 1.0)  # bicubic overshoots; the contract promises values from a [0, 1] image


def normalise(x: np.ndarray, normalize) -> np.ndarray:
    if normalize in ("none", None):
        return x
    if normalize == "zscore":
        std = float(x.std())
        return (x - x.mean()) / (std if std > 0 else 1.0)
    if normalize == "xrv":  # torchxrayvision: (2 * x / maxval - 1) * 1024
        return (2.0 * x - 1.0) * 1024.0
    if isinstance(normalize, str) and normalize in NAMED_MEAN_STD:
        mean, std = NAMED_MEAN_STD[normalize]
    elif isinstance(normalize, dict) and set(normalize) == {"mean", "std"}:
        mean, std = normalize["mean"], normalize["std"]
    else:
        raise ValueError(
            f"preprocess.normalize {normalize!r}; expected none, zscore, xrv, "
            f"{', '.join(NAMED_MEAN_STD)} or {{mean: [...], std: [...]}}"
        )
    mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    if mean.shape[0] not in (1, x.shape[0]) or std.shape != mean.shape or np.any(std <= 0):
        raise ValueError(f"preprocess.normalize mean/std must have 1 or {x.shape[0]} entries and std > 0")
    if mean.shape[0] != x.shape[0]:
        mean, std = np.repeat(mean, x.shape[0], 0), np.repeat(std, x.shape[0], 0)
    return (x - mean) / std
