"""The seeded augmented views of an image, as the task card's `augmentations` block lists them (paper §2.2).

The paper's five (tasks/_defaults.yaml): two small rotations (±5–10°), two brightness shifts (±10–15 % of full scale,
additive), one contrast scaling (±10 % about the image mean). Each card view is `{op, min, max, signed}`: the
magnitude is drawn uniformly in [min, max] and, when `signed`, its sign at random. Draws come from `seed`, so a view is
a pure function of (image, card, seed) and can be cached by key. Every view is clipped back to [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from registry.hashing import sha256_of
from registry.specs import AugmentationsSpec

# Short id prefix of each op; the n-th view of an op is `<prefix><n>` (rot1, rot2, bright1, bright2, contrast1).
OP_PREFIX = {"rotate": "rot", "brightness": "bright", "contrast": "contrast"}


@dataclass(frozen=True)
class AugmentedView:
    aug_id: str
    params: dict  # JSON-safe: plain floats and strings
    image: np.ndarray  # float32 HxW in [0, 1]


def view_ids(spec: AugmentationsSpec) -> tuple[str, ...]:
    """The ids of the card's views, in card order."""
    counts: dict[str, int] = {}
    ids = []
    for view in spec.views:
        prefix = OP_PREFIX[view.op]
        counts[prefix] = counts.get(prefix, 0) + 1
        ids.append(f"{prefix}{counts[prefix]}")
    return tuple(ids)


def settings_tag(spec: AugmentationsSpec | None) -> str:
    """What changes a view's pixels, folded into its cache key: every op, range and sign flag (the per-image seed
    is derived from spec.seed and the image path by the caller)."""
    if spec is None:
        return ""

    return "aug=" + sha256_of(asdict(spec))[:16]


def augmented_views(image: np.ndarray, spec: AugmentationsSpec, seed: int) -> list[AugmentedView]:
    """The card's seeded views of a [0, 1] HxW image, in card order."""
    if image.ndim != 2:
        raise ValueError(f"augmented_views expects an HxW image, got shape {image.shape}")
    rng = np.random.default_rng(seed)
    image = np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)
    views = []
    for aug_id, view in zip(view_ids(spec), spec.views):
        sign = float(rng.choice([-1.0, 1.0])) if view.signed else 1.0
        # A fixed magnitude (min == max) draws nothing, so adding it never shifts the other views' draws.
        magnitude = view.min if view.min == view.max else float(rng.uniform(view.min, view.max))
        if view.op == "rotate":
            params = {"kind": "rotation", "degrees": sign * magnitude}
            out = _rotate(image, sign * magnitude)
        elif view.op == "brightness":
            params = {"kind": "brightness", "shift": sign * magnitude}
            out = image + sign * magnitude
        else:
            factor = 1.0 + sign * magnitude
            params = {"kind": "contrast", "factor": factor}
            mean = float(image.mean())
            out = mean + factor * (image - mean)
        views.append(AugmentedView(aug_id, params, np.clip(out, 0.0, 1.0).astype(np.float32)))
    return views


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    from scipy import ndimage

    # Bilinear, same size; corners take the nearest edge value rather than an artificial black wedge.
    return ndimage.rotate(image, degrees, reshape=False, order=1, mode="nearest")
