"""`runner encoders check ID`: build an encoder from its card, embed a few images, print what came out.

This is how a contributor shows a new card works before `runner eval`: the embedding size, a fingerprint of each embedding
(sha256 of the values rounded to 4 decimals, first 12 hex digits, plus summary statistics) that someone else can compare
against on their machine, the preprocessing contract, and the speed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runner.cli.app import RunnerApp, app, fail, get_card, is_card_path, load_cli_registry

if TYPE_CHECKING:
    import numpy as np

encoders_app = RunnerApp(help="Check encoder cards: build the model and embed a reference image.", no_args_is_help=True)
app.add_typer(encoders_app, name="encoders")


@dataclass(frozen=True)
class Fingerprint:
    sha12: str
    mean: float
    sd: float
    min: float
    max: float
    l2: float

    def line(self) -> str:
        return (f"fingerprint {self.sha12}  mean {self.mean:+.4f}  sd {self.sd:.4f}  "
                f"min {self.min:+.4f}  max {self.max:+.4f}  L2 {self.l2:.4f}")


@dataclass
class CheckReport:
    encoder_id: str
    adapter: str
    device: str
    dim: int
    contract: dict
    images: list[str]
    fingerprints: list[Fingerprint] = field(default_factory=list)
    load_s: float = 0.0
    prepare_s: float = 0.0
    embed_s: float = 0.0
    frameworks: dict = field(default_factory=dict)  # framework -> the device it really ran on

    @property
    def images_per_s(self) -> float:
        total = self.prepare_s + self.embed_s
        return len(self.images) / total if total > 0 else float("inf")


def fingerprint(vector: np.ndarray) -> Fingerprint:
    """Rounding to 4 decimals makes the hash stable across BLAS builds for the same weights and input (+0.0 folds -0.0)."""
    import numpy as np

    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    rounded = np.round(v, 4) + 0.0
    sha = hashlib.sha256(rounded.astype("<f8").tobytes()).hexdigest()[:12]
    return Fingerprint(sha, float(v.mean()), float(v.std()), float(v.min()), float(v.max()), float(np.linalg.norm(v)))


def reference_image() -> tuple[str, np.ndarray]:
    """The real chest CR RG1_UNCR.dcm from pydicom-data when installed, else a seeded synthetic chest-like image."""
    import numpy as np

    from runner.data.imaging import load_image

    try:
        from pydicom.data import get_testdata_file

        path = get_testdata_file("RG1_UNCR.dcm")
    except Exception:  # noqa: BLE001 — pydicom-data missing or its store unreadable: fall back to a generated image
        path = None
    if path:
        return f"{path} (pydicom-data, real chest CR)", load_image(path)
    yy, xx = np.mgrid[0:512, 0:512] / 512.0
    lungs = np.exp(-(((xx - 0.32) / 0.14) ** 2 + ((yy - 0.5) / 0.3) ** 2)) + np.exp(
        -(((xx - 0.68) / 0.14) ** 2 + ((yy - 0.5) / 0.3) ** 2))
    noise = np.random.default_rng(0).normal(0, 0.02, xx.shape)
    return "generated synthetic image (install pydicom-data for the real chest CR)", np.clip(
        0.8 - 0.6 * lungs + noise, 0, 1).astype(np.float32)


def check_encoder(card: dict, images: list[tuple[str, np.ndarray]], weights_dir: Path | None = None,
                  device: str = "auto", trust_custom_code: bool = False) -> CheckReport:
    """Build the encoder, prepare and embed `images` (name, [0,1] HxW) in one batch; raises EncoderError on failure."""
    import numpy as np

    from runner.encoders import EncoderError, load_encoder

    start = time.perf_counter()
    encoder = load_encoder(card, device=device, trust_custom_code=trust_custom_code, weights_dir=weights_dir)
    report = CheckReport(card["id"], card["adapter"], encoder.device, encoder.dim, dict(encoder.contract),
                         [name for name, _ in images], load_s=time.perf_counter() - start)
    start = time.perf_counter()
    prepared = np.stack([encoder.prepare(image) for _, image in images])
    report.prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    vectors = encoder.embed(prepared)
    report.embed_s = time.perf_counter() - start
    if vectors.shape != (len(images), encoder.dim):
        raise EncoderError(f"embeddings have shape {vectors.shape}; expected ({len(images)}, {encoder.dim})")
    if not np.isfinite(vectors).all():
        raise EncoderError("the embeddings contain NaN or Infinity")
    report.fingerprints = [fingerprint(v) for v in vectors]
    report.frameworks = encoder.devices_used()
    return report


def check_isolated(card: dict, images, weights_dir: Path | None = None, device: str = "auto",
                   trust_custom_code: bool = False) -> CheckReport:
    """check_encoder, in a child process for a TensorFlow encoder (as `runner eval` runs it: runner.encoders.isolation)."""
    from runner.encoders import resolve_device
    from runner.encoders.isolation import call_in_child, child_environment, needs_own_process

    if not needs_own_process(card):
        return check_encoder(card, images, weights_dir, device, trust_custom_code)
    return call_in_child(check_encoder, card, images, weights_dir, resolve_device(device), trust_custom_code,
                         env=child_environment(card), what=f"encoders check {card['id']} (a TensorFlow child process)")


def encoder_card(encoder: str):
    """An encoder id of the registry (with any --card files), or the path of a card file outside it."""
    from registry.cards import load_card

    if is_card_path(encoder):
        return load_card(Path(encoder), kind="encoder")
    return get_card(load_cli_registry(), "encoder", encoder)


@encoders_app.command("check")
def check(
    encoder: Annotated[str, typer.Argument(help="Encoder id (encoders/<id>.yaml) or the path of a card file.")],
    image: Annotated[list[Path] | None, typer.Option(
        "--image", help="Image(s) to embed (DICOM/PNG/JPEG); default: a reference chest CR.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(
        "--weights-dir", help="Local directory holding the card's weight files.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    trust_custom_code: Annotated[bool, typer.Option(
        "--trust-custom-code", help="Allow adapter: custom to run its entrypoint.")] = False,
) -> None:
    """Build an encoder from its card, embed the given images (or a reference chest X-ray), and print the embedding size,
    a fingerprint of each embedding, the preprocessing contract and images/s. Exit 1 when the encoder cannot be built or
    run (e.g. missing weights), 2 for bad input."""
    from runner.data.imaging import ImageDecodeError, load_image

    card = encoder_card(encoder).data
    try:
        images = [(str(p), load_image(p)) for p in image] if image else [reference_image()]
    except (ImageDecodeError, OSError) as exc:
        fail(f"cannot read image: {exc}")
    try:
        report = check_isolated(card, images, weights_dir, device, trust_custom_code)
    except ValueError as exc:  # a preprocessing contract the imaging module rejects
        fail(f"encoder {card['id']!r}: {exc}")
    typer.echo(f"encoder     {report.encoder_id} (adapter {report.adapter}, device {report.device})")
    for framework, used in report.frameworks.items():
        typer.echo(f"ran on      {used} ({framework})")
    typer.echo(f"preprocess  {report.contract}")
    typer.echo(f"embedding   {report.dim}-d")
    for name, fp in zip(report.images, report.fingerprints):
        typer.echo(f"image       {name}")
        typer.echo(f"            {fp.line()}")
    typer.echo(f"speed       {report.images_per_s:.2f} images/s (prepare {report.prepare_s:.3f} s + embed "
               f"{report.embed_s:.3f} s for {len(report.images)} image(s); model load {report.load_s:.1f} s)")
