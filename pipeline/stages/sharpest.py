"""Lucky-frame fusion: each pixel from the sharpest of its aligned neighbours.

A hand-held camera blurs some exposures and not others, in different directions; the
sharp neighbour of a blurred frame holds the detail no single-frame deblurrer can
recover. The centre has weight 1; an aligned neighbour that is sharper as a whole is
weighted per pixel by the excess of its local detail (smoothed squared Laplacian) over
the centre's, raised to a power, times its agreement with the centre on blur-blind
content (both low-passed), so a misaligned neighbour or a moving part falls back to the
centre rather than ghosting, and a sharp centre keeps its own pixels. Used by the
``temporal`` stage when its ``sharpness`` exponent is above 0. The constants were set on
clips of training photos (``training.pipeline_eval --task shake`` footage).
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.stages.alignment import luma

#: Gaussian sigma (px) of the low-pass the agreement test compares: wider than most blur.
_LOW_SIGMA = 8.0
#: Gaussian sigma (px) over which local detail is measured: weights change smoothly.
_DETAIL_SIGMA = 6.0
#: Agreement: low-passed difference (8-bit-normalised) at which a neighbour's weight is 0.
_AGREE = 30.0 / 255
#: A neighbour's weight is (its detail / the centre's - _MARGIN) ** power where positive.
_MARGIN = 1.0
#: A neighbour takes part only if its median detail is this many times the centre's.
_GATE = 1.3
#: Detail floor (keeps flat regions an even blend rather than a noise-driven pick).
_DETAIL_FLOOR = 1e-5


def _detail(grey: np.ndarray) -> np.ndarray:
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    return cv2.GaussianBlur(lap * lap, (0, 0), _DETAIL_SIGMA) + _DETAIL_FLOOR


def fuse_sharpest(
    centre: np.ndarray, aligned: list[np.ndarray], valid: list[np.ndarray], power: float
) -> np.ndarray:
    """Detail-weighted mean of ``centre`` and its ``aligned`` neighbours (HW3 float32;
    ``valid``: where each alignment holds). ``power`` sharpens the pick: 1 blends by
    detail, 4 and up takes nearly the sharpest frame at every pixel."""
    cg = luma(centre)
    low_c = cv2.GaussianBlur(cg, (0, 0), _LOW_SIGMA)
    d_c = _detail(cg)
    num = centre.copy()
    den = np.ones_like(cg)
    for frame, ok in zip(aligned, valid, strict=True):
        g = luma(frame)
        d_g = _detail(g)
        if not ok.any() or np.median(d_g[ok]) < _GATE * np.median(d_c[ok]):
            continue  # no sharper as a whole: a sharp centre keeps its own detail
        miss = np.abs(cv2.GaussianBlur(g, (0, 0), _LOW_SIGMA) - low_c) / _AGREE
        agree = np.square(np.clip(1 - miss * miss, 0, None)) * ok
        gain = np.clip(d_g / d_c - _MARGIN, 0, None)
        wgt = agree * gain**power  # the centre's weight is 1
        num += frame * wgt[..., None]
        den += wgt
    return (num / den[..., None]).astype(np.float32)
