"""DaViT (Dual-Attention Vision Transformer): MedImageInsight's image tower, inference only.

A clean port of `MedImageInsights/ImageEncoder/davit_v1.py` (PyPI medimageinsights 0.1.1, MIT), standard parameterisation,
with the training-only parts left out (drop path, gradient checkpointing, muP). Module and attribute names are kept
exactly as there, so the released checkpoint's `image_encoder.*` keys load without renaming. Alternating blocks:
window self-attention over spatial tokens, then "channel attention" (attention across channel groups, scaled by the
number of tokens), each preceded by a depth-wise 3x3 conv as positional encoding.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DaViTConfig:
    """Defaults are MedImageInsight's config v20240927 (IMAGE_ENCODER.SPEC): 360.6 M parameters."""

    embed_dims: tuple[int, ...] = (256, 512, 1024, 2048)
    depths: tuple[int, ...] = (1, 1, 9, 1)
    num_heads: tuple[int, ...] = (8, 16, 32, 64)
    num_groups: tuple[int, ...] = (8, 16, 32, 64)
    patch_size: tuple[int, ...] = (7, 3, 3, 3)
    patch_stride: tuple[int, ...] = (4, 2, 2, 2)
    patch_padding: tuple[int, ...] = (3, 1, 1, 1)
    patch_prenorm: tuple[bool, ...] = (False, True, True, True)
    window_size: int = 12
    mlp_ratio: float = 4.0
    in_chans: int = 3

    @classmethod
    def from_dict(cls, spec: dict | None) -> DaViTConfig:
        spec = dict(spec or {})
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})


class MySequential(nn.Sequential):
    """nn.Sequential whose modules take and return (x, size) tuples."""

    def forward(self, *inputs):
        for module in self._modules.values():
            inputs = module(*inputs)
        return inputs


class PreNorm(nn.Module):
    def __init__(self, norm, fn):
        super().__init__()
        self.norm = norm
        self.fn = fn

    def forward(self, x, size):
        out, size = self.fn(self.norm(x) if self.norm is not None else x, size)
        return x + out, size


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(OrderedDict([("fc1", nn.Linear(dim, hidden)), ("act", nn.GELU()), ("fc2", nn.Linear(hidden, dim))]))

    def forward(self, x, size):
        return self.net(x), size


class DepthWiseConv2d(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim, stride=1)

    def forward(self, x, size):
        b, _, c = x.shape
        x = self.dw(x.transpose(1, 2).reshape(b, c, *size))
        return x.flatten(2).transpose(1, 2), (x.size(-2), x.size(-1))


class ConvEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, embed_dim, stride, padding, pre_norm):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(in_chans if pre_norm else embed_dim)
        self.pre_norm = pre_norm

    def forward(self, x, size):
        if x.dim() == 3:  # tokens from the previous stage
            if self.pre_norm:
                x = self.norm(x)
            x = x.transpose(1, 2).reshape(x.size(0), x.size(2), *size)
        x = self.proj(x)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        if not self.pre_norm:
            x = self.norm(x)
        return x, (h, w)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int):
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = float(dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, size):
        h, w = size
        b, _, c = x.shape
        ws = self.window_size
        x = x.view(b, h, w, c)
        pad_r, pad_b = (ws - w % ws) % ws, (ws - h % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        windows = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        bw, n, _ = windows.shape
        q, k, v = self.qkv(windows).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))
        out = out.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        return out[:, :h, :w, :].reshape(b, h * w, c), size


class ChannelAttention(nn.Module):
    def __init__(self, dim: int, groups: int):
        super().__init__()
        self.groups = groups
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, size):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.groups, c // self.groups).permute(2, 0, 3, 1, 4)
        attn = ((q * n**-0.5).transpose(-1, -2) @ k).softmax(dim=-1)  # "dynamic scale": by token count
        out = (attn @ v.transpose(-1, -2)).transpose(-1, -2).transpose(1, 2).reshape(b, n, c)
        return self.proj(out), size


class SpatialBlock(nn.Module):
    def __init__(self, dim, num_heads, window_size, mlp_ratio):
        super().__init__()
        self.conv1 = PreNorm(None, DepthWiseConv2d(dim))
        self.window_attn = PreNorm(nn.LayerNorm(dim), WindowAttention(dim, num_heads, window_size))
        self.conv2 = PreNorm(None, DepthWiseConv2d(dim))
        self.ffn = PreNorm(nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio)))

    def forward(self, x, size):
        for layer in (self.conv1, self.window_attn, self.conv2, self.ffn):
            x, size = layer(x, size)
        return x, size


class ChannelBlock(nn.Module):
    def __init__(self, dim, groups, mlp_ratio):
        super().__init__()
        self.conv1 = PreNorm(None, DepthWiseConv2d(dim))
        self.channel_attn = PreNorm(nn.LayerNorm(dim), ChannelAttention(dim, groups))
        self.conv2 = PreNorm(None, DepthWiseConv2d(dim))
        self.ffn = PreNorm(nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio)))

    def forward(self, x, size):
        for layer in (self.conv1, self.channel_attn, self.conv2, self.ffn):
            x, size = layer(x, size)
        return x, size


class DaViT(nn.Module):
    """Image (B, 3, H, W) -> pooled, layer-normed features (B, embed_dims[-1])."""

    def __init__(self, cfg: DaViTConfig = DaViTConfig()):
        super().__init__()
        dims = cfg.embed_dims
        self.convs = nn.ModuleList(
            ConvEmbed(cfg.patch_size[i], cfg.in_chans if i == 0 else dims[i - 1], dims[i], cfg.patch_stride[i],
                      cfg.patch_padding[i], cfg.patch_prenorm[i])
            for i in range(len(dims))
        )
        self.blocks = nn.ModuleList(
            MySequential(*[
                MySequential(OrderedDict([
                    ("spatial_block", SpatialBlock(dims[i], cfg.num_heads[i], cfg.window_size, cfg.mlp_ratio)),
                    ("channel_block", ChannelBlock(dims[i], cfg.num_groups[i], cfg.mlp_ratio)),
                ]))
                for _ in range(cfg.depths[i])
            ])
            for i in range(len(dims))
        )
        self.norms = nn.LayerNorm(dims[-1])
        self.dim_out = dims[-1]
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.size(2), x.size(3))
        for conv, block in zip(self.convs, self.blocks):
            x, size = conv(x, size)
            x, size = block(x, size)
        return self.norms(x.mean(dim=1))

    forward = forward_features


def _init_weights(m: nn.Module) -> None:
    # The package's "original init" (matters only for random-weight controls).
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# Older checkpoints name modules differently; the package renames these substrings (davit_v1._try_remap_keys).
_LEGACY_KEY_PARTS = {
    "conv_embeds": "convs", "main_blocks": "blocks",
    "0.cpe.0.proj": "spatial_block.conv1.fn.dw", "0.attn": "spatial_block.window_attn.fn",
    "0.cpe.1.proj": "spatial_block.conv2.fn.dw", "0.mlp": "spatial_block.ffn.fn.net",
    "1.cpe.0.proj": "channel_block.conv1.fn.dw", "1.attn": "channel_block.channel_attn.fn",
    "1.cpe.1.proj": "channel_block.conv2.fn.dw", "1.mlp": "channel_block.ffn.fn.net",
    "0.norm1": "spatial_block.window_attn.norm", "0.norm2": "spatial_block.ffn.norm",
    "1.norm1": "channel_block.channel_attn.norm", "1.norm2": "channel_block.ffn.norm",
}


def remap_davit_key(key: str) -> str:
    for old, new in _LEGACY_KEY_PARTS.items():
        if old in key:
            key = key.replace(old, new)
    return key
