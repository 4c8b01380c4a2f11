"""Community adapters on small random models: torchxrayvision, transformers, OpenCLIP, timm, custom."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from registry.cards import load_card
from runner.encoders import EncoderError, load_encoder

ROOT = Path(__file__).resolve().parents[1]


def _card(name):
    """A registry card for a small random model saved under the card's file names: the real weights' pins (sha256,
    size) do not apply to those files, so they are dropped (tests/test_encoders_weights.py checks the pins)."""
    card = copy.deepcopy(load_card(ROOT / "encoders" / f"{name}.yaml").data)
    if card.get("weights"):
        card["weights"].pop("sha256", None)
        card["weights"].pop("sizes", None)
    return card


def _images(n=2, size=64):
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 1, (size, size + 7)).astype(np.float32) for _ in range(n)]


def _embed(enc, n=2, size=64):
    return enc.embed(np.stack([enc.prepare(im) for im in _images(n, size)]))


def _save(state, path):
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def test_xrv_random_control_and_weight_loading(tmp_path):
    random_enc = load_encoder(_card("xrv-densenet121-random"), device="cpu")
    x = np.stack([random_enc.prepare(im) for im in _images()])
    assert x.shape == (2, 1, 224, 224) and x.min() >= -1024 and x.max() <= 1024
    out = random_enc.embed(x)
    assert out.shape == (2, 1024)
    # The "all" card loads a converted safetensors state dict; op_threshs (a buffer) may be absent.
    state = {k: v for k, v in random_enc.model.state_dict().items() if k != "op_threshs"}
    _save(state, tmp_path / "xrv-densenet121-res224-all.safetensors")
    loaded = load_encoder(_card("xrv-densenet121-all"), device="cpu", weights_dir=tmp_path)
    np.testing.assert_allclose(loaded.embed(x), out, atol=1e-4)


def test_hf_transformers_vit_from_a_local_snapshot(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    model = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64))
    model.save_pretrained(tmp_path)  # writes config.json + model.safetensors, as the hub repo has them
    card = _card("rad-dino")
    card["preprocess"]["size"] = 32
    card["embedding"]["dim"] = 32
    enc = load_encoder(card, device="cpu", weights_dir=tmp_path)
    x = np.stack([enc.prepare(im) for im in _images()])
    cls = enc.embed(x)
    with torch.no_grad():
        hidden = model.eval()(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    np.testing.assert_allclose(cls, hidden[:, 0], atol=1e-5)
    card["embedding"]["pooling"] = "mean"
    np.testing.assert_allclose(load_encoder(card, device="cpu", weights_dir=tmp_path).embed(x), hidden.mean(1), atol=1e-5)


def test_open_clip_image_tower_only(tmp_path):
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    model_cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                                                  "head_width": 16}}
    torch.manual_seed(0)
    visual = _build_vision_tower(16, CLIPVisionCfg(**model_cfg["vision_cfg"])).eval()
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {**model_cfg, "text_cfg": {}}}))
    state = {"visual." + k: v for k, v in visual.state_dict().items()}
    state["text.token_embedding.weight"] = torch.zeros(3, 4)  # the text tower is never built
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    card = _card("biomedclip")
    card["preprocess"]["size"] = 32
    card["embedding"]["dim"] = 16
    enc = load_encoder(card, device="cpu", weights_dir=tmp_path)
    x = np.stack([enc.prepare(im) for im in _images()])
    with torch.no_grad():
        expected = visual(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(enc.embed(x), expected, atol=1e-5)


def test_timm_model_with_head_stripped_and_sha256_pin(tmp_path):
    import hashlib

    import timm

    torch.manual_seed(0)
    source = timm.create_model("test_efficientnet", pretrained=False).eval()  # with its classifier
    _save(source.state_dict(), tmp_path / "model.safetensors")
    card = _card("timm-resnet50-imagenet")
    card["model"] = {"name": "test_efficientnet"}
    card["preprocess"]["size"] = 64
    card["embedding"]["dim"] = source.num_features
    card["weights"]["sha256"] = {"model.safetensors": hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()}
    enc = load_encoder(card, device="cpu", weights_dir=tmp_path)
    x = np.stack([enc.prepare(im) for im in _images()])
    with torch.no_grad():
        expected = source.forward_head(source.forward_features(torch.from_numpy(x)), pre_logits=True).numpy()
    np.testing.assert_allclose(enc.embed(x), expected, atol=1e-5)
    card["weights"]["sha256"] = {"model.safetensors": "f" * 64}
    with pytest.raises(EncoderError, match="sha256 mismatch"):
        load_encoder(card, device="cpu", weights_dir=tmp_path)
    card["weights"].pop("sha256")
    card["embedding"]["dim"] = 7
    with pytest.raises(EncoderError, match="card says dim 7"):
        _embed(load_encoder(card, device="cpu", weights_dir=tmp_path))


CUSTOM_MODULE = '''
import numpy as np

def build(card, device, weights):
    scale = float(open(weights.path()).read()) if weights else 1.0
    return lambda batch: batch.reshape(len(batch), -1)[:, :4] * scale
'''


def test_custom_entrypoint_needs_trust(tmp_path, monkeypatch):
    (tmp_path / "my_custom_encoder.py").write_text(CUSTOM_MODULE)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "scale.txt").write_text("2.0")
    monkeypatch.syspath_prepend(str(tmp_path))
    card = {"id": "mine", "title": "t", "adapter": "custom", "entrypoint": "my_custom_encoder:build",
            "weights": {"files": ["scale.txt"]}, "preprocess": {"size": 8, "channels": 1}, "embedding": {"dim": 4}}
    with pytest.raises(EncoderError, match="--trust-custom-code"):
        load_encoder(card, device="cpu")
    enc = load_encoder(card, device="cpu", trust_custom_code=True, weights_dir=tmp_path / "w")
    x = np.stack([enc.prepare(im) for im in _images()])
    np.testing.assert_allclose(enc.embed(x), x.reshape(2, -1)[:, :4] * 2.0, rtol=1e-6)
    card["entrypoint"] = "my_custom_encoder:nothing"
    with pytest.raises(EncoderError, match="has no attribute"):
        load_encoder(card, device="cpu", trust_custom_code=True, weights_dir=tmp_path / "w")
    sys.modules.pop("my_custom_encoder", None)


def test_biomedclip_preprocessing_against_open_clips_own_transform():
    """open_clip builds BiomedCLIP's eval transform from its config: bicubic to 224, CLIP's mean/std, resize_mode
    'shortest' (shorter side to 224, then the centre crop). The card's contract resizes the whole image: open_clip's
    'squash'. So: equal to BiomedCLIP's own transform on square images (NIH's 1024² PNGs), equal to 'squash' on any
    image, and different from BiomedCLIP's crop on non-square ones (MIMIC's DICOMs), as the card's notes say."""
    open_clip = pytest.importorskip("open_clip")
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from PIL import Image

    from runner.data.imaging import to_encoder_input

    contract = _card("biomedclip")["preprocess"]

    def theirs(image, resize_mode=None):  # None: open_clip's default, what BiomedCLIP's config gets
        transform = open_clip.image_transform(contract["size"], is_train=False, mean=OPENAI_DATASET_MEAN,
                                              std=OPENAI_DATASET_STD, resize_mode=resize_mode, interpolation="bicubic")
        return transform(Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").convert("RGB")).numpy()

    rng = np.random.default_rng(7)
    square = rng.uniform(0, 1, (300, 300)).astype(np.float32)
    tall = np.clip(np.linspace(0, 1, 301)[:, None] + rng.normal(0, 0.05, (301, 263)), 0, 1).astype(np.float32)
    np.testing.assert_allclose(to_encoder_input(square, contract), theirs(square), rtol=0, atol=1e-6)
    np.testing.assert_allclose(to_encoder_input(tall, contract), theirs(tall, "squash"), rtol=0, atol=1e-6)
    assert np.abs(to_encoder_input(tall, contract) - theirs(tall)).max() > 0.05  # the crop is not expressible yet
