"""MedImageInsight's text tower (UniCL): a CLIP-style transformer over CLIP BPE tokens, inference only.

A clean port of `MedImageInsights/LangEncoder/transformer.py` and `UniCLModel.encode_text` (PyPI medimageinsights
0.1.1, MIT): token + learned positional embeddings, pre-norm residual blocks (nn.MultiheadAttention, QuickGELU MLP),
TF-style LayerNorm (epsilon inside the square root), a final LayerNorm; the feature of the first end-of-text token
(the argmax of the ids: CLIP's end-of-text is its largest id, and the tokenizer pads with it) times `lang_projection`,
L2-normalised. MedImageInsight's config v20240927 is not autoregressive: padding is masked by the attention mask
instead of a causal mask. Module and attribute names are the package's, so the checkpoint's `lang_encoder.*` and
`lang_projection` keys load without renaming. Training-only parts (drop path, muP) are left out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UniCLTextConfig:
    """Defaults are MedImageInsight's config v20240927 (LANG_ENCODER, UNICL_MODEL.DIM_PROJECTION)."""

    context_length: int = 77
    vocab_size: int = 49408  # CLIP BPE
    width: int = 1024
    layers: int = 16
    heads: int = 16
    autogressive: bool = False  # the package's spelling

    @classmethod
    def from_dict(cls, spec: dict | None) -> UniCLTextConfig:
        return cls(**dict(spec or {}))


class LayerNorm(nn.Module):
    """TF-style layer norm (epsilon inside the square root), computed in float32."""

    def __init__(self, hidden_size: int, eps: float = 1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.variance_epsilon)
        return self.weight * x.to(dtype) + self.bias


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model: int, n_head: int, attn_mask: torch.Tensor | None = None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d_model, d_model * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(d_model * 4, d_model))]))
        self.ln_2 = LayerNorm(d_model)
        self.attn_mask = attn_mask

    def forward(self, x, key_padding_mask=None):
        mask = None if self.attn_mask is None else self.attn_mask.to(dtype=x.dtype, device=x.device)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, key_padding_mask=key_padding_mask, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """The package's LangEncoder transformer (attribute names kept for the checkpoint's keys)."""

    def __init__(self, config: UniCLTextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.context_length = config.context_length
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.width))
        self.width = config.width
        self.autogressive = config.autogressive
        attn_mask = None
        if config.autogressive:
            attn_mask = torch.full((config.context_length, config.context_length), float("-inf")).triu_(1)
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(config.width, config.heads, attn_mask)
                                        for _ in range(config.layers)])
        self.ln_final = LayerNorm(config.width)
        nn.init.trunc_normal_(self.positional_embedding, std=0.02)
        nn.init.trunc_normal_(self.token_embedding.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, input_ids, attention_mask=None):
        key_padding_mask = (attention_mask == 0) if (not self.autogressive and attention_mask is not None) else None
        x = self.token_embedding(input_ids) + self.positional_embedding
        x = x.permute(1, 0, 2)  # NLD -> LND, as nn.MultiheadAttention expects
        for block in self.resblocks:
            x = block(x, key_padding_mask)
        return {"last_hidden_state": self.ln_final(x.permute(1, 0, 2))}


def encode_text(lang_encoder: Transformer, lang_projection: torch.Tensor, input_ids, attention_mask):
    """UniCLModel.encode_text(norm=True) with the CLIP tokenizer: the first end-of-text token's feature, projected."""
    x = lang_encoder(input_ids, attention_mask)["last_hidden_state"]
    x = x[torch.arange(x.size(0)), input_ids.argmax(dim=-1)] @ lang_projection
    return x / x.norm(dim=-1, keepdim=True)
