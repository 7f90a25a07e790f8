"""Lucky-frame fusion (``temporal`` stage, ``sharpness`` > 0): a blurred frame takes its
detail from sharper aligned neighbours; a sharp frame, a moving part and a failed
alignment keep their own pixels."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from pipeline.stages.sharpest import fuse_sharpest
from tests.test_temporal import clip, psnr, stage, to_t


def shaken(frame: np.ndarray, length: int) -> np.ndarray:
    """A horizontal motion blur ``length`` px long (a hand moving during the exposure)."""
    kernel = np.full((1, length), 1 / length, np.float32)
    return cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT)


def test_blurred_frames_take_detail_from_sharp_neighbours() -> None:
    clean = clip(7, pan=2.0)
    deg = clean.copy()
    for k in (1, 3, 5):
        deg[k] = shaken(clean[k], 11)
    out = stage(radius=2, sharpness=6).process(to_t(deg))
    c, d = to_t(clean), to_t(deg)
    for k in (1, 3, 5):
        assert psnr(out[k], c[k]) > psnr(d[k], c[k]) + 4, k
    for k in (0, 2, 4, 6):  # no neighbour is sharper: the frame is left as it is
        assert torch.equal(out[k], d[k]), k


def test_strength_scales_the_change() -> None:
    clean = clip(5)
    deg = clean.copy()
    deg[2] = shaken(clean[2], 11)
    full = stage(radius=2, sharpness=6).process(to_t(deg))[2]
    half = stage(radius=2, sharpness=6, strength=0.5).process(to_t(deg))[2]
    assert torch.allclose(half, (to_t(deg)[2] + full) / 2, atol=1e-5)
    assert psnr(full, to_t(clean)[2]) > psnr(to_t(deg)[2], to_t(clean)[2]) + 4


def test_a_part_that_does_not_match_keeps_the_centre() -> None:
    """A neighbour that is sharper but shows something else in a region (an object the
    alignment did not follow) gives nothing there; a neighbour marked invalid gives
    nothing anywhere."""
    sharp = clip(1)[0]
    centre = shaken(sharp, 11)
    other = sharp.copy()
    other[20:60, 30:80] = np.clip(other[20:60, 30:80] + 0.4, 0, 1)  # something brighter there
    ok = np.ones(sharp.shape[:2], bool)
    out = fuse_sharpest(centre, [other], [ok], 6.0)
    box = (slice(24, 56), slice(34, 76))
    assert np.abs(out[box] - centre[box]).max() < 0.02
    assert psnr(out[70:], sharp[70:]) > psnr(centre[70:], sharp[70:]) + 4
    ignored = fuse_sharpest(centre, [sharp], [np.zeros_like(ok)], 6.0)
    assert np.array_equal(ignored, centre)
