"""The paper's five augmented views per image, used to probe representational stability (paper §2.2).

Two small rotations (±5–10°), two brightness shifts (±10–15 % of full scale, additive), one contrast scaling
(±10 % about the image mean). Signs and magnitudes are drawn from `seed`, so a view is a pure function of
(image, seed) and can be cached by key. Every view is clipped back to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AUG_IDS = ("rot1", "rot2", "bright1", "bright2", "contrast1")
ROTATION_DEGREES = (5.0, 10.0)
BRIGHTNESS_SHIFT = (0.10, 0.15)
CONTRAST_CHANGE = 0.10


@dataclass(frozen=True)
class AugmentedView:
    aug_id: str
    params: dict  # JSON-safe: plain floats and strings
    image: np.ndarray  # float32 HxW in [0, 1]


def augmented_views(image: np.ndarray, seed: int) -> list[AugmentedView]:
    """The five seeded views of a [0, 1] HxW image, in AUG_IDS order."""
    if image.ndim != 2:
        raise ValueError(f"augmented_views expects an HxW image, got shape {image.shape}")
    rng = np.random.default_rng(seed)
    image = np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)
    views = []
    for aug_id in AUG_IDS:
        sign = float(rng.choice([-1.0, 1.0]))
        if aug_id.startswith("rot"):
            angle = sign * float(rng.uniform(*ROTATION_DEGREES))
            params = {"kind": "rotation", "degrees": angle}
            out = _rotate(image, angle)
        elif aug_id.startswith("bright"):
            shift = sign * float(rng.uniform(*BRIGHTNESS_SHIFT))
            params = {"kind": "brightness", "shift": shift}
            out = image + shift
        else:
            factor = 1.0 + sign * CONTRAST_CHANGE
            params = {"kind": "contrast", "factor": factor}
            mean = float(image.mean())
            out = mean + factor * (image - mean)
        views.append(AugmentedView(aug_id, params, np.clip(out, 0.0, 1.0).astype(np.float32)))
    return views


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    from scipy import ndimage

    # Bilinear, same size; corners take the nearest edge value rather than an artificial black wedge.
    return ndimage.rotate(image, degrees, reshape=False, order=1, mode="nearest")
