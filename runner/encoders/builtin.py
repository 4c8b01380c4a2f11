"""Built-in encoders that need no download: honest lower bounds for the leaderboard and the engine of `runner demo`.

- `pixels`: the downsampled image itself, flattened (what a classifier can do with no representation learning at all).
- `random-cnn`: a small convolutional network with seeded random weights, never trained (the classic random-features
  control: how much of a foundation model's score comes from architecture alone).
- `radiomics`: handcrafted intensity and texture statistics (histogram percentiles, region-grid means and contrasts,
  gradient energy, grey-level co-occurrence texture), the pre-deep-learning way of describing an image.

Each reads its size and other settings from its card (encoders/<id>.yaml); the card's `embedding.dim` must equal what the
encoder produces, so a card edit that changes the output cannot go unnoticed.
"""

from __future__ import annotations

import numpy as np

from runner.encoders.base import Encoder, EncoderError
from runner.encoders.torch_base import torch_device_name


def _check_dim(encoder: Encoder, produced: int) -> None:
    if produced != encoder.dim:
        raise EncoderError(
            f"encoder card {encoder.id!r}: embedding.dim is {encoder.dim} but this adapter produces {produced} "
            "values for the card's preprocess/parameters; set embedding.dim to " + str(produced)
        )


class PixelsEncoder(Encoder):
    """Raw intensities of the image resized per the card (e.g. 32x32x1 -> 1024-d)."""

    def __init__(self, card: dict, device: str = "cpu", weights_dir=None):
        super().__init__(card, device, weights_dir)
        size = int(self.contract.get("size", 32))
        _check_dim(self, size * size * int(self.contract.get("channels", 1)))

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch.reshape(batch.shape[0], -1), dtype=np.float32)


class RandomCNNEncoder(Encoder):
    """A seeded, randomly initialised CNN; features are last-layer activations averaged over a 2x2 region grid."""

    NUMBER_PACKAGES = ("torch",)  # the network and its seeded random weights are torch's

    WIDTHS = (16, 32, 64, 128)  # four stride-2 3x3 conv + ReLU layers
    GRID = 2
    framework = "torch"
    requires = ("torch",)

    def __init__(self, card: dict, device: str = "cpu", weights_dir=None):
        super().__init__(card, device, weights_dir)
        import torch

        widths = self.WIDTHS
        _check_dim(self, widths[-1] * self.GRID * self.GRID)
        self._torch = torch
        # fork_rng keeps the global torch RNG untouched; the card's seed alone fixes the weights on every machine.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(card.get("seed", 0)))
            layers: list[torch.nn.Module] = []
            in_ch = int(self.contract.get("channels", 1))
            for width in widths:
                layers += [
                    torch.nn.Conv2d(in_ch, width, kernel_size=3, stride=2, padding=1),
                    torch.nn.ReLU(),
                ]
                in_ch = width
            self.model = torch.nn.Sequential(*layers).eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._bf16 = bool(card.get("precision", {}).get("bf16", False)) and str(device).startswith("cuda")

    def embed(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self._bf16):
            maps = self.model(x).float()
        # Average over a 2x2 grid of regions rather than the whole image: chest findings are regional
        # (effusion at the bases, edema central), and global pooling would throw that away.
        pooled = torch.nn.functional.adaptive_avg_pool2d(maps, self.GRID).flatten(1)
        return pooled.cpu().numpy().astype(np.float32)

    def devices_used(self) -> dict[str, str]:
        return {"torch": torch_device_name(self.device)}


class RadiomicsEncoder(Encoder):
    """Handcrafted descriptor: global histogram, region-grid intensity/gradient statistics and GLCM texture.

    Layout (93 values with the defaults below):
      13 global intensity stats (mean, std, 9 percentiles, inter-quartile and 5-95 ranges)
      grid x grid region means, stds and mean gradient magnitudes (3 x 16)
      4 GLCM properties (contrast, homogeneity, energy, correlation) x 2 distances x 4 angles (32)
    """

    NUMBER_PACKAGES = ("scikit-image",)  # grey-level co-occurrence texture (graycomatrix, graycoprops)

    grid = 4  # regions per side
    levels = 32  # grey levels for the co-occurrence matrix

    PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
    GLCM_PROPS = ("contrast", "homogeneity", "energy", "correlation")
    GLCM_DISTANCES = (1, 4)
    GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)

    def __init__(self, card: dict, device: str = "cpu", weights_dir=None):
        super().__init__(card, device, weights_dir)
        n_glcm = len(self.GLCM_PROPS) * len(self.GLCM_DISTANCES) * len(self.GLCM_ANGLES)
        _check_dim(self, 2 + len(self.PERCENTILES) + 2 + 3 * self.grid * self.grid + n_glcm)

    def _describe(self, image: np.ndarray) -> np.ndarray:
        from skimage.feature import graycomatrix, graycoprops

        img = image.astype(np.float32)
        pct = np.percentile(img, self.PERCENTILES)
        # Spread measures that survive brightness shifts: inter-quartile and 5-95 ranges.
        global_stats = [img.mean(), img.std(), *pct, pct[5] - pct[3], pct[7] - pct[1]]
        gy, gx = np.gradient(img)
        grad = np.hypot(gx, gy)
        h, w = img.shape
        ys = np.linspace(0, h, self.grid + 1).astype(int)
        xs = np.linspace(0, w, self.grid + 1).astype(int)
        means, stds, grads = [], [], []
        for i in range(self.grid):
            for j in range(self.grid):
                region = img[ys[i] : ys[i + 1], xs[j] : xs[j + 1]]
                means.append(region.mean())
                stds.append(region.std())
                grads.append(grad[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].mean())
        quantised = np.clip((img * self.levels).astype(np.int64), 0, self.levels - 1).astype(np.uint8)
        glcm = graycomatrix(
            quantised, self.GLCM_DISTANCES, self.GLCM_ANGLES, levels=self.levels, symmetric=True, normed=True
        )
        texture = [graycoprops(glcm, prop).ravel() for prop in self.GLCM_PROPS]
        vec = np.concatenate([np.asarray(global_stats), means, stds, grads, *texture]).astype(np.float32)
        # A constant region gives correlation NaN in GLCM; 0 says "no linear dependence measurable".
        return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        # batch: (B, 1, H, W) in [0, 1] (card: channels 1, normalize none)
        return np.stack([self._describe(np.clip(item[0], 0.0, 1.0)) for item in batch])
