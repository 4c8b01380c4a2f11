"""A seeded, SYNTHETIC chest-X-ray-like DICOM data set for demos and tests (`runner demo-data`).

Real DICOM files written with pydicom, mixing what real archives mix: CR and DX SOP classes, MONOCHROME1 and
MONOCHROME2, 12-16 stored bits, rescale slope/intercept and window centre/width on some files, a share JPEG 2000
lossless, a few lateral views, and a few deliberately corrupt files listed in the metadata like any other image.

Four findings are drawn with distinct visual signatures of random strength (and faint look-alikes on some
negatives), so simple classifiers separate them well but imperfectly:
  effusion    - fluid filling a lung base, its upper edge a meniscus rising laterally
  edema       - bilateral perihilar haze with fine reticular texture
  atelectasis - a dense plate-like band plus volume loss (smaller lung, mediastinum shifted toward it)
  opacity     - patchy blobs scattered in the lung fields
The finding names below are the definition of this synthetic data set; the demo dataset card declares them.

Same seed -> byte-identical files: every random draw comes from a generator keyed by (seed, patient, study,
image) and UIDs are hashed from the same keys.

Sites: `site="a"` (the default) is the demo data set; `site="b"` is a second synthetic "hospital" for transfer tasks:
the same findings drawn with another acquisition look (`SITES`: lower contrast, stronger gamma and noise, a slight
blur, smaller images), so a classifier trained on one site meets a shifted image distribution on the other.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from registry.errors import RegistryError

FINDINGS = ("atelectasis", "edema", "effusion", "opacity")
DEFAULT_PATIENTS = 450  # ~1,100 images, ~990 frontal: >= 150 positives and negatives per finding after exclusions
PREVALENCE = 0.40
CORRUPT_KINDS = ("truncated", "zero-bytes", "no-pixel-data", "not-dicom")
CORRUPT_SHARE = 0.008
LATERAL_SHARE = 0.12
J2K_SHARE = 0.20
MONOCHROME1_SHARE = 0.40
UNCERTAIN_SHARE, BLANK_SHARE, LABEL_FLIP_SHARE = 0.05, 0.03, 0.03
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's registered root, the one generate_uid uses by default


@dataclass(frozen=True)
class SiteLook:
    """How one synthetic site's scanner renders the same anatomy (the defaults are site a, the original look)."""

    gamma: tuple[float, float] = (0.8, 1.25)  # display gamma drawn per image
    noise: tuple[float, float] = (0.01, 0.03)  # sd of the pixel noise drawn per image
    contrast: float = 1.0  # density scaled about its mean: < 1 flattens the image
    blur_px: float = 0.0  # Gaussian blur (sigma in pixels at image_size 256)
    size_scale: float = 1.0  # image_size multiplier


SITES = {
    "a": SiteLook(),
    "b": SiteLook(gamma=(1.1, 1.5), noise=(0.03, 0.06), contrast=0.8, blur_px=1.0, size_scale=0.875),
}


class DemoDataError(RegistryError):
    """The demo data set cannot be written (e.g. the target is a non-empty directory of something else)."""

    exit_code = 2


@dataclass
class DemoDatasetSummary:
    out_dir: str
    seed: int
    site: str
    n_patients: int
    n_studies: int
    n_images: int
    counts: dict = field(default_factory=dict)  # views, photometric, transfer syntaxes, bits, SOP classes
    positives: dict = field(default_factory=dict)  # finding -> images labelled 1.0
    corrupt: list = field(default_factory=list)  # [{image_id, path, kind}]


@dataclass
class _Image:
    image_id: str
    patient_id: str
    study_id: str
    path: str
    view: str
    sex: str
    age: int
    study_date: date
    labels: dict  # finding -> "1.0" | "0.0" | "-1.0" | ""
    strengths: dict  # finding -> drawn strength (0 = absent)


# ---------------------------------------------------------------------------------------------- entry point


def make_demo_dataset(
    out_dir: str | Path, seed: int = 0, n_patients: int = DEFAULT_PATIENTS, image_size: int = 256, site: str = "a"
) -> DemoDatasetSummary:
    """Write the synthetic data set into `out_dir` (files/, metadata.csv, README.txt, demo_data.json).

    site: a key of SITES, the acquisition look ("a": the demo data set; "b": a second site for transfer tasks).
    """
    if site not in SITES:
        raise DemoDataError(f"unknown site {site!r}; expected one of {', '.join(SITES)}")
    look = SITES[site]
    if n_patients < 1:
        raise DemoDataError(f"n_patients must be >= 1, got {n_patients}")
    if image_size < 64:
        raise DemoDataError(f"image_size must be >= 64, got {image_size}")
    out_dir = _claim_out_dir(Path(out_dir))
    _remove_leftovers(out_dir)

    # Build beside the target and swap in at the end, so an interrupted run never leaves half a data set; the partial
    # folder is marked with this process's id, so the next run can tell a killed run's leftover from a live one.
    partial = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / PARTIAL_MARKER).write_text(json.dumps({"made_by": "runner demo-data", "pid": os.getpid(),
                                                      "host": socket.gethostname()}) + "\n")
    try:
        images = _plan_images(seed, n_patients)
        corrupt = _choose_corrupt(images, seed)
        counts: dict[str, dict[str, int]] = {}
        for image in images:
            encoding = _write_dicom(partial, image, seed, round(image_size * look.size_scale), look,
                                    corrupt.get(image.image_id))
            for key, value in encoding.items():
                counts.setdefault(key, {}).setdefault(str(value), 0)
                counts[key][str(value)] += 1
        summary = DemoDatasetSummary(
            out_dir=str(out_dir),
            seed=seed,
            site=site,
            n_patients=n_patients,
            n_studies=len({i.study_id for i in images}),
            n_images=len(images),
            counts={k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
            positives={f: sum(i.labels[f] == "1.0" for i in images) for f in FINDINGS},
            corrupt=[{"image_id": i.image_id, "path": i.path, "kind": corrupt[i.image_id]}
                     for i in images if i.image_id in corrupt],
        )
        _write_metadata(partial / "metadata.csv", images)
        _write_readme(partial / "README.txt", summary)
        record = {"synthetic": True, "generator": "runner.data.synthetic", **asdict(summary)}
        record.pop("out_dir")
        (partial / "demo_data.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)  # _claim_out_dir checked it holds nothing this command did not write
        partial.rename(out_dir)
        (out_dir / PARTIAL_MARKER).unlink()
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return summary


PARTIAL_MARKER = ".runner-demo-data-partial"  # in a folder being written; removed once it is the data set
OWN_FILES = ("metadata.csv", "README.txt", "demo_data.json", PARTIAL_MARKER)  # + the image files metadata.csv lists


def _claim_out_dir(out_dir: Path) -> Path:
    """The absolute --out folder, once it is known to be replaceable: absent, empty, or a demo data set this command
    wrote holding nothing else. Never the folder the shell is in (or one holding it)."""
    absolute = Path(os.path.abspath(out_dir))
    if not absolute.name:
        raise DemoDataError(f"--out {out_dir}: the root of the file system cannot be a demo data set; name a folder")
    here = Path.cwd().resolve()
    if here == absolute.resolve() or here.is_relative_to(absolute.resolve()):
        raise DemoDataError(f"--out {out_dir} is the folder you are in (or holds it): it would be replaced from under "
                            "your shell; pass a new folder, e.g. --out demo-data")
    if absolute.is_symlink() or (absolute.exists() and not absolute.is_dir()):
        raise DemoDataError(f"--out {out_dir} is a file or a symbolic link, not a folder; choose another --out")
    foreign = _not_written_here(absolute) if absolute.is_dir() and any(absolute.iterdir()) else None
    if foreign:
        raise DemoDataError(f"--out {out_dir} holds {foreign!r}, which `runner demo-data` did not write: only a demo "
                            "data set this command made (and nothing else) is replaced; choose another --out")
    return absolute


def _not_written_here(folder: Path) -> str | None:
    """The first entry of `folder` (relative path) that an earlier `runner demo-data` did not write; None when the
    folder is exactly a demo data set: demo_data.json by this generator, metadata.csv, README.txt, the files listed."""
    try:
        record = json.loads((folder / "demo_data.json").read_text(encoding="utf-8"))
        with (folder / "metadata.csv").open(newline="", encoding="utf-8") as handle:
            listed = {row["path"] for row in csv.DictReader(handle)}
    except (OSError, ValueError, KeyError, csv.Error):
        record, listed = None, set()
    if not (isinstance(record, dict) and record.get("generator") == "runner.data.synthetic"):
        return next((p.name for p in sorted(folder.iterdir()) if p.name != "demo_data.json"), "demo_data.json")
    own = listed | set(OWN_FILES)
    own_folders = {str(Path(p).parents[i].as_posix()) for p in listed for i in range(len(Path(p).parents) - 1)}
    for where, folders, files in os.walk(folder):
        for name in sorted(folders) + sorted(files):
            path = Path(where) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or rel not in (own_folders if name in folders else own):
                return rel
    return None


def _remove_leftovers(out_dir: Path) -> None:
    """Remove the partial folders (.NAME.partial-PID) that a killed run of this command left beside `out_dir`: only
    those it marked, made on this machine by a process that is gone; says so on stderr."""
    import sys

    for partial in sorted(out_dir.parent.glob(f".{out_dir.name}.partial-*")):
        try:
            mark = json.loads((partial / PARTIAL_MARKER).read_text(encoding="utf-8"))
            pid, host = int(mark["pid"]), mark["host"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one this command marked: left alone
        if partial.is_symlink() or host != socket.gethostname() or _running(pid):
            continue
        shutil.rmtree(partial)
        print(f"note: removed {partial}, a partial data set left by an interrupted run of `runner demo-data` "
              f"(process {pid} is gone)", file=sys.stderr)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


# ---------------------------------------------------------------------------------------------- planning


def _plan_images(seed: int, n_patients: int) -> list[_Image]:
    """Patients, studies, views and labels; labels are per study, shared by the study's images."""
    rng = np.random.default_rng([seed, 0])
    threshold = _normal_quantile(1.0 - PREVALENCE)
    images: list[_Image] = []
    study_counter = 0
    for p in range(1, n_patients + 1):
        patient_id = f"p{p:05d}"
        sex = "M" if rng.random() < 0.5 else "F"
        first_age = int(rng.integers(20, 86))
        patient_factor = rng.normal()
        day = date(2150, 1, 1) + timedelta(days=int(rng.integers(0, 3650)))
        for _ in range(min(1 + rng.poisson(1.2), 5)):
            study_counter += 1
            study_id = f"s{study_counter:06d}"
            day += timedelta(days=int(rng.integers(1, 400)))
            age = first_age + (day - date(2150, 1, 1)).days // 365
            # A shared factor (patient + study) correlates the findings a little, and age raises them.
            common = 0.6 * patient_factor + 0.8 * rng.normal()
            strengths, labels = {}, {}
            for finding in FINDINGS:
                z = 0.35 * common + 0.94 * rng.normal() + 0.01 * (age - 55)
                present = z > threshold
                strengths[finding] = float(rng.uniform(0.05, 1.0)) if present else 0.0
                shown = present != (rng.random() < LABEL_FLIP_SHARE)  # reports are noisy
                u = rng.random()
                labels[finding] = "-1.0" if u < UNCERTAIN_SHARE else "" if u < UNCERTAIN_SHARE + BLANK_SHARE else (
                    "1.0" if shown else "0.0")
            views = ["PA" if rng.random() < 0.6 else "AP"]
            if rng.random() < LATERAL_SHARE:
                views.append("LL" if rng.random() < 0.7 else "LATERAL")
            for k, view in enumerate(views, start=1):
                image_id = f"{patient_id}_{study_id}_{k}"
                images.append(_Image(image_id, patient_id, study_id, f"files/{patient_id}/{study_id}/{image_id}.dcm",
                                     view, sex, age, day, labels, strengths))
    return images


def _choose_corrupt(images: list[_Image], seed: int) -> dict[str, str]:
    frontal = [i.image_id for i in images if i.view in ("PA", "AP")]
    n = max(len(CORRUPT_KINDS), round(CORRUPT_SHARE * len(images)))
    rng = np.random.default_rng([seed, 1])
    chosen = sorted(rng.choice(len(frontal), size=min(n, len(frontal)), replace=False))
    return {frontal[j]: CORRUPT_KINDS[k % len(CORRUPT_KINDS)] for k, j in enumerate(chosen)}


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


# ---------------------------------------------------------------------------------------------- rendering


def _render(rng: np.random.Generator, shape: tuple[int, int], image: _Image, look: SiteLook = SITES["a"]) -> np.ndarray:
    """Density map (bright = dense), roughly [0, 1]."""
    from PIL import Image

    h, w = shape
    # A column of y and a row of x (not two full grids): each shape below broadcasts to the full image at its first
    # use of both, so the per-row and per-column terms are computed once per row or column, with the same values.
    yy = (np.arange(h, dtype=np.float32) / h)[:, None]
    xx = (np.arange(w, dtype=np.float32) / w)[None, :]
    # Faint look-alikes on some negatives keep every finding from being trivially separable.
    strength = {f: s if s > 0 else (float(rng.uniform(0.0, 0.25)) if rng.random() < 0.25 else 0.0)
                for f, s in image.strengths.items()}
    if image.view in ("PA", "AP"):
        density = _frontal(rng, yy, xx, strength, ap=image.view == "AP")
    else:
        density = _lateral(rng, yy, xx, strength)
    # Smooth mottling: coarse noise upsampled (cheaper than blurring full-size noise).
    coarse = rng.normal(size=(h // 16 + 1, w // 16 + 1)).astype(np.float32)
    texture = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC))
    if look.contrast != 1.0:
        density = density.mean() + look.contrast * (density - density.mean())
    if look.blur_px > 0:
        from scipy.ndimage import gaussian_filter

        density = gaussian_filter(density, sigma=look.blur_px * w / 256)
    density += 0.02 * texture + rng.normal(scale=rng.uniform(*look.noise), size=shape).astype(np.float32)
    gamma = rng.uniform(*look.gamma)
    return np.clip(density, 0.0, 1.0) ** gamma


def _soft(inside: np.ndarray, edge: float = 0.015) -> np.ndarray:
    """Smooth indicator of `inside > 0` (a signed distance-like field)."""
    from scipy.special import expit

    return expit(inside / edge)


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return 1.0 - np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)


def _frontal(rng, yy, xx, s: dict, ap: bool) -> np.ndarray:
    mid = 0.5 + rng.uniform(-0.02, 0.02)
    cy, ry = rng.uniform(0.42, 0.5), rng.uniform(0.25, 0.31)
    dx, rx = rng.uniform(0.17, 0.21), rng.uniform(0.13, 0.16)
    # Atelectasis: volume loss on one side, mediastinum pulled toward it.
    side = 1 if rng.random() < 0.5 else -1
    shrink = {side: 1.0 - 0.18 * s["atelectasis"], -side: 1.0}
    mid += side * 0.03 * s["atelectasis"]
    body = _soft(_ellipse(yy, xx, 0.55, 0.5, 0.62, rng.uniform(0.44, 0.5)), 0.02)
    density = 0.05 + 0.45 * body
    lung_masks = {}
    for sgn in (-1, 1):
        lry = ry * shrink[sgn]
        lung_masks[sgn] = _soft(_ellipse(yy, xx, cy + (ry - lry), mid + sgn * dx, lry, rx))
    lungs = lung_masks[-1] + lung_masks[1]
    ribs = 0.5 + 0.5 * np.cos(2 * np.pi * rng.uniform(8, 11) * (yy + rng.uniform(0.3, 0.6) * (xx - mid) ** 2))
    density += lungs * (-rng.uniform(0.25, 0.33) + 0.07 * ribs)
    heart_scale = 1.15 if ap else 1.0
    density += 0.2 * _soft(_ellipse(yy, xx, cy + 0.12, mid + 0.04, 0.13 * heart_scale, 0.15 * heart_scale), 0.02)
    density += 0.15 * _soft(0.045 - np.abs(xx - mid), 0.01) * (yy < cy + 0.2)
    lung_bottom = cy + ry

    a = s["effusion"]
    if a > 0:
        for sgn in ([-1, 1] if rng.random() < 0.4 else [int(rng.choice([-1, 1]))]):
            level = lung_bottom - (0.06 + 0.22 * a) * 2 * ry
            lateral = np.clip((xx - (mid + sgn * dx)) * sgn / rx, 0, 1)  # 0 at lung centre, 1 at the lateral wall
            surface = level - 0.08 * a * lateral ** 2  # meniscus: fluid climbs the lateral wall
            density += 0.28 * a * lung_masks[sgn] * _soft(yy - surface, 0.012)
    a = s["edema"]
    if a > 0:
        haze = sum(np.exp(-(((xx - (mid + g * 0.1)) / 0.1) ** 2 + ((yy - (cy - 0.02)) / 0.14) ** 2)) for g in (-1, 1))
        reticular = 0.5 + 0.5 * np.cos(2 * np.pi * 30 * (xx + 0.3 * yy)) * np.cos(2 * np.pi * 26 * yy)
        density += a * lungs * haze * (0.16 + 0.05 * reticular)
    a = s["atelectasis"]
    if a > 0:
        y0 = cy + ry * rng.uniform(0.2, 0.55)
        slope = rng.uniform(-0.4, 0.4)
        distance = (yy - y0 - slope * (xx - (mid + side * dx))) / np.sqrt(1 + slope ** 2)
        density += 0.3 * a * lung_masks[side] * np.exp(-(distance / rng.uniform(0.01, 0.025)) ** 2)
    a = s["opacity"]
    if a > 0:
        for _ in range(1 + rng.poisson(2)):
            sgn = int(rng.choice([-1, 1]))
            by, bx = cy + rng.uniform(-0.7, 0.7) * ry, mid + sgn * dx + rng.uniform(-0.6, 0.6) * rx
            sigma = rng.uniform(0.025, 0.07)
            blob = np.exp(-(((yy - by) ** 2 + (xx - bx) ** 2) / (2 * sigma ** 2)))
            density += 0.22 * a * rng.uniform(0.5, 1.0) * lungs * blob
    return density


def _lateral(rng, yy, xx, s: dict) -> np.ndarray:
    body = _soft(_ellipse(yy, xx, 0.55, 0.5, 0.62, rng.uniform(0.36, 0.42)), 0.02)
    density = 0.05 + 0.45 * body
    lung = _soft(_ellipse(yy, xx, rng.uniform(0.42, 0.48), 0.52, rng.uniform(0.27, 0.31), rng.uniform(0.22, 0.26)))
    density -= 0.28 * lung
    density += 0.2 * _soft(_ellipse(yy, xx, 0.62, 0.38, 0.13, 0.12), 0.02)  # heart, anterior
    density += 0.25 * _soft(0.035 - np.abs(xx - 0.78), 0.008)  # spine, posterior
    if s["effusion"] > 0:
        density += 0.25 * s["effusion"] * lung * _soft(yy - (0.72 - 0.12 * s["effusion"]), 0.012)
    return density


# ---------------------------------------------------------------------------------------------- DICOM writing


def _uid(seed: int, *parts: str) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=UID_ROOT, entropy_srcs=["cxr-demo-data", str(seed), *parts]))


def _write_dicom(root: Path, image: _Image, seed: int, base: int, look: SiteLook, corrupt_kind: str | None) -> dict:
    """Render and write one file; returns how it was encoded (for the summary counts)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
    )

    rng = np.random.default_rng([seed, 2, *(int(x[1:]) for x in (image.patient_id, image.study_id)),
                                 int(image.image_id.rsplit("_", 1)[1])])
    step = max(base // 16, 1)
    shape = (base + step * int(rng.integers(0, 3)), base - step + step * int(rng.integers(0, 3)))
    density = _render(rng, shape, image, look)

    bits = int(rng.choice([12, 14, 15, 16]))
    monochrome1 = rng.random() < MONOCHROME1_SHARE
    rescale = rng.random() < 0.35
    window = rng.random() < 0.5
    j2k = rng.random() < J2K_SHARE
    cr = rng.random() < 0.6
    top = 2 ** bits - 1
    lo, hi = rng.uniform(0.02, 0.1) * top, rng.uniform(0.6, 0.95) * top
    shown = 1.0 - density if monochrome1 else density  # MONOCHROME1 stores bright-is-low
    stored = np.clip(np.round(lo + shown * (hi - lo)), 0, top).astype(np.uint16)
    slope, intercept = (float(rng.choice([0.5, 0.684, 1.0, 2.0])), float(round(rng.uniform(-1024, 500)))) \
        if rescale else (1.0, 0.0)

    sop_class = "1.2.840.10008.5.1.4.1.1.1" if cr else "1.2.840.10008.5.1.4.1.1.1.1"  # CR / DX for presentation
    sop_instance = _uid(seed, image.image_id, "sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    ds.StudyInstanceUID = _uid(seed, image.study_id, "study")
    ds.SeriesInstanceUID = _uid(seed, image.image_id, "series")
    ds.Modality = "CR" if cr else "DX"
    if not cr:
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PatientName = f"SYNTHETIC^{image.patient_id}"
    ds.PatientID, ds.PatientSex, ds.PatientAge = image.patient_id, image.sex, f"{image.age:03d}Y"
    ds.StudyID, ds.AccessionNumber = image.study_id, image.study_id
    ds.StudyDate = ds.ContentDate = image.study_date.strftime("%Y%m%d")
    ds.StudyDescription = "SYNTHETIC DEMO CHEST"
    ds.ImageComments = "SYNTHETIC IMAGE - NOT A REAL PATIENT"
    ds.PatientIdentityRemoved = "YES"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = image.view
    ds.SeriesNumber, ds.InstanceNumber = 1, int(image.image_id.rsplit("_", 1)[1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelSpacing = [round(430.0 / shape[0], 4), round(430.0 / shape[0], 4)]
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    if window:  # in modality-LUT output units; sometimes a little narrower than the data, as on real CRs
        ds.WindowCenter = round(slope * (lo + hi) / 2 + intercept, 1)
        ds.WindowWidth = round(slope * (hi - lo) * rng.uniform(0.9, 1.2), 1)
    if j2k:
        ds.compress(JPEG2000Lossless, stored, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    else:
        ds.PixelData = stored.tobytes()

    path = root / image.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if corrupt_kind == "no-pixel-data":
        del ds.PixelData
    if corrupt_kind in ("zero-bytes", "not-dicom"):
        path.write_bytes(b"" if corrupt_kind == "zero-bytes" else b"synthetic demo: this is not a DICOM file\n")
    else:
        ds.save_as(path, enforce_file_format=True)
        if corrupt_kind == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: int(len(data) * 0.6)])
    return {
        "view": image.view,
        "photometric": ds.PhotometricInterpretation,
        "transfer_syntax": "jpeg2000-lossless" if j2k else "explicit-vr-little-endian",
        "bits_stored": bits,
        "modality": ds.Modality,
        "rescale": rescale,
        "window": window,
    }


# ---------------------------------------------------------------------------------------------- side files


METADATA_COLUMNS = ("path", "image_id", "patient_id", "study_id", "view", "sex", "age", *FINDINGS)


def _write_metadata(path: Path, images: list[_Image]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(METADATA_COLUMNS)
        for i in images:
            writer.writerow([i.path, i.image_id, i.patient_id, i.study_id, i.view, i.sex, i.age,
                             *(i.labels[f] for f in FINDINGS)])


def _write_readme(path: Path, summary: DemoDatasetSummary) -> None:
    path.write_text(
        "SYNTHETIC DATA - NOT REAL PATIENTS, NOT FOR ANY CLINICAL OR RESEARCH CONCLUSION.\n\n"
        "Generated by `runner demo-data` (runner/data/synthetic.py) from seed "
        f"{summary.seed}, site {summary.site}: {summary.n_patients} synthetic patients, {summary.n_studies} studies, "
        f"{summary.n_images} DICOM files.\n"
        "The images are drawn shapes resembling chest radiographs; findings (atelectasis, edema, effusion, "
        "opacity) are painted signatures of random strength, and labels are per study with a few flipped, "
        "uncertain (-1.0) or blank.\n"
        f"{len(summary.corrupt)} files are deliberately corrupt (see demo_data.json) and appear in metadata.csv "
        "like any other image: a pipeline must exclude and count them.\n"
        "Lateral views (LL/LATERAL) are included so that view filters are exercised.\n"
    )
