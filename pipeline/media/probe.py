"""Probe a media file once, up front, so every later layer works from one description.

``probe`` opens the file with PyAV, reads the container and stream headers, decodes the
first video frame (colour tags and rotation live on frames as often as on headers) and
peeks at the first packets to guess whether the stream is VFR. It decides the
*transport* format frames travel in (``pipeline.frames.SUPPORTED_PIX_FMTS``) and the
colour description, assuming BT.709 (HD) or BT.601 (SD) when the stream says nothing.
Every failure becomes an ``InputError`` with a one-line message.

Inputs are local files: every open (``open_input``) allows only FFmpeg's ``file``
protocol and no demuxer that opens further files named inside the input (playlists such
as HLS, concat lists), so a crafted input cannot make the pipeline read another file.
The file's identity (device, inode, size, mtime) is recorded, and each later open checks
it (``check_unchanged``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
from dataclasses import asdict
from fractions import Fraction
from functools import lru_cache
from typing import Any

import av

from pipeline.errors import InputError
from pipeline.frames import MAX_DIMENSION, VideoFormat
from pipeline.media.media_info import MediaInfo, StreamInfo, VideoStreamInfo
from pipeline.media.planes import FIELD_ORDER_NAMES
from pipeline.media.stream_colour import color_info, frame_tags

log = logging.getLogger(__name__)

#: Packets inspected to decide whether timestamps are irregular (VFR).
VFR_PROBE_PACKETS = 240
#: Demuxers that read other files or URLs named inside the input: never used.
INDIRECT_DEMUXERS = frozenset(
    {"hls", "concat", "dash", "imf", "sdp", "rtp", "rtsp", "sap", "avisynth", "vapoursynth"}
)


@lru_cache(maxsize=1)
def _input_options() -> dict[str, str]:
    """FFmpeg options for every input open: local files only, no indirect demuxers."""
    allowed = sorted(
        name
        for name in av.formats_available
        if name not in INDIRECT_DEMUXERS and av.format.ContainerFormat(name).is_input
    )
    return {"protocol_whitelist": "file", "format_whitelist": ",".join(allowed)}


def open_input(path: str) -> av.container.InputContainer:
    """Open a local media file for reading, never following it to other files."""
    return av.open(path, "r", metadata_errors="replace", options=dict(_input_options()))


def fingerprint(path: str) -> tuple[int, int, int, int]:
    """(device, inode, size, mtime in ns): what tells that a file is still the one probed."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def check_unchanged(info: MediaInfo) -> None:
    """Raise ``InputError`` if the file at ``info.path`` is no longer the one probed."""
    if info.fingerprint is None:
        return
    try:
        now = fingerprint(info.path)
    except OSError:
        now = None
    if now != info.fingerprint:
        raise InputError(f"{info.path} changed while it was being read (replaced or rewritten)")


def transport_pix_fmt(source_pix_fmt: str) -> str:
    """Planar YUV layout the frames of ``source_pix_fmt`` travel in.

    8-bit sources keep 4:2:0 / 4:2:2 / 4:4:4 (``yuvj*`` and ``nv12`` included); 9- and
    10-bit sources become the 10-bit variant, deeper ones the 12-bit variant; RGB, grey,
    palette and exotic subsamplings become 4:4:4 so that no chroma detail is thrown away
    on the way in. An alpha plane travels beside them only where the output keeps it
    (``pipeline.plan.job``); elsewhere ``VideoWriter`` says it is dropped.
    """
    try:
        desc = av.VideoFormat(source_pix_fmt)
    except (ValueError, av.FFmpegError) as exc:
        raise InputError(f"unknown pixel format {source_pix_fmt!r}") from exc
    comps = desc.components
    depth = max(c.bits for c in comps) if comps else 8
    suffix = "12le" if depth > 10 else "10le" if depth > 8 else ""
    if desc.is_rgb or desc.has_palette or len(comps) < 3:
        return f"yuv444p{suffix}"
    # Chroma shifts from the component sizes at a probe size divisible by 4.
    probe_fmt = av.VideoFormat(source_pix_fmt, 64, 64)
    cw, ch = probe_fmt.components[1].width, probe_fmt.components[1].height
    layout = {(32, 32): "yuv420p", (32, 64): "yuv422p", (64, 64): "yuv444p"}.get(
        (cw, ch), "yuv444p"
    )
    return layout + suffix


def _scan(
    container: av.container.InputContainer, stream: Any
) -> tuple[av.VideoFrame | None, list[int], int, int]:
    """One pass over the first packets: the first decodable frame (colour tags, rotation),
    the sorted pts of up to ``VFR_PROBE_PACKETS`` packets, how many packets were seen and
    how many of them an edit list hides (pre-roll, decoded but never shown).
    A single pass because raw streams (.h264) cannot seek back."""
    first: av.VideoFrame | None = None
    pts: list[int] = []
    seen = hidden = 0
    try:
        for packet in container.demux(stream):
            if packet.size and packet.is_discard:
                hidden += 1
            elif packet.size:
                seen += 1
                if packet.pts is not None:
                    pts.append(packet.pts)
            if first is None:
                # The demuxer's final empty packet flushes the decoder's delayed frames.
                with contextlib.suppress(av.FFmpegError):
                    first = next(iter(packet.decode()), None)
            if seen >= VFR_PROBE_PACKETS and first is not None:
                break
    except av.FFmpegError:
        pass  # damaged or truncated: judge by what was read
    return first, sorted(pts), seen, hidden


def _is_vfr(sorted_pts: list[int]) -> bool:
    """Irregular frame durations (beyond timestamp rounding) mean variable frame rate."""
    deltas = [b - a for a, b in itertools.pairwise(sorted_pts) if b > a]
    if len(deltas) < 2:
        return False
    lo, hi = min(deltas), max(deltas)
    return hi - lo > max(1, 0.02 * lo)


def is_picture(stream: Any) -> bool:
    """Cover art, or a Matroska image attachment: a video stream holding one picture."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _other_stream(stream: Any) -> StreamInfo | None:
    kind = stream.type
    if kind not in ("audio", "subtitle", "attachment", "data", "video"):
        return None
    cc = getattr(stream, "codec_context", None)
    # The codec's canonical name ("subrip"), not the decoder's ("srt").
    codec = cc.codec.canonical_name if cc is not None else None
    info = StreamInfo(
        index=stream.index,
        type=kind,
        codec=codec,
        language=stream.language,
        time_base=stream.time_base,
        metadata=dict(stream.metadata),
    )
    if kind == "audio" and cc is not None:
        info.sample_rate = cc.sample_rate
        info.channels = cc.channels
    if kind == "attachment" or kind == "video":
        info.filename = stream.metadata.get("filename")
        info.picture = kind == "video" and is_picture(stream)
    return info


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe ``path`` or raise ``InputError`` saying in one line why it cannot be used."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"input not found: {path}")
    if os.path.isdir(path):
        raise InputError(f"input is a directory, not a media file: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input is not readable (permissions): {path}")
    try:
        identity = fingerprint(path)
        # Damaged tags are not worth failing over: undecodable bytes become U+FFFD.
        container = open_input(path)
    except av.FFmpegError as exc:
        raise InputError(f"not a readable media file: {path} ({_reason(exc)})") from None
    except OSError as exc:
        raise InputError(f"cannot open input: {path} ({exc.strerror or exc})") from None
    try:
        info = _probe_open(path, container)
        info.fingerprint = identity
        return info
    except av.FFmpegError as exc:
        raise InputError(f"damaged media file: {path} ({_reason(exc)})") from None
    finally:
        container.close()


def _reason(exc: av.FFmpegError) -> str:
    return (getattr(exc, "strerror", None) or str(exc)).splitlines()[0]


def _probe_open(path: str, container: av.container.InputContainer) -> MediaInfo:
    # Cover art and image attachments are video streams too: they are carried, not restored.
    stream = next((s for s in container.streams.video if not is_picture(s)), None)
    if stream is None:
        pictures = " (only cover art or attached pictures)" if container.streams.video else ""
        raise InputError(f"no video stream to restore in {path}{pictures}")
    cc = stream.codec_context
    if cc is None:
        raise InputError(f"unsupported video codec in {path} (no decoder for it)")
    width, height = int(cc.width or 0), int(cc.height or 0)
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise InputError(f"implausible frame size {width}x{height} in {path}")
    source_pix_fmt = cc.pix_fmt
    if source_pix_fmt is None:
        raise InputError(f"video stream of {path} has no pixel format (undecodable codec?)")

    first, sorted_pts, packets_seen, hidden = _scan(container, stream)
    if first is None:
        raise InputError(f"no decodable video frames in {path}")
    # The first frame is the authority when it differs from the header (e.g. mid-stream SPS).
    source_pix_fmt = first.format.name
    if (first.width, first.height) != (width, height):
        width, height = first.width, first.height

    pix_fmt = transport_pix_fmt(source_pix_fmt)
    is_rgb = bool(av.VideoFormat(source_pix_fmt).is_rgb)
    color = color_info(path, source_pix_fmt, height, frame_tags(first, cc), is_rgb)

    avg_rate = stream.average_rate or stream.guessed_rate or None
    time_base = stream.time_base or Fraction(1, 90000)
    duration = _duration_seconds(container, stream)
    # Some containers count the duration from 0, not from the first frame (Matroska):
    # a file that starts late must not announce frames for the time before it starts.
    start = float(stream.start_time * time_base) if stream.start_time else 0.0
    shown_for = duration - start if duration and 0 < start < duration else duration
    frame_count = stream.frames - hidden if stream.frames else None
    if frame_count is None and packets_seen < VFR_PROBE_PACKETS:
        frame_count = packets_seen or None
    if frame_count is None and shown_for and avg_rate:
        frame_count = max(1, round(shown_for * float(avg_rate)))
    if packets_seen == 0 and not frame_count:
        raise InputError(f"video stream of {path} has no frames")
    announced = stream.frames or None  # hidden (edit list) frames included
    if announced is None and shown_for and avg_rate and not _is_vfr(sorted_pts):
        announced = round(shown_for * float(avg_rate))

    video = VideoStreamInfo(
        index=stream.index,
        codec=cc.codec.canonical_name,
        width=width,
        height=height,
        source_pix_fmt=source_pix_fmt,
        fmt=VideoFormat(width=width, height=height, pix_fmt=pix_fmt, color=color),
        time_base=time_base,
        avg_rate=Fraction(avg_rate) if avg_rate else None,
        frame_count=frame_count,
        rotation=_rotation(first, stream),
        is_vfr=_is_vfr(sorted_pts),
        start_pts=stream.start_time,
        metadata=dict(stream.metadata),
        frames_announced=announced,
        announced_exactly=bool(stream.frames),
        field_order=_field_order(first, cc),
        # Counted from 0 (Matroska) or from the first frame: the earlier end, so that a
        # late start is never taken for missing frames.
        expected_end=min(start + duration, max(duration, start)) if duration else None,
    )
    others = [
        s
        for s in map(_other_stream, container.streams)
        if s is not None and s.index != stream.index
    ]
    try:
        chapters = [dict(ch) for ch in container.chapters()]
    except av.FFmpegError:
        chapters = []
    return MediaInfo(
        path=path,
        container=container.format.name,
        duration=duration,
        metadata=dict(container.metadata),
        chapters=chapters,
        video=video,
        other_streams=others,
    )


def _duration_seconds(container: av.container.InputContainer, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    # Matroska's own per-track DURATION tag: the container's duration is the longest
    # stream's, and audio often runs on past the last picture.
    tagged = _clock_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if tagged:
        return tagged
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _field_order(frame: av.VideoFrame, cc: Any) -> int:
    """The stream's field order; frames flagged interlaced under a header that says
    nothing (or progressive) are taken as top field first, the common order."""
    order = int(cc.field_order or 0)
    if order not in FIELD_ORDER_NAMES and frame.interlaced_frame:
        return 2
    return order


def _clock_seconds(text: str | None) -> float | None:
    """Seconds of an ``HH:MM:SS.fraction`` tag, or None when it is not one."""
    try:
        hours, minutes, seconds = (text or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _rotation(frame: av.VideoFrame, stream: Any) -> int:
    """Display rotation in degrees, counter-clockwise as FFmpeg's display matrix, in (-180, 180]."""
    value: float = 0
    try:
        value = frame.rotation or 0
    except (AttributeError, av.FFmpegError):
        value = 0
    if not value:
        tag = stream.metadata.get("rotate")
        if tag is not None:
            try:
                value = -float(tag)
            except ValueError:
                value = 0
    rotation = round(value) % 360
    return rotation - 360 if rotation > 180 else rotation


def describe(info: MediaInfo) -> dict[str, Any]:
    """JSON-friendly summary (``run_pipeline.py probe``): fractions become strings."""

    def plain(value: Any) -> Any:
        if isinstance(value, Fraction):
            return f"{value.numerator}/{value.denominator}"
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    summary = asdict(info)
    del summary["fingerprint"]  # identifies this copy of the file, describes nothing
    summary["video"]["fmt"]["bit_depth"] = info.video.fmt.bit_depth
    summary["video"]["fps"] = float(info.video.avg_rate) if info.video.avg_rate else None
    return plain(summary)
