"""Look at videos together: a side-by-side or wipe video, a contact sheet, quality numbers.

Frames are matched by presentation time, not by index (each video's clock starts at its
own first frame), so a VFR file, a shifted Matroska or a file missing frames still lines
up; a frame of the first video that another has nothing within half a frame of is
skipped and counted. Frames are decoded with the pipeline's own decoder and YUV -> RGB,
so what is compared is what the stages saw. With a reference, every video gets per-frame
PSNR and SSIM (``training.metrics``, the definitions the model cards use) and a flicker
measure: the mean absolute difference of consecutive frames minus the reference's own,
in 8-bit code values (positive: the video changes more from frame to frame than the
clean footage does).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.errors import ConfigError, OutputError
from pipeline.frames import MAX_DIMENSION, ColorInfo, VideoFormat
from pipeline.media.colour import rgb_to_yuv
from pipeline.media.output_path import OutputTarget, output_target
from pipeline.media.probe import probe
from pipeline.media.window import parse_time
from pipeline.show.alignment import Aligned, aligned_frames
from pipeline.show.quality import QualityTable
from pipeline.write_guard import fitted_name, refuse_clash, write_error

#: Seconds for the wipe's divider to cross the frame and come back.
WIPE_PERIOD_S = 4.0
VIDEO_EXTS = (".mp4", ".mkv", ".mov")
IMAGE_EXTS = (".png",)


# -- pictures -------------------------------------------------------------------------
def _fit(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def draw_label(image: np.ndarray, text: str, right: bool = False) -> np.ndarray:
    """``image`` with ``text`` in a dark box in its top-left (or top-right) corner."""
    width = image.shape[1]
    scale = max(0.35, min(1.2, width / 900))
    thick = 1 if scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(3, int(6 * scale))
    x0 = width - tw - 2 * pad if right else 0
    out = image.copy()
    cv2.rectangle(out, (x0, 0), (x0 + tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(
        out,
        text,
        (x0 + pad, th + pad),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thick,
        cv2.LINE_AA,
    )
    return out


def join(parts: Sequence[np.ndarray], axis: int) -> np.ndarray:
    """Images joined side by side (``axis=1``) or stacked (``axis=0``) with white gaps."""
    out = [parts[0]]
    for part in parts[1:]:
        shape = list(part.shape)
        shape[axis] = 4
        out += [np.full(shape, 255, np.uint8), part]
    return np.concatenate(out, axis=axis)


def side_by_side(
    frames: Sequence[np.ndarray], labels: Sequence[str], width: int | None = None
) -> np.ndarray:
    """The frames next to each other, each labelled, at the first one's size (or scaled
    down to ``width`` pixels each)."""
    height, full = frames[0].shape[:2]
    if width and width < full:
        height = max(1, round(height * width / full))
    else:
        width = full
    cells = [draw_label(_fit(f, height, width), lab) for f, lab in zip(frames, labels, strict=True)]
    return join(cells, axis=1)


def wipe(frames: Sequence[np.ndarray], labels: Sequence[str], position: float) -> np.ndarray:
    """The first frame left of a divider at ``position`` (0..1 of the width), the second
    right of it; a white line marks the divider."""
    height, width = frames[0].shape[:2]
    left, right = frames[0], _fit(frames[1], height, width)
    x = round(position * width)
    out = np.concatenate([left[:, :x], right[:, x:]], axis=1)
    cv2.line(out, (x, 0), (x, height - 1), (255, 255, 255), max(1, width // 400))
    return draw_label(draw_label(out, labels[0]), labels[1], right=True)


def wipe_position(time: Fraction) -> float:
    """Divider position at ``time``: sweeps 10% -> 90% -> 10% every ``WIPE_PERIOD_S``."""
    phase = (float(time) / WIPE_PERIOD_S) % 1.0
    return 0.1 + 0.8 * (1 - abs(2 * phase - 1))


class _VideoOut:
    """Encodes RGB frames with libx264 (yuv420p, BT.709 tags) at the given times, using
    the pipeline's own RGB -> YUV; sizes are padded to even."""

    def __init__(self, path: str, time_base: Fraction, rate: Fraction) -> None:
        import av

        self.path, self.time_base, self.rate = path, time_base, rate
        self.box = av.open(path, "w")
        self.stream: Any = None
        self.fmt: VideoFormat | None = None

    def add(self, rgb: np.ndarray, time: Fraction) -> None:
        from pipeline.media.planes import planes_to_frame

        height, width = rgb.shape[0] + rgb.shape[0] % 2, rgb.shape[1] + rgb.shape[1] % 2
        if self.stream is None:
            self.fmt = VideoFormat(width, height, "yuv420p", ColorInfo())
            self.stream = self.box.add_stream("libx264", rate=self.rate, options={"crf": "18"})
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
            self.stream.time_base = self.stream.codec_context.time_base = self.time_base
            cc = self.stream.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709
            cc.color_range = 1  # limited
        rgb = np.pad(rgb, ((0, height - rgb.shape[0]), (0, width - rgb.shape[1]), (0, 0)), "edge")
        tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        planes = [p[0].numpy() for p in rgb_to_yuv(tensor, self.fmt)]  # type: ignore[arg-type]
        frame = planes_to_frame(planes, "yuv420p")
        frame.colorspace, frame.color_range = 1, 1
        frame.pts = round(time / self.time_base)
        frame.time_base = self.time_base
        for packet in self.stream.encode(frame):
            self.box.mux(packet)

    def close(self) -> None:
        if self.stream is None:
            raise ConfigError("no frames to compare (nothing lined up in time)")
        for packet in self.stream.encode(None):
            self.box.mux(packet)
        self.box.close()


# -- the command ----------------------------------------------------------------------
def default_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """File stems, numbered when two are the same."""
    stems = [Path(p).stem for p in paths]
    return [f"{s}#{i + 1}" if stems.count(s) > 1 else s for i, s in enumerate(stems)]


@dataclass
class FramePick:
    """Which frames a contact sheet shows: indices of the first video, every ``every``
    seconds, or ``count`` spread evenly over it."""

    indices: frozenset[int] | None = None
    every: Fraction | None = None
    count: int = 4
    total: int | None = None
    _next_time: Fraction = Fraction(0)

    @classmethod
    def parse(cls, frames: str | None, every: str | None, total: int | None) -> FramePick:
        if frames and every:
            raise ConfigError("--frames and --every are mutually exclusive")
        if frames:
            try:
                indices = frozenset(int(f) for f in frames.split(","))
            except ValueError:
                raise ConfigError(f"--frames {frames!r}: expected indices like 0,24,48") from None
            return cls(indices=indices)
        if every:
            step = parse_time(every)
            if step <= 0:
                raise ConfigError("--every must be longer than 0")
            return cls(every=step)
        return cls(total=total)

    def wants(self, instant: Aligned) -> bool:
        if self.indices is not None:
            return instant.index in self.indices
        if self.every is not None:
            if instant.time < self._next_time:
                return False
            while self._next_time <= instant.time:
                self._next_time += self.every
            return True
        total = self.total or 1
        marks = {round(i * (total - 1) / max(self.count - 1, 1)) for i in range(self.count)}
        return instant.index in marks

    def done(self, instant: Aligned) -> bool:
        return self.indices is not None and instant.index >= max(self.indices)


def compare(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    layout: str = "side",
    frames: str | None = None,
    every: str | None = None,
    reference: str | os.PathLike | None = None,
    cell_width: int = 480,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``out`` (a .png contact sheet or a video) comparing ``paths``; with a
    reference, also ``<out>.quality.csv`` and ``<out>.quality.png`` (a name too long for
    them is cut, with a digest: ``write_guard.fitted_name``). Returns what was written
    and the quality means."""
    out = Path(out)
    if out.suffix.lower() not in VIDEO_EXTS + IMAGE_EXTS:
        raise ConfigError(f"-o {out}: use .png for a contact sheet or {'/'.join(VIDEO_EXTS)}")
    if not 0 <= cell_width <= MAX_DIMENSION:
        raise ConfigError(f"--width {cell_width}: 0 (full size) to {MAX_DIMENSION} pixels")
    labels = list(labels) if labels else default_labels(paths)
    if len(labels) != len(paths):
        raise ConfigError(f"{len(labels)} labels for {len(paths)} videos")
    if layout == "wipe" and len(paths) != 2:
        raise ConfigError("--layout wipe compares exactly two videos")
    sources = [*paths, reference] if reference else list(paths)
    csv_path, png_path = (out.parent / fitted_name(out.parent, out.stem, f".quality.{ext}")
                          for ext in ("csv", "png"))  # fmt: skip
    with contextlib.ExitStack() as stack:
        # Every file it writes, checked and reserved before a frame is decoded.
        targets = []
        for path in [out, csv_path, png_path] if reference else [out]:
            refuse_clash(path, "-o", {f"an input ({s})": s for s in sources})
            targets.append(
                stack.enter_context(output_target(path, overwrite=overwrite, inputs=sources))
            )
        return _compare(sources, targets, labels, layout, frames, every, reference, cell_width)


def _compare(
    sources: list[str | os.PathLike],
    targets: list[OutputTarget],
    labels: list[str],
    layout: str,
    frames: str | None,
    every: str | None,
    reference: str | os.PathLike | None,
    cell_width: int,
) -> dict[str, Any]:
    """``compare`` once its files are reserved: ``targets`` are the output, then the
    quality table and plot when there is a reference."""
    out = Path(targets[0].path)
    shown = [*labels, "reference"] if reference else labels
    infos = [probe(p) for p in sources]
    master = infos[0].video
    table = QualityTable(labels) if reference else None
    sheet = out.suffix.lower() in IMAGE_EXTS
    pick = FramePick.parse(frames, every, master.frame_count) if sheet else None
    rows: list[np.ndarray] = []
    rate = master.avg_rate or Fraction(25)
    video = None if sheet else _VideoOut(targets[0].url, master.time_base, rate)
    try:
        for instant in aligned_frames(infos):
            if table is not None:
                table.add(instant)
            if pick is not None:
                if pick.wants(instant):
                    rows.append(_sheet_row(instant, shown, cell_width))
                if pick.done(instant) and table is None:
                    break
            elif video is not None:
                if layout == "wipe":
                    picture = wipe(instant.frames, labels, wipe_position(instant.time))
                else:
                    picture = side_by_side(instant.frames, shown)
                video.add(picture, instant.time)
        if video is not None:
            video.close()
            targets[0].publish()
    except OSError as exc:  # PyAV's errors are OSErrors: a full disk is an output error
        raise write_error(exc, targets[0].path) from None
    finally:
        if video is not None:
            video.box.close()
    if sheet:
        if not rows:
            raise ConfigError("no frame matched --frames/--every")
        targets[0].write(_png(out, join(rows, axis=0)))
    result: dict[str, Any] = {"written": [t.path for t in targets]}
    if table is not None:
        targets[1].write(table.csv().encode())
        targets[2].write(table.plot())
        result["quality"] = table.means()
        result["table"] = table.format()
    return result


def _sheet_row(instant: Aligned, labels: Sequence[str], cell_width: int) -> np.ndarray:
    stamp = f"#{instant.index} {float(instant.time):.2f}s"
    return side_by_side(instant.frames, [f"{lab} {stamp}" for lab in labels], cell_width)


def _png(path: Path, rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(
        ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    if not ok:
        raise OutputError(f"cannot encode {path}")
    return data.tobytes()
