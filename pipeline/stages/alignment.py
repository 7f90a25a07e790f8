"""Frame alignment for the ``temporal`` stage: DIS flow both ways, its forward-backward
consistency, the dominant (camera) motion, and the choice between them per pixel. Why
DIS and why a dominant motion beside it, with the measurements: :mod:`pipeline.stages.temporal`.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

#: Side of the grey opening applied to the frames the flow sees (removes thin streaks).
_FLOW_OPEN = 3
#: Frames are warped bicubically: a bilinear warp by a fraction of a pixel softens fine
#: detail, and the fused frame with it (session 10, net + temporal on clips of training
#: photos: dry footage -3.04 -> -2.18 dB against the encoder alone, rain +10.10 -> +10.45).
#: Flow fields and the grey frames the checks compare stay bilinear (smooth; cheaper).
FRAME_INTERP = cv2.INTER_CUBIC
#: Dominant-motion fit: vectors every _FIT_STEP px or more (at most about _FIT_POINTS of
#: them: RANSAC's cost grows with their number), RANSAC tolerance (px), least inlier share.
_FIT_STEP, _FIT_POINTS, _FIT_TOL, _FIT_SHARE = 4, 8000, 1.0, 0.3
#: Dominant motion taken: box side, dense flow within px of it, mismatch x the typical.
_PICK_BOX, _PICK_DEV, _PICK_MISS = 7, 2.0, 5.0


def luma(frame: np.ndarray) -> np.ndarray:
    """HWC float RGB -> HW float BT.601 luma."""
    return frame @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def flow_grey(frame: np.ndarray, scale: float) -> np.ndarray:
    """HWC float RGB -> uint8 grey at ``scale`` (what DIS takes)."""
    grey = luma(frame)
    if scale != 1:
        size = (max(8, round(frame.shape[1] * scale)), max(8, round(frame.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    # Grey opening: thin bright streaks (rain, snow) vanish from what the flow sees, so
    # they neither drag the flow nor fail its consistency check where they fall.
    grey = cv2.morphologyEx(grey, cv2.MORPH_OPEN, np.ones((_FLOW_OPEN, _FLOW_OPEN), np.uint8))
    return np.clip(grey * 255 + 0.5, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates (read-only, shared: every pair of a clip asks for them)."""
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def warp(
    img: np.ndarray,
    flow: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray],
    interp: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """``img`` sampled at x + flow(x) (``interp``, bilinear by default; edges repeated)."""
    mx, my = grid[0] + flow[..., 0], grid[1] + flow[..., 1]
    return cv2.remap(img, mx, my, interp, borderMode=cv2.BORDER_REPLICATE)


def _global_flow(flow: np.ndarray, ok: np.ndarray) -> np.ndarray | None:
    """The dominant (camera) motion in ``flow``: a homography fitted to its consistent
    vectors by RANSAC, as a flow field; None where too few vectors agree. Dense flow on
    rainy or noisy frames wanders by a fraction of a pixel, and each bilinear warp by a
    fraction blurs; one motion for the whole frame averages that away."""
    h, w = flow.shape[:2]
    gx, gy = pixel_grid(h, w)
    step = max(_FIT_STEP, round(math.sqrt(h * w / _FIT_POINTS)))
    sel = ok[::step, ::step]
    if sel.sum() < 16:
        return None
    src = np.stack([gx[::step, ::step][sel], gy[::step, ::step][sel]], -1)
    dst = src + flow[::step, ::step][sel]
    hom, inl = cv2.findHomography(src, dst, cv2.RANSAC, _FIT_TOL)
    if hom is None or inl.mean() < _FIT_SHARE:
        return None
    pts = cv2.perspectiveTransform(np.stack([gx, gy], -1).reshape(1, -1, 2), hom)
    return (pts.reshape(h, w, 2) - np.stack([gx, gy], -1)).astype(np.float32)


def _norm2(v: np.ndarray) -> np.ndarray:
    """Squared length of HW2 vectors (numpy's sum over a 2-long axis is several times slower)."""
    return v[..., 0] ** 2 + v[..., 1] ** 2


class FlowPair:
    """Flow between two frames both ways, where each direction is consistent, and the
    dominant motion both ways if asked (None where the frame has none)."""

    def __init__(self, fwd: np.ndarray, bwd: np.ndarray, dominant: bool = False) -> None:
        grid = pixel_grid(*fwd.shape[:2])
        self.fwd, self.bwd = fwd, bwd
        self.ok_fwd = self._consistent(fwd, bwd, grid)  # valid pixels of a (a -> b)
        self.ok_bwd = self._consistent(bwd, fwd, grid)  # valid pixels of b (b -> a)
        self.glob_fwd = _global_flow(fwd, self.ok_fwd) if dominant else None
        self.glob_bwd = _global_flow(bwd, self.ok_bwd) if dominant else None

    def cut_score(self, a: np.ndarray, b: np.ndarray) -> float:
        """Share of a's pixels that neither track consistently nor match in brightness
        after alignment: near 0 within a shot, near 1 across a cut."""
        aligned = warp(b.astype(np.float32), self.fwd, pixel_grid(*a.shape))
        diff = np.abs(aligned - a.astype(np.float32)) / 255
        return float(np.mean(~self.ok_fwd | (diff > 0.1)))

    @staticmethod
    def _consistent(
        f: np.ndarray, g: np.ndarray, grid: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Forward-backward check (Sundaram et al. 2010): following f then g returns home."""
        h, w = f.shape[:2]
        gw = warp(g, f, grid)
        err = _norm2(f + gw)
        bound = 0.01 * (_norm2(f) + _norm2(gw)) + 0.5
        mx, my = grid[0] + f[..., 0], grid[1] + f[..., 1]
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        return (err < bound) & inside


def pick_alignment(
    greys: tuple[np.ndarray, np.ndarray],
    dense: tuple[np.ndarray, np.ndarray],
    moved: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The flow to warp the neighbour by, and where it is valid: the dominant motion
    wherever the dense flow, averaged over a box, is within _PICK_DEV px of it (the dense
    flow's wander on rain and noise), else the dense flow. ``greys``: the centre and the
    neighbour as the flow saw them; ``dense``: flow and its consistent pixels; ``moved``:
    the dominant motion as a flow. A moving object's flow departs from the camera's and
    keeps the dense flow and its checks. Where the dense flow failed its check, the
    dominant motion stands in only if it matches (box mean) within _PICK_MISS times its
    typical mismatch over the frame (plus one code value, for clean footage): an object
    too fast for the flow leaves the flow near the camera's but does not match. One warp
    by the merged flow gives each pixel what a warp by its chosen flow would."""
    flow, ok = dense
    h, w = ok.shape
    mx, my = grid[0] + moved[..., 0], grid[1] + moved[..., 1]
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    dev = cv2.blur(np.hypot(*(flow - moved).transpose(2, 0, 1)), (_PICK_BOX, _PICK_BOX))
    gk, gj = (g.astype(np.float32) for g in greys)
    miss = cv2.blur(np.abs(warp(gj, moved, grid) - gk), (_PICK_BOX, _PICK_BOX))
    typical = float(np.median(miss[inside])) if inside.any() else 0.0
    use = inside & (dev < _PICK_DEV) & (ok | (miss <= _PICK_MISS * typical + 1))
    return np.where(use[..., None], moved, flow), np.where(use, inside, ok)
