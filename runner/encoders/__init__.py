"""Encoder adapters. `load_encoder(card)` builds the adapter the card names (registry.plugins: the module is imported
only then, so heavy stacks such as TensorFlow or timm load only when a card asks for them)."""

from __future__ import annotations

from pathlib import Path

from registry import plugins
from registry.schemas import fill_defaults
from runner.encoders.base import (
    Encoder,
    EncoderError,
    LazyEncoder,
    WeightsNotFoundError,
    adapter_class,
    pool_tokens,
)


def _no_gpu_device_node() -> bool:
    """True on Linux when no NVIDIA (/dev/nvidia*) or ROCm (/dev/kfd) device node exists: CUDA cannot be available,
    so "auto" is "cpu" without importing torch (1-1.5 s and ~600 MB that a fully cached run never needs)."""
    import glob
    import sys

    return sys.platform.startswith("linux") and not (glob.glob("/dev/nvidia[0-9]*") or glob.glob("/dev/kfd"))


def resolve_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    if _no_gpu_device_node():
        return "cpu"
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def load_encoder(
    card: dict, device: str = "auto", trust_custom_code: bool = False, weights_dir: Path | None = None,
    lazy: bool = False,
) -> Encoder | LazyEncoder:
    """Build the encoder an encoder card describes; `weights_dir` (--weights-dir) is where its weight files are.

    lazy: return a LazyEncoder that builds the model (loads weights) only when something is embedded.
    """

    card = fill_defaults("encoder", dict(card))  # a card from the registry has them already: idempotent
    name = card["adapter"]
    if name == "custom" and not trust_custom_code:
        raise EncoderError(
            f"encoder {card['id']!r} runs custom code ({card.get('entrypoint', '?')}); "
            "re-run with --trust-custom-code if you trust it"
        )
    try:
        cls = plugins.load("adapter", name)
    except plugins.PluginError as exc:
        raise EncoderError(str(exc)) from exc
    # Only adapters with weight files take weights_dir; built-ins keep the plain (card, device) constructor.
    extra = {"weights_dir": Path(weights_dir)} if weights_dir is not None else {}
    device = resolve_device(device)
    if lazy:
        return LazyEncoder(cls, card, device, lambda: cls(card, device=device, **extra))
    return cls(card, device=device, **extra)


__all__ = [
    "Encoder",
    "EncoderError",
    "LazyEncoder",
    "WeightsNotFoundError",
    "adapter_class",
    "load_encoder",
    "pool_tokens",
    "resolve_device",
]
