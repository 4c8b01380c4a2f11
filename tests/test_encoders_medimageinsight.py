"""MedImageInsight: the real DaViT architecture (random weights), the package's preprocessing, checkpoint key mapping."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from registry.cards import load_card
from runner.encoders import EncoderError, load_encoder
from runner.encoders.davit import DaViT, DaViTConfig
from runner.encoders.medimageinsight import MedImageInsightTower

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"embed_dims": [16, 32, 64, 128], "depths": [1, 1, 2, 1], "num_heads": [2, 4, 8, 16],
         "num_groups": [2, 4, 8, 16], "window_size": 12}
WEIGHT_FILE = "2024.09.27/vision_model/medimageinsigt-v1.0.0.pt"


def _card(name="medimageinsight", davit=SMALL, size=96):
    card = copy.deepcopy(load_card(ROOT / "encoders" / f"{name}.yaml").data)
    if card.get("weights"):  # small random towers saved under the real file name: the real file's pins do not apply
        card["weights"].pop("sha256", None)
        card["weights"].pop("sizes", None)
    card["model"]["davit"] = davit
    card["preprocess"]["size"] = size
    return card


def _image(h=301, w=263, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip(0.5 + 0.3 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 0.05, (h, w)), 0, 1).astype(np.float32)


def test_full_config_is_the_360m_parameter_tower():
    with torch.device("meta"):  # shapes only: no 1.4 GB allocation
        tower = MedImageInsightTower(DaViTConfig(), 1024)
    n_tower = sum(p.numel() for p in tower.image_encoder.parameters())
    assert n_tower == 360_636_416  # the package's DaViT, config v20240927 (360.6 M)
    assert tuple(tower.image_projection.shape) == (2048, 1024)
    card = load_card(ROOT / "encoders" / "medimageinsight.yaml").data
    assert card["parameters"] == n_tower + 2048 * 1024
    assert DaViTConfig.from_dict(card["model"]["davit"]) == DaViTConfig()


def test_random_weights_give_unit_norm_1024_d_embeddings():
    enc = load_encoder(_card("medimageinsight-random"), device="cpu")
    batch = np.stack([enc.prepare(_image(seed=s)) for s in range(2)])
    assert batch.shape == (2, 3, 96, 96)
    out = enc.embed(batch)
    assert out.shape == (2, 1024) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(out[0], out[1])
    again = load_encoder(_card("medimageinsight-random"), device="cpu").embed(batch)
    np.testing.assert_array_equal(out, again)  # the card's seed fixes the random weights


def test_preprocessing_equals_the_package_transform():
    from PIL import Image
    from torchvision import transforms as T

    image = _image()
    enc = load_encoder(_card("medimageinsight-random"), device="cpu")  # the real card's contract, size 480
    enc.card["preprocess"]["size"] = 480
    ours = enc.prepare(image)
    # medimageinsights 0.1.1 build_transforms(is_train=False): Resize((480, 480), bicubic), ToTensor, Normalize(ImageNet)
    package = T.Compose([T.Resize((480, 480), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                         T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    rgb8 = Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").convert("RGB")
    theirs = package(rgb8).numpy()
    assert ours.shape == theirs.shape == (3, 480, 480)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("legacy", [False, True])
def test_checkpoint_keys_load_strictly(tmp_path, legacy):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = MedImageInsightTower(DaViTConfig.from_dict(SMALL), 1024).eval()
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if legacy:  # the names the package's _convert_old_weights maps
        state = {("visual." + k[len("image_encoder."):] if k.startswith("image_encoder.") else "vision_projection"): v
                 for k, v in state.items()}
    state["lang_encoder.token_embedding.weight"] = torch.zeros(3, 4)  # text tower: ignored
    state["logit_scale"] = torch.ones(())
    (tmp_path / WEIGHT_FILE).parent.mkdir(parents=True)
    save_file(state, str(tmp_path / WEIGHT_FILE))

    enc = load_encoder(_card(), device="cpu", weights_dir=tmp_path)
    x = np.stack([enc.prepare(_image())])
    with torch.no_grad():
        expected = source(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(enc.embed(x), expected, atol=1e-6)


def test_checkpoint_that_does_not_fit_is_refused(tmp_path):
    from safetensors.torch import save_file

    other = MedImageInsightTower(DaViTConfig.from_dict({**SMALL, "depths": [1, 1, 1, 1]}), 1024)
    (tmp_path / WEIGHT_FILE).parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / WEIGHT_FILE))
    with pytest.raises(EncoderError, match="do not fit"):
        load_encoder(_card(), device="cpu", weights_dir=tmp_path)


def test_window_padding_path_matches_unpadded_tokens():
    # 100 px -> 25x25 tokens in stage 1: not a multiple of the window (12), so the padded path runs.
    model = DaViT(DaViTConfig.from_dict(SMALL)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 100, 100))
    assert out.shape == (1, 128) and torch.isfinite(out).all()


def _upstream_davit(cfg: DaViTConfig, drop_path_rate: float = 0.2):
    """medimageinsights' own DaViT (davit_v1.py) with the config `cfg` describes, as its create_encoder builds it:
    standard parameterisation, no classifier head, the package's drop-path rate, its own "original" init."""
    upstream = pytest.importorskip("MedImageInsights.ImageEncoder.davit_v1",
                                   reason="medimageinsights is not installed (the dev extra installs it)")
    model = upstream.DaViT(
        num_classes=0, depths=cfg.depths, embed_dims=cfg.embed_dims, base_embed_dims=cfg.embed_dims,
        num_heads=cfg.num_heads, base_num_heads=cfg.num_heads, num_groups=cfg.num_groups,
        base_num_groups=cfg.num_groups, patch_size=cfg.patch_size, patch_stride=cfg.patch_stride,
        patch_padding=cfg.patch_padding, patch_prenorm=cfg.patch_prenorm, window_size=cfg.window_size,
        mlp_ratio=cfg.mlp_ratio, drop_path_rate=drop_path_rate, standparam=True)
    model.custom_init_weights(use_original_init=True)
    return model


def test_davit_port_equals_the_packages_own_module_with_shared_random_weights():
    cfg = DaViTConfig.from_dict(SMALL)
    torch.manual_seed(3)
    theirs = _upstream_davit(cfg).eval()
    ours = DaViT(cfg).eval()
    state = theirs.state_dict()
    assert set(state) == set(ours.state_dict())  # the same module names: the checkpoint's keys load as they are
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 100, 100)  # 25x25 stage-1 tokens: the window-padding path runs too
    with torch.no_grad():
        expected, got = theirs.forward_features(x), ours.forward_features(x)
    assert got.shape == expected.shape == (2, cfg.embed_dims[-1])
    assert torch.equal(got, expected), float((got - expected).abs().max())


def test_the_packages_module_in_train_mode_is_not_deterministic():
    # Why this port runs eval mode: the published wrapper never calls .eval(), and drop-path 0.2 then makes every
    # call different (docs/adding-an-encoder.md); eval mode gives the same embedding each time.
    cfg = DaViTConfig.from_dict(SMALL)
    torch.manual_seed(4)
    theirs = _upstream_davit(cfg)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert not torch.equal(theirs.train()(x), theirs(x))
        assert torch.equal(theirs.eval().forward_features(x), theirs.forward_features(x))
