"""Community encoders by library: torchxrayvision, Hugging Face transformers, OpenCLIP, timm.

Each adapter builds the architecture without any download, then loads the weight files the card names (safetensors, or
a state dict via torch.load(weights_only=True); never a pickled model) — or keeps the seeded random initialisation when the
card says `weights: {random_init: true}` (random-weight controls). Inputs come from the card's preprocessing contract.
"""

from __future__ import annotations

import json

from runner.encoders.base import EncoderError
from runner.encoders.torch_base import TorchEncoder


def _model_cfg(card: dict) -> dict:
    return card.get("model") or {}


class XRVEncoder(TorchEncoder):
    """torchxrayvision DenseNet; `features2` (ReLU + global average pool of the last dense block) -> 1024-d.

    torchxrayvision's released .pt files are pickled whole models, which we do not unpickle; convert once where you trust
    the file (see encoders/xrv-densenet121-all.yaml, weights.how_to_get) and name the safetensors file in the card.
    """

    requires = ("torch", "torchxrayvision")
    NUMBER_PACKAGES = ("torchxrayvision", "torchvision")  # the DenseNet code, built on torchvision

    def build(self, weights):
        import torchxrayvision as xrv

        cfg = _model_cfg(self.card)
        model = xrv.models.DenseNet(weights=None, num_classes=int(cfg.get("num_classes", 18)), in_channels=1)
        if weights is not None:
            self.load_weights(model, self.state_from(weights), ignore=("op_threshs",))
        return model

    def forward(self, x):
        return self.model.features2(x)


class HFTransformersEncoder(TorchEncoder):
    """Any transformers vision backbone (AutoModel) from a local snapshot: last_hidden_state pooled per the card
    (`cls`, `mean`), or `pooling: pooler` for the model's pooler_output."""

    requires = ("torch", "transformers")
    NUMBER_PACKAGES = ("transformers",)  # the model code

    def build(self, weights):
        from transformers import AutoConfig, AutoModel

        if weights is None:  # random-weight control from the card's `model.config`
            cfg = dict(_model_cfg(self.card).get("config") or {})
            if "model_type" not in cfg:
                raise EncoderError(f"encoder {self.id!r}: a random-init hf-transformers card needs model.config.model_type")
            return AutoModel.from_config(AutoConfig.for_model(**cfg))
        try:
            return AutoModel.from_pretrained(str(weights.root), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot load a transformers model from {weights.root}: {str(exc).splitlines()[0]}") from exc

    def forward(self, x):
        out = self.model(pixel_values=x)
        if (self.card.get("embedding") or {}).get("pooling") == "pooler":
            return out.pooler_output
        return out.last_hidden_state


class OpenCLIPEncoder(TorchEncoder):
    """An OpenCLIP model (e.g. BiomedCLIP, CLIP), built from the repo's open_clip_config.json `model_cfg` (or the
    card's `model.model_cfg`): the image tower, and the text tower too when the card declares one (`text`), so a card
    without it fetches no text model or tokenizer. A Hugging Face text tower (BiomedCLIP's BiomedBERT) is built from
    the card's `text.model.hf_config` (transformers AutoConfig.for_model), never downloaded."""

    requires = ("torch", "open_clip")
    NUMBER_PACKAGES = ("open_clip_torch", "timm")  # the vision tower code (timm towers for some models)

    def build(self, weights):
        from open_clip.model import CLIPTextCfg, CLIPVisionCfg, _build_text_tower, _build_vision_tower

        model_cfg = _model_cfg(self.card).get("model_cfg")
        config_file = _model_cfg(self.card).get("config_file", "open_clip_config.json")
        if weights is not None and (weights.root / config_file).exists():
            model_cfg = json.loads((weights.root / config_file).read_text())["model_cfg"]
        if not model_cfg:
            raise EncoderError(f"encoder {self.id!r}: no open_clip model_cfg (neither {config_file} nor model.model_cfg)")
        embed_dim, quick_gelu = int(model_cfg["embed_dim"]), bool(model_cfg.get("quick_gelu"))
        visual = _build_vision_tower(embed_dim, CLIPVisionCfg(**model_cfg["vision_cfg"]), quick_gelu=quick_gelu)
        text = None
        if self.has_text_tower:
            text_cfg = dict(model_cfg.get("text_cfg") or {})
            if text_cfg.get("hf_model_name"):
                text = _hf_text_tower(self.card, embed_dim, text_cfg)
            else:
                text = _build_text_tower(embed_dim, CLIPTextCfg(**text_cfg), quick_gelu=quick_gelu)
        model = _towers_class()(visual, text) if text is not None else visual
        if weights is not None:
            weight_file = next(f for f in weights.files if f != config_file)
            state = self.state_from(weights, weight_file)
            self.load_weights(visual, state, strip_prefix="visual.")
            if text is not None:
                self.load_weights(text, _text_state(state))
        return model

    def forward_text(self, ids, mask):
        text = getattr(self.model, "text", None)
        if text is None:
            return super().forward_text(ids, mask)
        return text(ids)  # open_clip's towers read the padding from the ids themselves


def _hf_text_tower(card: dict, embed_dim: int, text_cfg: dict):
    """open_clip's HFTextEncoder on a transformers config from the card (no hub download)."""
    from open_clip.hf_model import HFTextEncoder
    from transformers import AutoConfig

    hf_config = dict(((card.get("text") or {}).get("model") or {}).get("hf_config") or {})
    if "model_type" not in hf_config:
        raise EncoderError(f"encoder {card['id']!r}: a Hugging Face text tower needs text.model.hf_config.model_type")
    config = AutoConfig.for_model(**hf_config)
    return HFTextEncoder(text_cfg["hf_model_name"], output_dim=embed_dim, config=config,
                         pooler_type=text_cfg.get("hf_pooler_type"), proj_type=text_cfg.get("hf_proj_type"),
                         pretrained=False)


def _text_state(state: dict) -> dict:
    """The text tower's weights of an open_clip checkpoint: `text.*` (a custom text tower), else CLIP's top-level
    text keys (token_embedding, positional_embedding, transformer.*, ln_final.*, text_projection)."""
    if any(k.startswith("text.") for k in state):
        return {k[len("text."):]: v for k, v in state.items() if k.startswith("text.")}
    return {k: v for k, v in state.items() if not k.startswith(("visual.", "logit_scale", "logit_bias"))}


def _towers_class():
    from torch import nn

    class Towers(nn.Module):
        """An image tower and a text tower; calling it embeds images."""

        def __init__(self, visual, text):
            super().__init__()
            self.visual, self.text = visual, text

        def forward(self, x):
            return self.visual(x)

    return Towers


class TimmEncoder(TorchEncoder):
    """Any timm model by name (`model.name`, `model.kwargs`), classifier removed (num_classes=0): timm's pooled features."""

    requires = ("torch", "timm")
    NUMBER_PACKAGES = ("timm", "torchvision")  # the model code, and the torchvision ops some models use

    def build(self, weights):
        import timm

        cfg = _model_cfg(self.card)
        try:
            model = timm.create_model(cfg["name"], pretrained=False, num_classes=0, **(cfg.get("kwargs") or {}))
        except (RuntimeError, KeyError, TypeError) as exc:
            raise EncoderError(f"encoder {self.id!r}: timm cannot build {cfg.get('name')!r}: {exc}") from exc
        if weights is not None:
            head = model.pretrained_cfg.get("classifier") or "head"
            heads = tuple(h + "." for h in ([head] if isinstance(head, str) else head))
            self.load_weights(model, self.state_from(weights), ignore=heads)
        return model
