"""Encoder adapters. `load_encoder(card)` builds the adapter the card names, importing its module only then."""

from __future__ import annotations

import importlib
from pathlib import Path

from runner.encoders.base import (
    Encoder,
    EncoderError,
    LazyEncoder,
    WeightsNotFoundError,
    adapter_class,
    pool_tokens,
    register_adapter,
    registered_adapters,
)

# adapter name (the card's `adapter:`) -> module that registers it. Heavy stacks import only when used.
ADAPTER_MODULES: dict[str, str] = {
    "pixels": "runner.encoders.builtin",
    "random-cnn": "runner.encoders.builtin",
    "radiomics": "runner.encoders.builtin",
    "cxr-foundation": "runner.encoders.cxr_foundation",
    "medimageinsight": "runner.encoders.medimageinsight",
    "torchxrayvision": "runner.encoders.community",
    "hf-transformers": "runner.encoders.community",
    "open-clip": "runner.encoders.community",
    "timm": "runner.encoders.community",
    "custom": "runner.encoders.custom",
    "metadata": "runner.encoders.metadata",  # the no-pixels shortcut baseline (runner.evaluate feeds it the manifest)
}


def resolve_device(device: str = "auto") -> str:
    if device != "auto":
        return device
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
    name = card["adapter"]
    if name == "custom" and not trust_custom_code:
        raise EncoderError(
            f"encoder {card['id']!r} runs custom code ({card.get('entrypoint', '?')}); "
            "re-run with --trust-custom-code if you trust it"
        )
    module = ADAPTER_MODULES.get(name)
    if module is None:
        raise EncoderError(f"unknown adapter {name!r}; known: {', '.join(sorted(ADAPTER_MODULES))}")
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise EncoderError(
            f"adapter {name!r} needs a package that is not installed ({exc.name or exc}); "
            "install the project's extra for it (see README, 'Optional stacks')"
        ) from exc
    # Only adapters with weight files take weights_dir; built-ins keep the plain (card, device) constructor.
    extra = {"weights_dir": Path(weights_dir)} if weights_dir is not None else {}
    cls, device = registered_adapters()[name], resolve_device(device)
    if lazy:
        return LazyEncoder(cls, card, device, lambda: cls(card, device=device, **extra))
    return cls(card, device=device, **extra)


__all__ = [
    "ADAPTER_MODULES",
    "Encoder",
    "EncoderError",
    "LazyEncoder",
    "WeightsNotFoundError",
    "adapter_class",
    "load_encoder",
    "pool_tokens",
    "register_adapter",
    "resolve_device",
]
