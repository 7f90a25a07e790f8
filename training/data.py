"""Training batches: random patches of clean photos, degraded on the fly.

Why on the fly: every step sees a fresh degradation of a fresh crop, so a small photo
set does not get memorised. Photos are decoded once and kept in memory as uint8.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from training.degrade import add_heavy_rain, add_sparse_rain, degrade, maybe_compress, quantize8


def load_rgb(path: Path, downscale_over: int = 1600) -> np.ndarray:
    """Decode a photo to HWC uint8 RGB; halve (INTER_AREA) those with a long side over
    ``downscale_over``: the big JPEG wallpapers show 8x8 blocking at full size."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    if max(bgr.shape[:2]) > downscale_over:
        bgr = cv2.resize(bgr, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class PatchSampler:
    """Draws ``(degraded, target)`` batches of square patches for one task.

    Photos are picked with probability proportional to sqrt(area), so big photos give
    more patches without drowning the small ones. Crops get random flips and 90-degree
    rotations; motion blur gets a margin around the patch for the camera motion; a
    share ``codec`` of the degraded patches goes through an x264 round trip, and a share
    ``clean`` is left undegraded (footage with no rain or no blur must come out as it
    went in; a network that never saw such a patch sharpens or smooths it anyway); for
    derain a share ``heavy`` gets heavy rain (streak layers under an accumulation veil,
    ``training.degrade.heavy_rain``) and a share ``sparse`` the published sets' thin
    one-direction streaks (``add_sparse_rain``) instead of the light model; for denoise a
    share ``gaussian`` gets white Gaussian noise of a random sigma (5-55 in 8-bit units: the
    benchmarks' noise and every level a user may set) instead of camera noise. Crops
    are cut on the CPU; the degradation runs on ``device`` (the GPU when training there)
    with its own generator, so both streams are reproducible and resumable.
    """

    def __init__(
        self,
        photos: list[Path],
        task: str,
        patch: int,
        batch: int,
        seed: int = 0,
        downscale_over: int = 1600,
        blur_margin: int = 32,
        device: torch.device | str = "cpu",
        codec: float = 0.0,
        clean: float = 0.0,
        heavy: float = 0.0,
        sparse: float = 0.0,
        gaussian: float = 0.0,
    ) -> None:
        if not photos:
            raise ValueError("no training photos")
        self.images = [load_rgb(p, downscale_over) for p in photos]
        self.task, self.patch, self.batch, self.codec = task, patch, batch, codec
        if clean and task == "superres":
            raise ValueError("data.clean needs same-size pairs; superres has none")
        if heavy and task != "derain":
            raise ValueError("data.heavy is a share of heavy rain: derain only")
        if sparse and task != "derain":
            raise ValueError("data.sparse is a share of sparse rain: derain only")
        if heavy + sparse > 1:
            raise ValueError(f"data.heavy + data.sparse = {heavy + sparse}: at most 1")
        if gaussian and task != "denoise":
            raise ValueError("data.gaussian is a share of Gaussian noise: denoise only")
        self.clean, self.heavy, self.sparse, self.gaussian = clean, heavy, sparse, gaussian
        self.margin = blur_margin if task == "deblur" else 0
        area = torch.tensor([math.sqrt(im.shape[0] * im.shape[1]) for im in self.images])
        self.weights = area / area.sum()
        self.device = torch.device(device)
        self.gen = torch.Generator().manual_seed(seed)
        self.degrade_gen = torch.Generator(self.device).manual_seed(seed + 1)

    def _crop(self, image: np.ndarray, size: int) -> Tensor:
        h, w = image.shape[:2]
        if min(h, w) < size:  # upscale the rare photo smaller than a crop
            f = size / min(h, w)
            image = cv2.resize(image, (math.ceil(w * f), math.ceil(h * f)), cv2.INTER_CUBIC)
            h, w = image.shape[:2]
        top = int(torch.randint(0, h - size + 1, (1,), generator=self.gen))
        left = int(torch.randint(0, w - size + 1, (1,), generator=self.gen))
        crop = torch.from_numpy(image[top : top + size, left : left + size].copy())
        crop = crop.permute(2, 0, 1).float() / 255
        k = int(torch.randint(0, 4, (1,), generator=self.gen))
        if torch.rand(1, generator=self.gen) < 0.5:
            crop = crop.flip(-1)
        return torch.rot90(crop, k, dims=(-2, -1))

    def next(self) -> tuple[Tensor, Tensor]:
        """One batch ``(degraded, target)``, each ``(B, 3, patch, patch)`` on ``device``."""
        size = self.patch + 2 * self.margin
        idx = torch.multinomial(self.weights, self.batch, replacement=True, generator=self.gen)
        src = torch.stack([self._crop(self.images[int(i)], size) for i in idx])
        src = src.to(self.device, non_blocking=True)
        lq, gt = degrade(src, self.task, self.degrade_gen, (self.patch, self.patch))
        if self.heavy > 0 or self.sparse > 0:  # one draw splits the batch between the models
            u = torch.rand(len(lq), generator=self.degrade_gen, device=lq.device)
            pick = u < self.heavy
            if pick.any():
                lq[pick] = quantize8(add_heavy_rain(gt[pick], self.degrade_gen))
            pick = (u >= self.heavy) & (u < self.heavy + self.sparse)
            if pick.any():
                lq[pick] = quantize8(add_sparse_rain(gt[pick], self.degrade_gen))
        if self.gaussian > 0:
            n = len(lq)
            pick = torch.rand(n, generator=self.degrade_gen, device=lq.device) < self.gaussian
            sigma = (5 + 50 * torch.rand(n, generator=self.degrade_gen, device=lq.device)) / 255
            if pick.any():
                noisy = gt[pick] + sigma[pick, None, None, None] * torch.randn(
                    gt[pick].shape, generator=self.degrade_gen, device=lq.device
                )
                lq[pick] = quantize8(noisy)
        if self.clean > 0:  # footage with nothing to remove: the network must leave it be
            keep = torch.rand(len(lq), generator=self.degrade_gen, device=lq.device) < self.clean
            lq = torch.where(keep[:, None, None, None], quantize8(gt), lq)
        return maybe_compress(lq, self.degrade_gen, self.codec), gt

    def state_dict(self) -> dict[str, Tensor]:
        return {"gen": self.gen.get_state(), "degrade_gen": self.degrade_gen.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.gen.set_state(state["gen"])
        self.degrade_gen.set_state(state["degrade_gen"])
