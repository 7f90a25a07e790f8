"""The source's alpha plane: which outputs keep it, and how it follows a stage's resize.

The networks restore colour only, so the alpha plane passes the stage graph untouched:
bit-exact when the output has the same size and depth, else resized (bilinear, smoothed
when shrinking: a matte gains no overshoot halo) and rescaled to the output's depth.
"""

from __future__ import annotations

from collections.abc import Mapping

import av
import numpy as np
import torch
import torch.nn.functional as F

from pipeline.frames import VideoFormat

#: Encoders whose alpha plane comes back through FFmpeg's decoders, with the ProRes
#: profiles that code one (prores_ks drops it without a word in the 4:2:2 profiles).
#: libx265 and libvpx-vp9 list alpha formats too, but only some builds and decoders keep
#: the plane, so alpha is not promised there.
ALPHA_ENCODERS: dict[str, frozenset[str] | None] = {
    "ffv1": None,
    "prores_ks": frozenset({"auto", "-1", "4444", "4", "4444xq", "5"}),
}
#: What the warning names when an output cannot keep alpha.
ALPHA_KEEPERS = "ffv1, prores_ks with profile 4444, or a png, tiff or exr sequence"
#: ... and when the source is 4:2:0 at 12 bits, which has no layout with alpha in FFmpeg:
#: its frames carry alpha as 4:4:4 where asked (``pipeline.plan.job.alpha_transport``).
NO_ALPHA_LAYOUT_KEEPERS = (
    "output.pix_fmt=yuv444p12le with ffv1, or a 16-bit png, tiff or exr sequence"
)


def has_alpha(pix_fmt: str) -> bool:
    """Whether frames of ``pix_fmt`` have an alpha plane (yuva420p, gbrap, rgba ...)."""
    return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)


def keeps_alpha(codec: str, options: Mapping[str, object] | None = None) -> bool:
    """Whether ``codec`` with these encoder ``options`` writes an alpha plane that reads back."""
    if codec not in ALPHA_ENCODERS:
        return False
    profiles = ALPHA_ENCODERS[codec]
    profile = (options or {}).get("profile")
    return profiles is None or profile is None or str(profile) in profiles


def carried_alpha(alpha: np.ndarray, in_fmt: VideoFormat, out_fmt: VideoFormat) -> np.ndarray:
    """The alpha planes (N, H, W) of ``in_fmt`` frames as ``out_fmt`` frames hold them:
    the same array when size and depth agree, else resized and rescaled."""
    size = (out_fmt.height, out_fmt.width)
    if alpha.shape[1:] == size and in_fmt.bit_depth == out_fmt.bit_depth:
        return alpha
    peak = _peak(out_fmt)
    scale = peak / _peak(in_fmt)
    shrink = size[0] < alpha.shape[1] or size[1] < alpha.shape[2]
    out = np.empty((len(alpha), *size), out_fmt.dtype)
    for i, plane in enumerate(alpha):  # a frame at a time: memory stays flat
        frame = torch.from_numpy(plane.astype(np.float32))[None, None] * scale
        if frame.shape[-2:] != size:
            frame = F.interpolate(frame, size=size, mode="bilinear", align_corners=False,
                                  antialias=shrink)  # fmt: skip
        if not out_fmt.is_float:  # float (OpenEXR) alpha keeps values beyond 0..1
            frame = frame.round().clamp(0, peak)
        out[i] = frame[0, 0].numpy()
    return out


def _peak(fmt: VideoFormat) -> float:
    """Full opacity: 1.0 in float frames, the top code value in integer ones."""
    return 1.0 if fmt.is_float else float((1 << fmt.bit_depth) - 1)
