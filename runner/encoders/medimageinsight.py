"""MedImageInsight (Microsoft, 2024): DaViT image tower + 2048->1024 projection, L2-normalised 1024-d embeddings.

We carry a clean port of the image tower (runner/encoders/davit.py) instead of depending on the `medimageinsights`
package because that package (0.1.1) always downloads its checkpoint from a fixed hub repo and ignores local paths,
builds the 16-layer text tower we never use, and pulls mpi4py, fvcore, mup and a tokenizer at import time. The port keeps
the package's module names, so the released safetensors checkpoint loads by key (old `visual.*`/`vision_projection`
names are mapped as the package maps them), and the load is strict: a key that does not fit stops the run.

Preprocessing is the card's contract {size: 480, channels: 3, interpolation: bicubic, normalize: imagenet, bit_depth: 8},
which runner.data.imaging applies as the package's eval transform does: the image as 8 bits, PIL bicubic resize to 480x480
(what torchvision's Resize does on a PIL image), /255, ImageNet mean/std (tests/test_encoders_medimageinsight.py checks it).
"""

from __future__ import annotations

import torch
from torch import nn

from runner.encoders.davit import DaViT, DaViTConfig, remap_davit_key
from runner.encoders.torch_base import TorchEncoder
from runner.encoders.unicl_text import Transformer, UniCLTextConfig, encode_text


class MedImageInsightTower(nn.Module):
    """Image tower + projection + L2 norm, with the attribute names of the package's UniCLModel; and its text tower
    (runner.encoders.unicl_text: `lang_encoder`, `lang_projection`) when the card declares one."""

    def __init__(self, davit: DaViTConfig, dim_projection: int, text: UniCLTextConfig | None = None):
        super().__init__()
        self.image_encoder = DaViT(davit)
        self.image_projection = nn.Parameter(torch.empty(self.image_encoder.dim_out, dim_projection))
        nn.init.trunc_normal_(self.image_projection, std=0.02)
        if text is not None:
            self.lang_encoder = Transformer(text)
            self.lang_projection = nn.Parameter(torch.empty(text.width, dim_projection))
            nn.init.trunc_normal_(self.lang_projection, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # UniCLModel.encode_image(norm=True)
        z = self.image_encoder.forward_features(x) @ self.image_projection
        return z / z.norm(dim=-1, keepdim=True)


def checkpoint_to_tower_keys(state: dict, with_text: bool = False) -> dict:
    """Checkpoint keys (new or legacy names) -> this tower's keys; the logit scale is dropped, and the text tower too
    unless `with_text` (legacy `text.*`, `text_projection` become `lang_encoder.*`, `lang_projection`)."""
    out = {}
    for key, value in state.items():
        if key.startswith("visual."):
            key = "image_encoder." + key[len("visual."):]
        elif key == "vision_projection":
            key = "image_projection"
        elif key.startswith("text."):
            key = "lang_encoder." + key[len("text."):]
        elif key == "text_projection":
            key = "lang_projection"
        if key.startswith("image_encoder."):
            out["image_encoder." + remap_davit_key(key[len("image_encoder."):])] = value
        elif key == "image_projection" or (with_text and (key.startswith("lang_encoder.") or key == "lang_projection")):
            out[key] = value
    return out


class MedImageInsightEncoder(TorchEncoder):
    """Card: `model: {davit: {...DaViTConfig overrides...}, dim_projection: 1024}`; weights.files[0] = the checkpoint."""

    def build(self, weights):
        model_cfg = self.card.get("model") or {}
        text = UniCLTextConfig.from_dict((self.card.get("text") or {}).get("model")) if self.has_text_tower else None
        model = MedImageInsightTower(
            DaViTConfig.from_dict(model_cfg.get("davit")), int(model_cfg.get("dim_projection", self.dim)), text
        )
        if weights is not None:
            self.load_weights(model, checkpoint_to_tower_keys(self.state_from(weights), with_text=text is not None))
        return model

    def forward_text(self, ids, mask):
        if not hasattr(self.model, "lang_encoder"):
            return super().forward_text(ids, mask)
        return encode_text(self.model.lang_encoder, self.model.lang_projection, ids, mask)
