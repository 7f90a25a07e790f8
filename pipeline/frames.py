"""Records that carry frames between decode, the executors and encode.

Frames travel as planar YUV (the stream's own pixel layout, uint8 or uint16): this
keeps a graph with no stage bit-exact, halves transfer size for 4:2:0 and lets the
worker do YUV <-> RGB in float (``pipeline.media.colour``), never squashed through 8 bits.
An alpha plane travels beside them only where the output keeps it (``pipeline.media.alpha``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

#: Pixel formats frames travel in; anything else is converted on decode.
#: Frame width or height at most: beyond it a header is damaged, a size setting a typo.
MAX_DIMENSION = 16384

SUPPORTED_PIX_FMTS = (
    "yuv420p",
    "yuv422p",
    "yuv444p",
    "yuv420p10le",
    "yuv422p10le",
    "yuv444p10le",
    "yuv420p12le",
    "yuv422p12le",
    "yuv444p12le",
    # planar RGB (G, B, R planes): frame sequences, whose 10, 12 and 16 bits stay exact
    "gbrp",
    "gbrp10le",
    "gbrp12le",
    "gbrp16le",
    # float planar RGB: OpenEXR frames, values beyond 0..1 kept (``VideoFormat.is_float``)
    "gbrpf32le",
)
#: The float transport: an EXR's half or float samples, as 32-bit floats.
FLOAT_PIX_FMT = "gbrpf32le"

#: The layout with an alpha plane of each transport format that FFmpeg has one for
#: (4:2:0 at 12 bits has none: ``pipeline.plan.job`` carries it as 4:4:4 where asked):
#: what frames travel in when the output keeps alpha.
ALPHA_PIX_FMTS = {
    "yuv420p": "yuva420p",
    "yuv422p": "yuva422p",
    "yuv444p": "yuva444p",
    "yuv420p10le": "yuva420p10le",
    "yuv422p10le": "yuva422p10le",
    "yuv444p10le": "yuva444p10le",
    "yuv422p12le": "yuva422p12le",
    "yuv444p12le": "yuva444p12le",
    "gbrp": "gbrap",
    "gbrp10le": "gbrap10le",
    "gbrp12le": "gbrap12le",
    "gbrp16le": "gbrap16le",
    "gbrpf32le": "gbrapf32le",
}


@dataclass(frozen=True)
class ColorInfo:
    """Colour description in FFmpeg vocabulary (``bt709``, ``smpte170m``, ``bt2020nc`` ...)."""

    matrix: str = "bt709"  # YUV<->RGB matrix: bt709 | bt470bg/smpte170m (601) | bt2020nc
    range: str = "tv"  # tv (limited) | pc (full)
    primaries: str = "bt709"
    transfer: str = "bt709"
    assumed: bool = False  # True when the stream said nothing and a default was chosen


@dataclass(frozen=True)
class VideoFormat:
    """Geometry, pixel layout and colour of a frame sequence. ``alpha``: the frames carry
    the source's alpha plane too (full range, luma size, the same depth), because the
    output keeps it; the stages never see it."""

    width: int
    height: int
    pix_fmt: str
    color: ColorInfo
    alpha: bool = False

    @property
    def bit_depth(self) -> int:
        if self.is_float:
            return 32
        return next((bits for bits in (10, 12, 16) if f"p{bits}" in self.pix_fmt), 8)

    @property
    def is_float(self) -> bool:
        """Float samples (scene-linear EXR): 0..1 nominal, any value carried."""
        return self.pix_fmt == FLOAT_PIX_FMT

    @property
    def is_rgb(self) -> bool:
        """Planar RGB (planes G, B, R, full range), not YUV."""
        return self.pix_fmt.startswith("gbrp")

    @property
    def layout(self) -> str:
        """The pixel format of every plane a chunk carries: ``pix_fmt``, with alpha its
        ``ALPHA_PIX_FMTS`` variant."""
        return ALPHA_PIX_FMTS[self.pix_fmt] if self.alpha else self.pix_fmt

    @property
    def chroma_shift(self) -> tuple[int, int]:
        """(log2 horizontal, log2 vertical) chroma subsampling."""
        if self.pix_fmt.startswith("yuv420"):
            return (1, 1)
        if self.pix_fmt.startswith("yuv422"):
            return (1, 0)
        return (0, 0)

    @property
    def dtype(self) -> np.dtype:
        if self.is_float:
            return np.dtype(np.float32)
        return np.dtype(np.uint16 if self.bit_depth > 8 else np.uint8)

    def plane_shapes(self) -> list[tuple[int, int]]:
        sx, sy = self.chroma_shift
        cw, ch = -(-self.width // (1 << sx)), -(-self.height // (1 << sy))
        alpha = [(self.height, self.width)] if self.alpha else []
        return [(self.height, self.width), (ch, cw), (ch, cw), *alpha]

    def with_size(self, width: int, height: int) -> VideoFormat:
        return replace(self, width=width, height=height)


@dataclass
class Chunk:
    """N consecutive frames: the unit of parallelism, ordering and retry.

    ``planes`` holds Y, U, V stacked over frames: shapes (N, H, W), (N, Hc, Wc) x 2,
    values in the native bit depth (0..255, 0..1023 or 0..4095; float32 for EXR, 0..1
    nominal, any value carried); with ``fmt.alpha`` a fourth, the alpha plane (N, H, W).
    For temporal stages the
    planes also hold ``context_before`` frames before the chunk's own and ``context_after``
    after them (neighbours that are read, never emitted); ``pts`` and ``len`` count the
    chunk's own frames only.
    """

    index: int
    first_frame: int
    pts: list[int]
    time_base: Fraction
    fmt: VideoFormat
    planes: tuple[np.ndarray, ...]
    context_before: int = 0
    context_after: int = 0

    def __len__(self) -> int:
        return len(self.pts)
