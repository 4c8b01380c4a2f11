"""What every PyTorch adapter shares: weights lookup, eval mode on a device, numpy in / pooled float32 numpy out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runner.encoders.base import Encoder, EncoderError, pool_tokens
from runner.encoders.text_towers import Tokenizer, find_tokenizer_files
from runner.encoders.weights import ResolvedWeights, load_state_dict, resolve_weights


class TorchEncoder(Encoder):
    """Subclasses build `self.model` in `build(weights)` and may override `forward(x)` (default: `self.model(x)`)."""

    framework = "torch"
    requires = ("torch",)
    NUMBER_PACKAGES = ("torch",)  # its kernels; a seeded random initialisation is drawn by torch's init code

    def __init__(self, card: dict, device: str = "cpu", weights_dir: Path | None = None):
        super().__init__(card, device=device, weights_dir=weights_dir)
        import torch

        self.weights = self.find_weights()
        # fork_rng: the card's `seed` alone fixes any random initialisation, and the global RNG stays untouched.
        with torch.random.fork_rng(devices=[]), torch.device("cpu"):
            torch.manual_seed(self.spec.seed)
            self.model = self.build(self.weights)
        self.model.eval().to(device)
        self._bf16 = self.spec.precision.bf16 and str(device).startswith("cuda")

    @property
    def random_weights(self) -> bool:
        """A random-weight control (card `weights: {random_init: true}`, top-level `seed`) loads no file."""
        return bool(self.spec.weights and self.spec.weights.random_init)

    def find_weights(self) -> ResolvedWeights | None:
        if self.random_weights or not (self.spec.weights and self.spec.weights.files):
            return None
        return resolve_weights(self.card, self.weights_dir)

    def build(self, weights: ResolvedWeights | None):
        raise NotImplementedError

    def load_weights(self, module, state: dict, strip_prefix: str = "", ignore: tuple[str, ...] = ()) -> None:
        """Load a state dict strictly (after removing `strip_prefix`), naming the keys that do not fit."""
        if strip_prefix:
            state = {k[len(strip_prefix):]: v for k, v in state.items() if k.startswith(strip_prefix)}
        result = module.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(ignore)] if ignore else result.missing_keys
        unexpected = [k for k in result.unexpected_keys if not k.startswith(ignore)] if ignore else result.unexpected_keys
        if missing or unexpected:
            raise EncoderError(
                f"weights for encoder {self.id!r} do not fit its architecture: "
                f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )

    def state_from(self, weights: ResolvedWeights, name: str | None = None) -> dict:
        return load_state_dict(weights.path(name))

    def forward(self, x):
        return self.model(x)

    def forward_text(self, ids, mask):
        """Token ids and attention mask -> (n, dim) text embeddings (adapters whose model has a text tower)."""
        raise EncoderError(f"encoder {self.id!r}: adapter {type(self).__name__} builds no text tower")

    def embed_text(self, prompts: list[str]) -> np.ndarray:
        """Prompts -> (n, dim) float32 text embeddings in the image embeddings' space (the card's `text` block). The
        tokenizer is found only now, so a card whose tokenizer files are missing still embeds images."""
        import torch

        if not self.has_text_tower:
            return super().embed_text(prompts)
        if getattr(self, "_tokenizer", None) is None:
            files = find_tokenizer_files(self.card, self.weights.root if self.weights else None, self.weights_dir)
            self._tokenizer = Tokenizer(self.card, files)
        tokens = self._tokenizer.tokenize(prompts)
        with torch.inference_mode():
            out = self.forward_text(torch.as_tensor(tokens.ids, device=self.device),
                                    torch.as_tensor(tokens.mask, device=self.device))
        out = out.float().cpu().numpy()
        if out.shape != (len(prompts), self.dim):
            raise EncoderError(f"encoder {self.id!r}: the text tower gave {out.shape} for {len(prompts)} prompts; the "
                               f"image embeddings are {self.dim}-d")
        return out.astype(np.float32, copy=False)

    def devices_used(self) -> dict[str, str]:
        return {"torch": torch_device_name(self.device)}

    def embed(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.ascontiguousarray(batch, dtype=np.float32), device=self.device)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self._bf16):
            out = self.forward(x)
        out = out.float().cpu().numpy()
        pooled = pool_tokens(out, self.spec.embedding.pooling)
        if pooled.ndim != 2 or pooled.shape[1] != self.dim:
            raise EncoderError(
                f"encoder {self.id!r} produced embeddings of shape {pooled.shape}; the card says dim {self.dim}"
            )
        return pooled.astype(np.float32, copy=False)


def torch_device_name(device: str) -> str:
    """"cuda:0 (NVIDIA H100 80GB HBM3)" for a CUDA device torch has, else the device as given ("cpu")."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)
