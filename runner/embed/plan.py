"""Which backend computes the embeddings a run still needs (`plan_embedding`, the one place it is chosen), and
how many decode workers it gets by default (`default_workers`):
  cpu-pool  decode + prepare in worker processes, embed in batches (runner.embed.cpu_pool)
  device    read on CPU workers, preprocess + forward on the encoder's device (runner.embed.device; automatic on CUDA)
  ray       a Ray Data actor pool (runner.embed.ray_pool; `--backend ray`)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from registry.specs import AugmentationsSpec
from runner.encoders.base import Encoder

PIPELINES = ("auto", "cpu", "fast")

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class EmbedPlan:
    """Which backend computes the embeddings a run still needs, and why."""

    backend: str  # cpu-pool | device | ray
    actor_pipeline: str  # ray only: what each actor runs (cpu | fast)
    reason: str


def supports_device_preprocessing(encoder_cls: type[Encoder]) -> bool:
    """The device path reproduces the card's preprocessing contract; adapters with their own `prepare` (PNG bytes
    for CXR Foundation, ...) keep theirs. Decided from the adapter class, so a lazily built encoder counts too."""
    return encoder_cls.prepare is Encoder.prepare


def plan_embedding(encoder_cls: type[Encoder], device: str, pipeline: str = "auto", backend: str = "local",
                   augment: AugmentationsSpec | None = None) -> EmbedPlan:
    """The one place the backend is chosen. `pipeline` auto -> the device path on CUDA (the CPU would starve the GPU),
    the CPU pool elsewhere; augmented views are drawn on the CPU image, so they always take the CPU pool."""
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline {pipeline!r}; expected one of {', '.join(PIPELINES)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    wanted = ("fast" if str(device).startswith("cuda") else "cpu") if pipeline == "auto" else pipeline
    fits_device = supports_device_preprocessing(encoder_cls)
    if augment is not None:
        return EmbedPlan("cpu-pool", "cpu", "augmented views are drawn on the CPU image")
    if backend == "ray":
        return EmbedPlan("ray", wanted if fits_device else "cpu", "--backend ray")
    if wanted == "fast" and fits_device:
        return EmbedPlan("device", "fast", f"preprocessing on {device}")
    if wanted == "fast":
        return EmbedPlan("cpu-pool", "cpu", f"{encoder_cls.__name__} prepares its own inputs")
    return EmbedPlan("cpu-pool", "cpu", "CPU pipeline")


def available_cores() -> int:
    """CPU cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def default_workers(plan: EmbedPlan, cores: int | None = None) -> int:
    """Decode processes when the user names none (the one place this default lives).

    Device path: every core but two (the main process feeds the GPU and a pin/copy thread runs beside it), at least 1:
    a 1024² PNG costs ~5 ms of CPU to decode, so two readers would cap a GPU near 400 img/s. CPU pool: one per core
    (the main process mostly waits on them while the encoder's own threads run)."""
    cores = available_cores() if cores is None else cores
    if plan.backend == "device" or plan.actor_pipeline == "fast":
        return max(cores - 2, 1)
    return cores
