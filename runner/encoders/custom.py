"""Custom encoders: the card's `entrypoint: "package.module:factory"` builds the model (runs only with --trust-custom-code,
which load_encoder enforces before this module is imported).

`factory(card: dict, device: str, weights: ResolvedWeights | None)` returns either a torch.nn.Module (called on the
float32 batch as a tensor) or any callable taking the numpy batch; its output, (B, D) or tokens (B, T, D), is pooled as the
card says. Weight files the card lists are found and sha256-checked by runner.encoders.weights before the factory runs.
"""

from __future__ import annotations

import importlib

import numpy as np

from runner.encoders.base import EncoderError
from runner.encoders.torch_base import TorchEncoder


def resolve_entrypoint(entrypoint: str):
    module_name, sep, attr = str(entrypoint).partition(":")
    if not sep or not module_name or not attr:
        raise EncoderError(f"entrypoint {entrypoint!r} must look like 'package.module:callable'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise EncoderError(f"cannot import {module_name!r} for entrypoint {entrypoint!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise EncoderError(f"{module_name!r} has no attribute {attr!r} (entrypoint {entrypoint!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise EncoderError(f"entrypoint {entrypoint!r} is not callable")
    return obj


class _NumpyModel:
    """Wraps a plain callable so TorchEncoder can treat it like a module."""

    def __init__(self, fn):
        self.fn = fn

    def eval(self):
        return self

    def to(self, device):
        return self

    def __call__(self, x):
        import torch

        return torch.as_tensor(np.asarray(self.fn(x.cpu().numpy()), dtype=np.float32))


class CustomEncoder(TorchEncoder):
    def build(self, weights):
        import torch

        factory = resolve_entrypoint(self.card.get("entrypoint", ""))
        model = factory(self.card, self.device, weights)
        return model if isinstance(model, torch.nn.Module) else _NumpyModel(model)
