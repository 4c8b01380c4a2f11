"""Which backend computes the embeddings a run still needs (`plan_embedding`, the one place it is chosen), and
how many decode workers it gets by default (`default_workers`). One vocabulary, from `runner eval --backend` to the
result's throughput line:
  auto    the device backend on CUDA (the CPU would starve the GPU), the CPU backend elsewhere
  cpu     decode + prepare in worker processes, embed in batches (runner.embed.cpu_pool)
  device  read on CPU workers, preprocess + forward on the encoder's device (runner.embed.device)
  ray     a Ray Data actor pool (runner.embed.ray_pool); each actor runs the device or the CPU preparation
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.specs import AugmentationsSpec
from runner.encoders.base import Encoder
from runner.runtime.workers import available_cores

BACKENDS = ("auto", "cpu", "device", "ray")


@dataclass(frozen=True)
class EmbedPlan:
    """Which backend computes the embeddings a run still needs, and why."""

    backend: str  # cpu | device | ray
    actor_backend: str  # what computes inside the backend: cpu | device (for ray: what each actor runs)
    reason: str


def supports_device_preprocessing(encoder_cls: type[Encoder]) -> bool:
    """The device path reproduces the card's preprocessing contract; adapters with their own `prepare` (PNG bytes
    for CXR Foundation, ...) keep theirs. Decided from the adapter class, so a lazily built encoder counts too."""
    return encoder_cls.prepare is Encoder.prepare


def plan_embedding(encoder_cls: type[Encoder], device: str, backend: str = "auto",
                   augment: AugmentationsSpec | None = None) -> EmbedPlan:
    """The one place the backend is chosen (see the module docstring). Augmented views are drawn on the CPU image,
    so they always take the CPU backend; adapters that prepare their own inputs (PNG bytes for CXR Foundation) never
    take the device path."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    on_cuda = str(device).startswith("cuda")
    fits_device = supports_device_preprocessing(encoder_cls)
    if augment is not None:
        return EmbedPlan("cpu", "cpu", "augmented views are drawn on the CPU image")
    if backend == "ray":
        return EmbedPlan("ray", "device" if on_cuda and fits_device else "cpu", "--backend ray")
    if backend == "device" or (backend == "auto" and on_cuda):
        if fits_device:
            return EmbedPlan("device", "device", f"preprocessing on {device}")
        return EmbedPlan("cpu", "cpu", f"{encoder_cls.__name__} prepares its own inputs")
    return EmbedPlan("cpu", "cpu", "CPU backend")


def default_workers(plan: EmbedPlan, cores: int | None = None) -> int:
    """Decode processes when the user names none (the one place this default lives).

    Device path: every core but two (the main process feeds the GPU and a pin/copy thread runs beside it), at least 1:
    a 1024² PNG costs ~5 ms of CPU to decode, so two readers would cap a GPU near 400 img/s. CPU backend: one per core
    (the main process mostly waits on them while the encoder's own threads run)."""
    cores = available_cores() if cores is None else cores
    if plan.actor_backend == "device":
        return max(cores - 2, 1)
    return cores
