"""CXR Foundation (Google, ELIXR v2.0): two TensorFlow SavedModels from a snapshot of google/cxr-foundation.

ELIXR-C (`elixr-c-v2-pooled`) takes a serialized tf.train.Example holding a PNG and returns `feature_maps_0`
(1x8x8x1376); the QFormer (`pax-elixr-b-text`) maps those, with zero text `ids`/`paddings` (1x1x128), to 32 query tokens
`img_emb` (32x768) and `all_contrastive_img_emb` (32x128). The card's `embedding.output` picks the output and
`embedding.pooling` the pooling (paper: img_emb, mean -> 768); signature and tensor names are in its `model` block.

Input encoding follows Google's client: a 16-bit greyscale PNG. Our common image is float [0,1] after modality LUT,
windowing (done in float by runner.imaging, which avoids the reference client's np.iinfo(float64) crash on DICOMs with
Rescale Slope/Intercept) and MONOCHROME1 inversion; it is min-max rescaled to the full uint16 range, as the client does for
non-uint8 input. The image keeps its resolution unless the card's `preprocess.size` asks for a resize (the model resizes
internally). `prepare` returns the serialized Example (a 0-d object array), so the PNG encoding runs in decode workers.
"""

from __future__ import annotations

import io

import numpy as np

from runner.encoders.base import Encoder, EncoderError, pool_tokens, register_adapter
from runner.encoders.weights import resolve_weights


def import_tensorflow():
    """TensorFlow, imported so that it can share the process with PyTorch.

    Loading triton (which torch._dynamo, timm and transformers import) after TensorFlow kills the process (a native
    library clash; tensorflow 2.21 + triton 3.8 here); triton first, then TensorFlow, works.
    """
    import os

    try:
        import triton  # noqa: F401
    except ImportError:
        pass
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ info logs off the user's terminal
    import tensorflow as tf

    return tf


DEFAULT_TF = {
    "image_model": "elixr-c-v2-pooled",
    "image_signature": "serving_default",
    "image_input": "input_example",
    "image_output": "feature_maps_0",
    "qformer_model": "pax-elixr-b-text",
    "qformer_signature": "serving_default",
    "qformer_image_input": "image_feature",
    "text_length": 128,
}


def to_uint16(image01: np.ndarray) -> np.ndarray:
    """Min-max rescale to the full uint16 range (a constant image becomes all zeros)."""
    x = np.asarray(image01, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.uint16)
    return np.round((x - lo) / (hi - lo) * 65535.0).astype(np.uint16)


def png16_bytes(pixels: np.ndarray) -> bytes:
    """A 2-D uint16 array -> 16-bit greyscale PNG bytes (lossless)."""
    from PIL import Image

    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise EncoderError(f"expected a 2-D uint16 image, got {pixels.dtype} {pixels.shape}")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def decode_png16(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im, dtype=np.uint16) if im.mode.startswith("I") else np.asarray(im).astype(np.uint16)


def example_bytes(png: bytes) -> bytes:
    """The serialized tf.train.Example ELIXR-C reads: image/encoded = PNG bytes, image/format = b'png'."""
    tf = import_tensorflow()
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@register_adapter("cxr-foundation")
class CXRFoundationEncoder(Encoder):
    def __init__(self, card: dict, device: str = "cpu", weights_dir=None):
        super().__init__(card, device=device, weights_dir=weights_dir)
        # Weights first: a missing snapshot is reported before TensorFlow's seconds-long, log-heavy import.
        weights = resolve_weights(card, weights_dir)
        tf = import_tensorflow()

        # Signature and tensor names live in the card's `model` block; the embedding's source in `embedding.output`.
        self.tf_cfg = {**DEFAULT_TF, **(card.get("model") or {})}
        self.output = (card.get("embedding") or {}).get("output", "img_emb")
        self._image_model = self._load(tf, weights.root / self.tf_cfg["image_model"])
        self._qformer = self._load(tf, weights.root / self.tf_cfg["qformer_model"])
        self._image_fn = self._signature(self._image_model, "image_signature")
        self._qformer_fn = self._signature(self._qformer, "qformer_signature")

    def _load(self, tf, path):
        try:
            return tf.saved_model.load(str(path))
        except Exception as exc:
            raise EncoderError(f"cannot load the TensorFlow SavedModel at {path}: {str(exc).splitlines()[0]}") from exc

    def _signature(self, model, key):
        name, sigs = self.tf_cfg[key], getattr(model, "signatures", {})
        if name not in sigs:
            raise EncoderError(f"SavedModel has no signature {name!r} (has: {', '.join(sigs) or 'none'}); fix model.{key}")
        return sigs[name]

    def prepare(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        if self.contract.get("size"):
            from runner.imaging import to_encoder_input

            image = to_encoder_input(image, {**self.contract, "channels": 1, "normalize": "none"})[0]
        out = np.empty((), dtype=object)
        out[()] = example_bytes(png16_bytes(to_uint16(image)))
        return out

    def _one(self, serialized: bytes) -> np.ndarray:
        tf = import_tensorflow()

        cfg = self.tf_cfg
        feats = self._image_fn(**{cfg["image_input"]: tf.constant([serialized])})[cfg["image_output"]]
        zeros = (1, 1, int(cfg["text_length"]))
        out = self._qformer_fn(**{
            cfg["qformer_image_input"]: feats,
            "ids": tf.zeros(zeros, dtype=tf.int32),
            "paddings": tf.zeros(zeros, dtype=tf.float32),
        })
        if self.output not in out:
            raise EncoderError(f"QFormer output {self.output!r} not found (has: {', '.join(out)}); fix embedding.output")
        tokens = out[self.output].numpy()
        return tokens.reshape(-1, tokens.shape[-1])  # (1, 32, D) -> (32, D)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        # One call per image, as Google's client does; the signatures are traced for batch 1.
        tokens = np.stack([self._one(bytes(item)) for item in np.asarray(batch, dtype=object).reshape(-1)])
        pooled = pool_tokens(tokens, (self.card.get("embedding") or {}).get("pooling", "mean"))
        if pooled.shape[1] != self.dim:
            raise EncoderError(f"CXR Foundation produced {pooled.shape[1]}-d embeddings; the card says dim {self.dim}")
        return pooled.astype(np.float32)
