"""CXR Foundation (Google, ELIXR v2.0): two TensorFlow SavedModels from a snapshot of google/cxr-foundation.

ELIXR-C (`elixr-c-v2-pooled`) takes a serialized tf.train.Example holding a PNG and returns `feature_maps_0`
(1x8x8x1376); the QFormer (`pax-elixr-b-text`) maps those, with zero text `ids`/`paddings` (1x1x128), to 32 query tokens
`img_emb` (32x768) and `all_contrastive_img_emb` (32x128). The card's `embedding.output` picks the output and
`embedding.pooling` the pooling (paper: img_emb, mean -> 768); signature and tensor names are in its `model` block.

Input encoding follows Google's client: a 16-bit greyscale PNG. Our common image is float [0,1] after modality LUT,
windowing (done in float by runner.data.imaging, which avoids the reference client's np.iinfo(float64) crash on DICOMs with
Rescale Slope/Intercept) and MONOCHROME1 inversion; it is min-max rescaled to the full uint16 range, as the client does for
non-uint8 input (tests/test_encoders_cxr_foundation.py writes the client's steps out and compares). The card's
`preprocess.size` resizes first: `cxr-foundation` to 1024 x 1024 as the paper did, `cxr-foundation-native` not at all
(the model resizes internally). `prepare` returns the serialized Example (a 0-d object array), so the PNG encoding runs
in decode workers.

Where it runs: runner.encoders.tf_runtime.select_device (a GPU TensorFlow itself sees for --device cuda, else one line;
memory growth on; the CPU only when asked), reported by `devices_used` into the result's environment. `runner eval`
runs this adapter in a child process of its own (runner.encoders.isolation). TensorFlow is imported after triton and
with tensorflow_text (tf_runtime.import_tensorflow).

Speed: the PNG is stored at zlib level 0 (same pixels; ~10 ms instead of ~575 ms at Pillow's default level for a
3.6-Mpx CR), and the Example is written in the protobuf wire format here, so decode workers
never import TensorFlow. `embed` sends the whole batch through ELIXR-C and the QFormer in one call each when both
signatures have an unknown batch dimension; the first such batch is checked against a per-image call of its last
image (BATCH_CHECK_RTOL), and a model that does not batch truly falls back to one call per image with one logged line.
"""

from __future__ import annotations

import io
import logging

import numpy as np

from runner.data.imaging import to_encoder_input
from runner.encoders.base import Encoder, EncoderError, pool_tokens
from runner.encoders.text_towers import Tokenizer, find_tokenizer_files
from runner.encoders.tf_runtime import has_tensorflow_text, import_tensorflow, select_device
from runner.encoders.weights import resolve_weights

log = logging.getLogger(__name__)

# The first batch's batched call must agree with a per-image call of its last image to this relative L2 difference
# (||batched - single|| / ||single|| over the 32 x D tokens). On a GPU the two calls differ by ~1e-3: TensorFlow runs
# matmuls in TF32 (10-bit mantissa) by default and cuDNN picks its convolution algorithm per batch shape, so the
# same image gives slightly different numbers in a batch of 8 and alone; on the CPU they agree to ~1e-6. A graph that
# does not batch truly (reads item 0 only, or mixes items) is off by the difference between two images, which for
# two chest X-rays' query tokens is of order 1e-1. 1e-2 sits ten times above GPU noise and ten times below that.
BATCH_CHECK_RTOL = 1e-2


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b|| (L2 over all values); 0 when both are zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = float(np.linalg.norm(b))
    diff = float(np.linalg.norm(a - b))
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


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


# ELIXR-B's text inputs and output (Google's client: ids/paddings (1, 1, 128), contrastive_txt_emb)
TEXT_DEFAULTS = {"ids_input": "ids", "paddings_input": "paddings", "output": "contrastive_txt_emb",
                 "image_feature_shape": [8, 8, 1376]}


def to_uint16(image01: np.ndarray) -> np.ndarray:
    """Min-max rescale to the full uint16 range (a constant image becomes all zeros)."""
    x = np.asarray(image01, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.uint16)
    return np.round((x - lo) / (hi - lo) * 65535.0).astype(np.uint16)


def png16_bytes(pixels: np.ndarray) -> bytes:
    """A 2-D uint16 array -> 16-bit greyscale PNG bytes (lossless), stored uncompressed.

    Every row has filter type 0 and the zlib stream is level 0 (stored blocks): a 1955x1841 CR takes ~10 ms here,
    where Pillow takes ~575 ms at its default level and still ~155 ms at compress_level=0 (it filters each row);
    the pixels that Pillow and TensorFlow decode are identical (tests/test_encoders_cxr_foundation.py).
    """
    import struct
    import zlib

    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise EncoderError(f"expected a 2-D uint16 image, got {pixels.dtype} {pixels.shape}")
    h, w = pixels.shape
    if h == 0 or w == 0:
        raise EncoderError(f"cannot encode an empty image {pixels.shape} as PNG")
    raw = np.zeros((h, 1 + 2 * w), dtype=np.uint8)  # column 0: filter type 0 (none) for each scanline
    raw[:, 1:] = pixels.astype(">u2").view(np.uint8).reshape(h, 2 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)  # 16-bit, greyscale, deflate, adaptive filters, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 0))
            + chunk(b"IEND", b""))


def decode_png16(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im, dtype=np.uint16) if im.mode.startswith("I") else np.asarray(im).astype(np.uint16)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _bytes_field(field_number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2): tag, length, payload."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def example_bytes(png: bytes) -> bytes:
    """The serialized tf.train.Example ELIXR-C reads: image/encoded = PNG bytes, image/format = b'png'.

    Written in the protobuf wire format (tensorflow/core/example/{example,feature}.proto: Example.features = 1,
    Features.feature = 1 (map entries: key = 1, value = 2), Feature.bytes_list = 1, BytesList.value = 1), keys in
    sorted order, which is byte-for-byte TensorFlow's deterministic serialisation, without importing TensorFlow.
    """
    entries = b"".join(
        _bytes_field(1, _bytes_field(1, key) + _bytes_field(2, _bytes_field(1, _bytes_field(1, value))))
        for key, value in sorted({b"image/encoded": bytes(png), b"image/format": b"png"}.items())
    )
    return _bytes_field(1, entries)


def _has_batch_dim(fn, name: str) -> bool:
    """True when the signature input `name` has an unknown leading dimension (so it accepts a batch)."""
    try:
        spec = fn.structured_input_signature[1][name]
        return len(spec.shape) > 0 and spec.shape[0] is None
    except (AttributeError, IndexError, KeyError, TypeError):
        return False


class CXRFoundationEncoder(Encoder):
    framework = "tensorflow"
    requires = ("tensorflow",)
    NUMBER_PACKAGES = ("tensorflow", "tensorflow-text")  # the SavedModels run on them

    def __init__(self, card: dict, device: str = "cpu", weights_dir=None):
        super().__init__(card, device=device, weights_dir=weights_dir)
        # Weights first: a missing snapshot is reported before TensorFlow's seconds-long, log-heavy import.
        weights = resolve_weights(card, weights_dir)
        tf = import_tensorflow()
        # Where TensorFlow itself runs (not where torch would): --device cuda without a GPU TensorFlow sees stops here.
        self.tf_device = select_device(tf, device)

        # Signature and tensor names live in the card's `model` block; the embedding's source in `embedding.output`.
        self.tf_cfg = {**DEFAULT_TF, **(card.get("model") or {})}
        self.output = (card.get("embedding") or {}).get("output", "img_emb")
        self._weights_root = weights.root
        self._tokenizer = None
        with tf.device(self.tf_device.scope):
            self._image_model = self._load(tf, weights.root / self.tf_cfg["image_model"])
            self._qformer = self._load(tf, weights.root / self.tf_cfg["qformer_model"])
        self._image_fn = self._signature(self._image_model, "image_signature")
        self._qformer_fn = self._signature(self._qformer, "qformer_signature")
        cfg = self.tf_cfg
        # None: not yet checked on a real batch; False: one call per image
        self._batched: bool | None = None
        if not (_has_batch_dim(self._image_fn, cfg["image_input"])
                and _has_batch_dim(self._qformer_fn, cfg["qformer_image_input"])):
            self._batched = False
            log.info("CXR Foundation: the signatures have no batch dimension; one model call per image")

    def devices_used(self) -> dict[str, str]:
        return {"tensorflow": self.tf_device.name}

    def _load(self, tf, path):
        try:
            return tf.saved_model.load(str(path))
        except Exception as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            if "Op type not registered" in str(exc) and not has_tensorflow_text():
                first += " (the graph uses TF-Text ops: install tensorflow-text, the `tf` extra)"
            raise EncoderError(f"cannot load the TensorFlow SavedModel at {path}: {first}") from exc

    def _signature(self, model, key):
        name, sigs = self.tf_cfg[key], getattr(model, "signatures", {})
        if name not in sigs:
            raise EncoderError(f"SavedModel has no signature {name!r} (has: {', '.join(sigs) or 'none'}); fix model.{key}")
        return sigs[name]

    def prepare(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        if self.contract.get("size"):
            image = to_encoder_input(image, {**self.contract, "channels": 1, "normalize": "none"})[0]
        out = np.empty((), dtype=object)
        out[()] = example_bytes(png16_bytes(to_uint16(image)))
        return out

    def _tokens(self, serialized: list[bytes]) -> np.ndarray:
        """(B, 32, D) query tokens for B serialized Examples, in one ELIXR-C and one QFormer call."""
        tf = import_tensorflow()

        cfg = self.tf_cfg
        with tf.device(self.tf_device.scope):
            feats = self._image_fn(**{cfg["image_input"]: tf.constant(serialized)})[cfg["image_output"]]
            zeros = (len(serialized), 1, int(cfg["text_length"]))
            out = self._qformer_fn(**{
                cfg["qformer_image_input"]: feats,
                "ids": tf.zeros(zeros, dtype=tf.int32),
                "paddings": tf.zeros(zeros, dtype=tf.float32),
            })
        if self.output not in out:
            raise EncoderError(f"QFormer output {self.output!r} not found (has: {', '.join(out)}); fix embedding.output")
        tokens = out[self.output].numpy()
        return tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])  # (B, 32, D) whatever the batch dims

    def _per_image(self, items: list[bytes]) -> np.ndarray:
        return np.concatenate([self._tokens([item]) for item in items])

    def _batch_tokens(self, items: list[bytes]) -> np.ndarray:
        if self._batched is False or len(items) == 1:
            return self._per_image(items)
        if self._batched:
            return self._tokens(items)
        # first batch: the batched call must run and give what a per-image call gives (a graph may read item 0 only)
        try:
            tokens = self._tokens(items)
        except EncoderError:
            raise
        except Exception as exc:  # noqa: BLE001 - a signature that declares a batch dimension but cannot run one
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        else:
            if tokens.shape[0] != len(items):
                reason = f"{tokens.shape[0]} outputs for {len(items)} inputs"
            elif (diff := relative_difference(tokens[-1], self._tokens([items[-1]])[0])) > BATCH_CHECK_RTOL:
                reason = (f"batched output differs from a per-image call by {diff:.1e} (relative; more than "
                          f"{BATCH_CHECK_RTOL:.0e})")
            else:
                self._batched = True
                return tokens
        self._batched = False
        log.warning("CXR Foundation: batched call unusable (%s); falling back to one model call per image", reason)
        return self._per_image(items)

    def embed_text(self, prompts: list[str]) -> np.ndarray:
        """ELIXR-B's contrastive text embedding of each prompt: the QFormer called with an all-zero image feature map
        and the prompt's BERT WordPiece ids, as Google's client does (lower-cased; paddings = 1 - the attention mask;
        the [SEP] token dropped to id 0, padding 1), output `contrastive_txt_emb` (the card's `text.model`)."""
        if not self.has_text_tower:
            return super().embed_text(prompts)
        tf = import_tensorflow()
        cfg = {**TEXT_DEFAULTS, **((self.card.get("text") or {}).get("model") or {})}
        if self._tokenizer is None:
            self._tokenizer = Tokenizer(self.card, find_tokenizer_files(self.card, self._weights_root, self.weights_dir))
        tokens = self._tokenizer.tokenize([p.lower() for p in prompts])
        ids = tokens.ids.astype(np.int32)
        paddings = 1.0 - tokens.mask.astype(np.float32)
        sep = ids == self._tokenizer.sep_id  # [SEP]: 102 in BERT's uncased vocabulary
        ids[sep], paddings[sep] = 0, 1.0
        zeros = np.zeros([1, *cfg["image_feature_shape"]], dtype=np.float32)
        out = []
        for row in range(len(prompts)):  # one call per prompt, as Google's client makes them
            with tf.device(self.tf_device.scope):
                result = self._qformer_fn(**{self.tf_cfg["qformer_image_input"]: tf.constant(zeros),
                                             cfg["ids_input"]: tf.constant(ids[row][None, None]),
                                             cfg["paddings_input"]: tf.constant(paddings[row][None, None])})
            if cfg["output"] not in result:
                raise EncoderError(f"QFormer output {cfg['output']!r} not found (has: {', '.join(result)}); fix "
                                   "text.model.output")
            out.append(result[cfg["output"]].numpy().reshape(-1))
        embedded = np.stack(out).astype(np.float32)
        if embedded.shape[1] != self.dim:
            raise EncoderError(f"CXR Foundation's text tower gave {embedded.shape[1]}-d embeddings; the card's image "
                               f"embeddings are {self.dim}-d (zero-shot needs embedding.output all_contrastive_img_emb)")
        return embedded

    def embed(self, batch: np.ndarray) -> np.ndarray:
        items = [bytes(item) for item in np.asarray(batch, dtype=object).reshape(-1)]
        tokens = self._batch_tokens(items)
        pooled = pool_tokens(tokens, (self.card.get("embedding") or {}).get("pooling", "mean"))
        if pooled.shape[1] != self.dim:
            raise EncoderError(f"CXR Foundation produced {pooled.shape[1]}-d embeddings; the card says dim {self.dim}")
        return pooled.astype(np.float32)
