"""The ``temporal`` stage: flow-aligned, outlier-rejecting fusion of a window of frames.

Frame k is fused from frames k-r .. k+r (``radius`` r). Each neighbour is aligned to
frame k by dense optical flow, checked for occlusion (forward-backward consistency),
compared with a robust per-pixel consensus of the window, and averaged with a weight
that falls to zero where it disagrees: moving parts that the flow did not follow,
occlusions, rain streaks, flashes. A scene cut between two frames, decided from those
two frames alone, blocks every neighbour beyond it. Where nothing agrees, a pixel keeps
its own value, so the stage can smooth but not ghost.

Why DIS flow (``cv2.DISOpticalFlow``, Kroeger et al. 2016) at full resolution: it is
the dense flow already in the dependencies and takes about 80 ms a 1280x720 pair on a
CPU core (``fast`` preset); its failures (large motion, occlusions) are caught by the
consistency check and the photometric rejection. Full resolution because at half size
its sub-pixel error blurred texture and ghosted a moving object (benchmarks/temporal.py,
object clip, measured while developing: -6.2 dB in the object at half size, -0.2 dB at
full size, against the network alone).

Why a dominant motion beside the dense flow: on rain and noise DIS wanders by a fraction
of a pixel even where nothing moves (0.4 px on average between the network's outputs of
a static rainy clip), and each bilinear warp by such a fraction blurs the texture and
fails the consistency check; a homography fitted to the consistent vectors (RANSAC)
follows the camera exactly. Wherever the dense flow stays within 2 px of it, that motion
aligns the neighbour; a moving object departs from it and keeps the dense flow and its
checks (benchmarks/temporal.py, net+t: static rain +2.8 -> +4.2 dB over the network
alone, moving object +2.8 -> +4.5 dB with its region +0.1 dB).

Why numpy/OpenCV and not torch: the flow and the warps are OpenCV calls on HWC arrays,
and the per-pixel fusion is a handful of elementwise passes and box filters that
OpenCV and numpy do faster than torch's CPU convolutions at 1280x720; staying in one
layout avoids a copy per frame.

With ``sharpness`` above 0 the fusion is by detail instead (lucky frames for
motion-blurred footage, :mod:`pipeline.stages.sharpest`); alignment and cuts are shared.

Integration: ``process_window(frames, before, after)`` takes a run of consecutive
frames whose first ``before`` and last ``after`` are context (up to ``radius`` each)
and returns only the frames in between; frame k depends only on frames k-r .. k+r, so
any chunking with full context gives identical output.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import Field

from pipeline.stages.alignment import (
    FRAME_INTERP,
    FlowPair,
    flow_grey,
    pick_alignment,
    pixel_grid,
    warp,
)
from pipeline.stages.base import Stage, StageParams
from pipeline.stages.registry import register_stage
from pipeline.stages.sharpest import fuse_sharpest

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
#: Noise-scale floor (8-bit code values / 255): quantisation alone is never exactly zero.
_SIGMA_FLOOR = 1.0 / 255
#: Box filter side for the structural (noise-averaged) difference.
_BOX = 5
#: Neighbours that must agree on what lies under a streak before the centre yields.
_AGREE = 1
#: Thumbnail width for cut detection.
_CUT_WIDTH = 160
#: Smallest bright excess a streak rejection acts on: fainter thin highlights are texture.
_STREAK_MIN = 0.0
#: detail_sigma: a neighbour shows the centre's detail if, within _GROW, it holds detail of
#: 1/_SHOWN of its size or more (warps soften); detail beyond that by _UNSEEN robust sds of
#: the centre's difference from the window's median is none of the centre's to keep.
_GROW, _SHOWN, _UNSEEN = np.ones((3, 3), np.uint8), 2.0, 1.5
#: Rejected flow (occlusion) is widened by this much: its borders are the least sure.
_ERODE = np.ones((9, 9), np.uint8)


class TemporalParams(StageParams):
    """Knobs of a temporal denoiser/derainer; defaults suit 8-bit footage."""

    radius: int = Field(2, ge=0, le=8)  # neighbours on each side (2: a 5-frame window)
    strength: float = Field(1.0, ge=0, le=1)  # 0: off, 1: the full fused result
    # Disagreement (in robust noise units) at which a neighbour's weight reaches zero.
    threshold: float = Field(3.0, gt=0, le=50)
    # A centre pixel brighter than what its agreeing neighbours show is a streak (rain,
    # snow) and is replaced; off: the centre always keeps weight 1.
    streaks: bool = True
    # Weigh every frame, the centre too, against the window's median instead of
    # anchoring on the centre: stronger on static or well-tracked footage.
    consensus: bool = True
    streak_width: int = Field(3, ge=1, le=32)  # widest streak in pixels (half the opening)
    # Align by the frame's dominant (camera) motion wherever the dense flow agrees with it
    # to within 2 px: steadier than the dense flow on rain and noise.
    dominant_motion: bool = True
    flow_preset: Literal["ultrafast", "fast", "medium"] = "fast"
    flow_scale: float = Field(1.0, gt=0.1, le=1)  # flow on frames resized by this factor
    # Share of pixels that must fail to match (after alignment) for a scene cut.
    cut_threshold: float = Field(0.8, gt=0, le=1)
    # Above 0: fuse by local detail instead (lucky frames, for motion-blurred footage:
    # pipeline.stages.sharpest), this the exponent on each frame's detail.
    sharpness: float = Field(0.0, ge=0, le=16)
    # Above 0: the fusion acts only on the band below a Gaussian of this sigma (pixels);
    # each frame keeps its own finer detail where its neighbours show it too. For
    # footage whose stage is there for rain and flicker, not noise: sub-pixel alignment
    # error softens fine texture when frames are averaged, and sharp footage pays for it.
    detail_sigma: float = Field(0.0, ge=0, le=16)


@register_stage("temporal")
class TemporalStage(Stage):
    """Temporal fusion; see the module docstring for the method and the interface."""

    params_model = TemporalParams
    params: TemporalParams

    def __init__(self, params: TemporalParams) -> None:
        super().__init__(params)
        self.temporal_radius = params.radius  # the graph reads it on the instance
        self._dis: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_dis": None}  # OpenCV objects do not pickle

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(_PRESETS[self.params.flow_preset])
        return self._dis.calc(a, b, None)

    def process(self, frames: torch.Tensor) -> torch.Tensor:
        """All frames out, each fused from the neighbours present in ``frames``."""
        return self.process_window(frames, 0, 0)

    def process_window(self, frames: torch.Tensor, before: int, after: int) -> torch.Tensor:
        """Frames ``[before : N - after]`` of ``frames`` (N, 3, H, W), consecutive frames
        of which the first ``before`` and last ``after`` are context only. Frame k uses
        frames k-r .. k+r where present; the result does not depend on anything else."""
        n = frames.shape[0]
        if before < 0 or after < 0 or before + after > n:
            raise ValueError(f"context ({before}, {after}) does not fit {n} frames")
        r = self.params.radius
        if r == 0 or self.params.strength == 0 or n - before - after == 0:
            return frames[before : n - after].clone()
        # Context beyond radius is never used; dropping it keeps the work bounded.
        lo, hi = max(0, before - r), min(n, n - after + r)
        arr = frames[lo:hi].permute(0, 2, 3, 1).float().cpu().numpy()
        arr = np.ascontiguousarray(arr)
        start, stop = before - lo, (n - after) - lo
        out = fuse_clip(self, arr, start, stop)
        result = torch.from_numpy(out).permute(0, 3, 1, 2)
        return result.to(device=frames.device, dtype=frames.dtype).contiguous()


def fuse_clip(stage: TemporalStage, arr: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Fused frames ``start .. stop-1`` of ``arr`` (T, H, W, 3) float32."""
    p = stage.params
    r = p.radius
    t, h, w, _ = arr.shape
    s = p.flow_scale
    greys = [flow_grey(f, s) for f in arr]
    gh, gw = greys[0].shape
    pairs: dict[tuple[int, int], FlowPair] = {}

    def pair(i: int, j: int) -> FlowPair:  # i < j
        if (i, j) not in pairs:
            fwd = stage._flow(greys[i], greys[j])
            bwd = stage._flow(greys[j], greys[i])
            pairs[(i, j)] = FlowPair(fwd, bwd, p.dominant_motion)
        return pairs[(i, j)]

    # A cut between i and i+1 is decided from those two frames alone, on thumbnails
    # (_CUT_WIDTH wide): averaging over 8x8 and more pixels leaves neither rain nor noise
    # to drag the flow or fail the match, while a new shot still differs everywhere.
    # The dominant motion is checked on the frames the flow saw (streaks opened away).
    fine = greys if s == 1 else [flow_grey(f, 1.0) for f in arr]
    thumbs = [flow_grey(f, min(1.0, _CUT_WIDTH / w)) for f in arr]
    cut = []
    for i in range(t - 1):
        small = FlowPair(
            stage._flow(thumbs[i], thumbs[i + 1]), stage._flow(thumbs[i + 1], thumbs[i])
        )
        cut.append(small.cut_score(thumbs[i], thumbs[i + 1]) > p.cut_threshold)
    grid = pixel_grid(h, w)
    outs = []
    for k in range(start, stop):
        centre = arr[k]
        aligned, valid = [], []
        for j in range(max(0, k - r), min(t, k + r + 1)):
            if j == k or any(cut[min(j, k) : max(j, k)]):
                continue
            pr = pair(min(k, j), max(k, j))
            flow, ok, glob = (
                (pr.fwd, pr.ok_fwd, pr.glob_fwd) if j > k else (pr.bwd, pr.ok_bwd, pr.glob_bwd)
            )
            if s != 1:
                up = np.float32([w / gw, h / gh])
                flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * up
                ok = cv2.resize(ok.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
                if glob is not None:
                    glob = cv2.resize(glob, (w, h), interpolation=cv2.INTER_LINEAR) * up
            # Occlusion borders are where the flow is least sure: widen the rejected area.
            ok = cv2.erode(ok.astype(np.uint8), _ERODE).astype(bool)
            if glob is not None:
                flow, ok = pick_alignment((fine[k], fine[j]), (flow, ok), glob, grid)
            aligned.append(warp(arr[j], flow, grid, FRAME_INTERP))
            valid.append(ok)
        if not aligned:
            outs.append(centre)
        elif p.sharpness > 0:
            fused = fuse_sharpest(centre, aligned, valid, p.sharpness)
            outs.append(centre + np.float32(p.strength) * (fused - centre))
        else:
            outs.append(_fuse(centre, aligned, valid, p))
    return np.stack(outs)


def _grey(x: np.ndarray) -> np.ndarray:
    return (x[..., 0] + x[..., 1] + x[..., 2]) / 3  # the mean; numpy's mean(-1) is slower


def _tukey(u: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Tukey's biweight: 1 at agreement, smoothly 0 from u = 1 on (a hard reject)."""
    v = np.multiply(u, u, out=out)
    np.subtract(1, v, out=v)
    return np.square(np.clip(v, 0, None, out=v), out=v)


def _order_stat(planes: list[np.ndarray], q: int) -> np.ndarray:
    """The q-th smallest of ``planes`` at each pixel. A handful of planes go through a
    sorting network of elementwise min/max (5x faster than ``np.partition`` along the
    stacked axis for a 5-frame window at 1280x720); longer windows use the partition."""
    if len(planes) > 9:
        return np.partition(np.stack(planes), q, axis=0)[q]
    v = [x.copy() for x in planes]
    for rnd in range(len(v)):  # odd-even transposition sort: len(v) rounds sort it
        for i in range(rnd % 2, len(v) - 1, 2):
            low = np.minimum(v[i], v[i + 1])
            np.maximum(v[i], v[i + 1], out=v[i + 1])
            v[i] = low
    return v[q]


def _mad(x: np.ndarray) -> float:
    """Robust standard deviation (1.4826 x median absolute value), sub-sampled for speed."""
    return _robust_sd(x[::4, ::4])


def _robust_sd(sample: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(sample)))


def _detail_kept(
    cg: np.ndarray, votes: list[np.ndarray], mid: np.ndarray, p: TemporalParams
) -> np.ndarray:
    """Where the centre keeps its own fine detail (1) rather than the fused frame's (0).

    A warped neighbour is a little softer and a fraction of a pixel off, so the centre's
    sharp texture stands above it; kept is the detail that every neighbour shows too,
    within a pixel and at 1/_SHOWN of its size or more. Detail one of them does not show,
    of either sign (a streak the network left, a dark trace of one it removed, noise),
    is the fused frame's (measured on rainy and dry footage, session 11: README,
    "Temporal stage"). ``votes``: the centre's and its neighbours' greys, ``mid`` their
    median.
    """

    def band(v: np.ndarray) -> np.ndarray:
        return np.abs(v - cv2.GaussianBlur(v, (0, 0), p.detail_sigma))

    shown = [cv2.dilate(band(v), _GROW) for v in votes[1:]]
    seen = _order_stat(shown, 0)  # the least any neighbour shows
    unseen = np.clip(band(cg) - _SHOWN * seen, 0, None)
    sig = max(_SIGMA_FLOOR, _mad(cg - mid))
    return _tukey(unseen / (_UNSEEN * sig))


def _fuse(
    centre: np.ndarray, aligned: list[np.ndarray], valid: list[np.ndarray], p: TemporalParams
) -> np.ndarray:
    """Robust weighted mean of the centre and its aligned neighbours (HW3 float32).

    Neighbours are weighted by their agreement with an anchor: the centre itself, except
    where the centre holds a thin bright outlier (a streak) that the window's lower
    order statistic does not show; there the anchor is that order statistic. A second
    pass re-anchors on the first pass's result (iteratively reweighted mean).
    """
    cg = _grey(centre)
    ags = [_grey(a) for a in aligned]
    thr = p.threshold
    wc = np.ones_like(cg)
    anchor = cg
    # Invalid neighbours vote with the centre's value, so an order statistic of the
    # window falls back to the centre where the alignment failed.
    votes = [cg, *(np.where(ok, g, cg) for g, ok in zip(ags, valid, strict=True))]
    window = len(aligned) >= 2  # two neighbours or more: order statistics mean something
    wanted = window and (p.consensus or p.detail_sigma > 0)
    mid = _order_stat(votes, (len(votes) - 1) // 2) if wanted else cg  # the window's median
    if p.streaks and window and not p.consensus:  # consensus sets its own anchor
        q = max(0, (len(votes) - 1) // 2 - (len(votes) >= 5))  # rain only adds light
        ref = _order_stat(votes, q)
        resid = cg - ref
        sig = max(_SIGMA_FLOOR, _mad(resid))
        # The white top-hat keeps what a grey opening wider than a streak removes: a
        # bright moving object is wider than that and keeps the centre's value.
        side = 2 * p.streak_width + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        excess = np.clip(resid, 0, None)
        thin = excess - cv2.morphologyEx(excess, cv2.MORPH_OPEN, kernel)
        agree = sum(
            (ok & (np.abs(g - ref) < 2 * thr * sig)).astype(np.float32)
            for g, ok in zip(ags, valid, strict=True)
        )
        scale = max(2 * thr * sig, _STREAK_MIN)
        wc = np.where(agree >= _AGREE, _tukey(thin / scale), 1.0).astype(np.float32)
        anchor = wc * cg + (1 - wc) * ref
    if p.consensus and window:
        # The anchor is the window's lower median (invalid neighbours voting with the
        # centre), and the centre is weighed against it like any neighbour: a centre
        # that its aligned, agreeing neighbours contradict (rain, a flash of noise, a
        # network's one-frame mistake) yields to them.
        anchor = mid
        aligned = [centre, *aligned]
        ags = [cg, *ags]
        valid = [np.ones(cg.shape, bool), *valid]
        wc = np.zeros_like(cg)
    fused = centre
    for _ in range(2):
        diffs = [g - anchor for g in ags]
        sig_raw = max(_SIGMA_FLOOR, float(np.median([_mad(d) for d in diffs])))
        num = wc[..., None] * centre
        den = wc.copy()
        tests = []
        for d in diffs:
            # Strong single-pixel outliers (streaks) are the raw test's. Two box tests
            # look for coherent disagreement in the rest: the signed mean (a moving
            # part, a brightness change) and the mean absolute difference (texture
            # that does not line up: a slightly wrong flow would blur it). Leaving
            # the outliers out of the boxes keeps a streak from rejecting its surround.
            u_raw = np.abs(d) / (2 * thr * sig_raw)
            inlier = np.where(u_raw < 1, d, 0)
            box = cv2.blur(inlier, (_BOX, _BOX))
            box_abs = cv2.blur(np.abs(inlier), (_BOX, _BOX))
            tests.append((u_raw, box, box_abs))
        sig_box = max(_SIGMA_FLOOR / 2, float(np.median([_mad(b) for _, b, _ in tests])))
        level = float(np.median([np.median(b[::4, ::4]) for _, _, b in tests]))
        spreads = [_robust_sd(b[::4, ::4] - level) for _, _, b in tests]
        spread = max(_SIGMA_FLOOR / 2, float(np.median(spreads)))
        u, u_abs = np.empty_like(cg), np.empty_like(cg)  # reused: fresh pages cost more
        for a, ok, (u_raw, box, box_abs) in zip(aligned, valid, tests, strict=True):
            np.divide(np.abs(box, out=u), thr * sig_box, out=u)
            np.clip(np.subtract(box_abs, level, out=u_abs), 0, None, out=u_abs)
            np.maximum(u, np.divide(u_abs, thr * spread, out=u_abs), out=u)
            wgt = _tukey(np.maximum(u, u_raw, out=u), out=u)
            wgt *= ok
            num += wgt[..., None] * a
            den += wgt
        fused = np.where((den > 1e-6)[..., None], num / np.maximum(den, 1e-6)[..., None], centre)
        anchor = _grey(fused)
    if p.detail_sigma > 0 and window:
        # The centre's own detail (what a blur of sigma removes) replaces the fused
        # result's where the neighbours show it too.
        d = centre - fused
        d -= cv2.GaussianBlur(d, (0, 0), p.detail_sigma)
        fused = fused + _detail_kept(cg, votes, mid, p)[..., None] * d
    if p.strength < 1:
        fused = centre + np.float32(p.strength) * (fused - centre)
    return fused.astype(np.float32)
