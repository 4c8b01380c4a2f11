"""Signature-compatible stand-ins for CXR Foundation's two SavedModels (the real ones are gated), built here.

ELIXR-C: input_example (B,) serialized tf.train.Example -> feature_maps_0 (B, 8, 8, 1376) = the PNG's mean/65535 plus
k * OFFSET at flat index k. QFormer: image_feature (B, 8, 8, 1376) + ids/paddings (B, 1, 128) -> img_emb (B, 32, 768)
and all_contrastive_img_emb (B, 32, 128) from the spatial mean; contrastive_txt_emb (B, 1, 128) = the sum of the
ids not marked padding plus the output position (the text side). Used by tests/test_encoders_cxr_foundation.py and by
benchmarks/device_check.sh (`python tests/cxr_foundation_models.py DIR` writes a snapshot folder).

Variants: `ElixrC` reads item 0 of its batch only (declares [None] but is a batch-1 graph); `ElixrCBatched` treats
every item; `ElixrCFirstItem` gives every row item 0's features; `ElixrCNoisy` adds a batch-size-dependent relative error of `NOISE` (what TF32 and cuDNN's per-shape
algorithms do on a GPU); `ElixrCFixedBatch` declares a batch of exactly 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from runner.encoders.tf_runtime import import_tensorflow

tf = import_tensorflow()

OFFSET = 1e-6  # feature_maps_0[..., k] = image mean + k * OFFSET, k the flat index
NOISE = 1e-3  # relative error of ElixrCNoisy's batched calls
FEATURES = {"image/encoded": tf.io.FixedLenFeature([], tf.string), "image/format": tf.io.FixedLenFeature([], tf.string)}


def _ramp():
    return tf.reshape(tf.range(8 * 8 * 1376, dtype=tf.float32) * OFFSET, [1, 8, 8, 1376])


def _mean_of(png):
    return tf.reduce_mean(tf.cast(tf.io.decode_png(png, channels=1, dtype=tf.uint16), tf.float32)) / 65535.0


class ElixrC(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="input_example")])
    def serve(self, input_example):
        parsed = tf.io.parse_single_example(input_example[0], FEATURES)
        tf.debugging.assert_equal(parsed["image/format"], tf.constant("png"))
        return {"feature_maps_0": _mean_of(parsed["image/encoded"]) + _ramp()}


class ElixrCBatched(tf.Module):
    """The same features as ElixrC for every Example of a batch (images of different sizes: one map_fn step each)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="input_example")])
    def serve(self, input_example):
        parsed = tf.io.parse_example(input_example, FEATURES)
        tf.debugging.assert_equal(parsed["image/format"], tf.constant("png"))
        means = tf.map_fn(_mean_of, parsed["image/encoded"], fn_output_signature=tf.float32)
        return {"feature_maps_0": means[:, None, None, None] + _ramp()}


class ElixrCNoisy(ElixrCBatched):
    """ElixrCBatched whose output drifts by NOISE (relative) when the batch holds more than one image."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="input_example")])
    def serve(self, input_example):
        maps = ElixrCBatched.serve.python_function(self, input_example)["feature_maps_0"]
        batched = tf.cast(tf.shape(input_example)[0] > 1, tf.float32)
        return {"feature_maps_0": maps * (1.0 + NOISE * batched)}


class ElixrCFirstItem(ElixrCBatched):
    """A graph that batches wrongly: every row of the batch gets item 0's features."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="input_example")])
    def serve(self, input_example):
        maps = ElixrCBatched.serve.python_function(self, input_example)["feature_maps_0"]
        return {"feature_maps_0": tf.repeat(maps[:1], tf.shape(input_example)[0], axis=0)}


class ElixrCFixedBatch(ElixrC):
    """A signature traced for batch 1 only."""

    @tf.function(input_signature=[tf.TensorSpec([1], tf.string, name="input_example")])
    def serve(self, input_example):
        return ElixrC.serve.python_function(self, input_example)


class QFormer(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1376], tf.float32, name="image_feature"),
                                  tf.TensorSpec([None, 1, 128], tf.int32, name="ids"),
                                  tf.TensorSpec([None, 1, 128], tf.float32, name="paddings")])
    def serve(self, image_feature, ids, paddings):
        pooled = tf.reduce_mean(image_feature, axis=[1, 2])  # (B, 1376)
        text = tf.cast(tf.reduce_sum(ids), tf.float32) + tf.reduce_sum(paddings)  # 0 for the empty text
        token = tf.range(32, dtype=tf.float32)[None, :, None]
        # ELIXR-B's text side: here the sum of the ids that are not padding, plus the output position
        kept = tf.reduce_sum(tf.cast(ids, tf.float32) * (1.0 - paddings), axis=[1, 2])  # (B,)
        return {"img_emb": pooled[:, None, :768] + token + text,
                "all_contrastive_img_emb": pooled[:, None, :128] - token + text,
                "contrastive_txt_emb": kept[:, None, None] + tf.range(128, dtype=tf.float32)[None, None, :]}


def save_snapshot(root, image_module=None) -> Path:
    """A google/cxr-foundation-shaped snapshot folder: elixr-c-v2-pooled/ and pax-elixr-b-text/ SavedModels."""
    root = Path(root)
    for name, module in (("elixr-c-v2-pooled", image_module or ElixrCBatched()), ("pax-elixr-b-text", QFormer())):
        tf.saved_model.save(module, str(root / name), signatures={"serving_default": module.serve})
    return root


def expected_img_emb(u16: np.ndarray) -> np.ndarray:
    """The mean-pooled img_emb the stand-ins give for a PNG holding the uint16 pixels `u16`."""
    mean = u16.astype(np.float64).mean() / 65535.0
    per_channel = mean + (31.5 * 1376 + np.arange(768)) * OFFSET  # mean over the 64 positions of the ramp
    return per_channel + 15.5  # mean of the 32 token offsets


if __name__ == "__main__":
    print(save_snapshot(sys.argv[1]))
