"""The encoder interface every adapter implements.

An encoder card names an adapter (`adapter: pixels`); the adapter class turns the card into a model that maps a batch of
preprocessed images to float32 embeddings. Which class a name means is a "module:attr" entry of the one plugin registry
(registry.plugins); its module is imported only when a card asks for it, so a TensorFlow or timm adapter costs nothing
to users who never run it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from registry.errors import RegistryError
from registry.schemas import fill_defaults
from registry.specs import encoder_spec
from runner.data.imaging import to_encoder_input
from runner.runtime.progress import phase


class EncoderError(RegistryError):
    """An encoder cannot be built or run; the message says what to do."""


class WeightsNotFoundError(EncoderError):
    """A weight file the card names is not on disk and cannot be downloaded here."""

    def __init__(self, what: str, how_to_get: str):
        super().__init__(f"missing weights: {what}. {how_to_get}")
        self.what = what
        self.how_to_get = how_to_get


class Encoder:
    """Base class: a frozen image encoder described by an encoder card.

    Subclasses implement `embed` (and may override `prepare` when the model takes something other than a CxHxW float array,
    e.g. PNG bytes). `prepare` runs in decode worker processes, so it must be a pure function of the image and the card.

    NUMBER_PACKAGES: the installed packages whose version can change this adapter's numbers; each class names its own
    and runner.embed.made_by collects them over the class hierarchy into the embedding cache key. Here: decoding
    (pydicom and the pylibjpeg decoder plugins for compressed DICOM, Pillow for PNG/JPEG and the contract's resize)
    and numpy (every array operation).
    """

    framework: str | None = None  # "torch" | "tensorflow": what it computes with (None: numpy only)
    requires: tuple[str, ...] = ()  # import names it needs beyond the core install (`runner doctor` checks them)
    NUMBER_PACKAGES: tuple[str, ...] = ("numpy", "pillow", "pydicom", "pylibjpeg", "pylibjpeg-openjpeg",
                                        "pylibjpeg-libjpeg")

    def __init__(self, card: dict, device: str = "cpu", weights_dir: Path | None = None):

        self.card = fill_defaults("encoder", dict(card))  # idempotent: a registry card has its defaults already
        self.device = device
        self.weights_dir = weights_dir

    @classmethod
    def prepare_only(cls, card: dict) -> Encoder:
        """An instance whose `prepare` works but whose model is never built: `prepare` depends on the card alone.

        Decode workers use it, and so does LazyEncoder, so preparing images never loads weights.
        """
        encoder = cls.__new__(cls)
        Encoder.__init__(encoder, card, device="cpu")
        return encoder

    @property
    def id(self) -> str:
        return self.card["id"]

    @property
    def spec(self):
        """The card's EncoderSpec (registry.specs); the card a runner encoder gets has its schema defaults filled."""

        return encoder_spec(self.card)

    @property
    def dim(self) -> int:
        return int(self.card["embedding"]["dim"])

    @property
    def contract(self) -> dict:
        """The preprocessing contract from the card (size, channels, interpolation, normalize, bit_depth)."""
        return self.card.get("preprocess", {})

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Common [0,1] MONOCHROME2 image -> this encoder's input (default: the card's preprocessing contract)."""

        return to_encoder_input(image, self.contract)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """A batch of prepared inputs, stacked on axis 0 -> (B, dim) float32 embeddings, pooled as the card says."""
        raise NotImplementedError

    @property
    def has_text_tower(self) -> bool:
        """The card declares a text tower (`text`): zero-shot tasks can embed prompts with `embed_text`."""
        return bool(self.card.get("text"))

    def embed_text(self, prompts: list[str]) -> np.ndarray:
        """Prompts -> (n, dim) float32 embeddings in the image embeddings' space (adapters with a text tower)."""
        raise EncoderError(f"encoder {self.id!r} ({type(self).__name__}) has no text tower")

    def devices_used(self) -> dict[str, str]:
        """{framework: device it really runs on} for the result's environment (e.g. {"tensorflow": "cpu"})."""
        return {}


def pool_tokens(tokens: np.ndarray, pooling: str) -> np.ndarray:
    """(B, T, D) token outputs -> (B, D') as the card's `embedding.pooling` says; (B, D) passes through for `none`."""
    if pooling in ("none", None) or tokens.ndim == 2:
        return tokens
    if pooling == "mean":
        return tokens.mean(axis=1)
    if pooling == "cls":
        return tokens[:, 0]
    if pooling == "flatten":
        return tokens.reshape(tokens.shape[0], -1)
    raise EncoderError(f"unknown pooling {pooling!r}; expected one of mean, cls, flatten, none")


class LazyEncoder:
    """An encoder whose model is built on first use, so a run whose embeddings are all cached loads no weights.

    The card-derived attributes (id, dim, contract, card, device) and `prepare` never build the model; `embed` and
    anything adapter-specific (e.g. `.model`) do, once.
    """

    def __init__(self, adapter_class: type[Encoder], card: dict, device: str, build: Callable[[], Encoder]):
        self.adapter_class = adapter_class
        self.card = card
        self.device = device
        self._build = build
        self._encoder: Encoder | None = None
        self._preparer = adapter_class.prepare_only(card)

    id = Encoder.id
    spec = Encoder.spec
    dim = Encoder.dim
    contract = Encoder.contract
    has_text_tower = Encoder.has_text_tower

    @property
    def built(self) -> bool:
        return self._encoder is not None

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return self._preparer.prepare(image)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self.encoder.embed(batch)

    def embed_text(self, prompts: list[str]) -> np.ndarray:
        return self.encoder.embed_text(prompts)

    def devices_used(self) -> dict[str, str]:
        """Empty while the model was never built (every embedding came from the cache: nothing ran anywhere)."""
        return self._encoder.devices_used() if self._encoder is not None else {}

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            with phase(f"loading {self.id} on {self.device}"):  # a line, not a bar stuck at 0 while weights load
                self._encoder = self._build()
        return self._encoder

    def __getattr__(self, name: str):
        # Only reached for attributes not defined above: adapter internals such as `.model` or `.forward`.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.encoder, name)


def adapter_class(encoder: Encoder | LazyEncoder) -> type[Encoder]:
    """The adapter class behind an encoder, lazy or built (decode workers build prepare-only instances of it)."""
    return getattr(encoder, "adapter_class", type(encoder))
