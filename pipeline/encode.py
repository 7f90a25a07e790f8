"""Encode restored YUV chunks and mux them with the source's other streams, copied as packets.

The writer builds ``av.VideoFrame``s straight from the chunk planes (no RGB round trip),
keeps every frame's pts in the input time base (codec context too: libx264's VFR flush
needs it), writes the colour tags and display rotation back, and interleaves the source's
audio / subtitle / data packets by time as the video packets come out, so memory stays
flat. A stream the output container cannot hold is transcoded (audio) or dropped, always
with a warning. The file is written under a temporary name and renamed on ``close()``
(``pipeline.output_path``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from typing import Any

import av
import numpy as np

from pipeline.decode import convert_layout
from pipeline.errors import ConfigError, InputError, OutputError
from pipeline.frames import SUPPORTED_PIX_FMTS, Chunk, VideoFormat
from pipeline.output_options import check_muxer
from pipeline.output_path import OutputTarget, prepare_output
from pipeline.pictures import COVER_ART_FORMATS, attachment_name, picture_bytes
from pipeline.probe import (
    FIELD_ORDER_NAMES,
    MATRIX_NAMES,
    PRIMARIES_NAMES,
    RANGE_NAMES,
    TRANSFER_NAMES,
    MediaInfo,
    assumed_color,
    check_unchanged,
    open_input,
    tag_value,
)
from pipeline.streaming import DEFAULT_STREAM_FORMAT, SEEKING_MUXERS

log = logging.getLogger(__name__)

#: Metadata keys that describe the old file rather than the content; not copied.
STALE_METADATA = {
    "duration",
    "encoder",
    "rotate",
    "major_brand",
    "minor_version",
    "compatible_brands",
    "creation_time",
    "number_of_frames",
    "number_of_bytes",
    "_statistics_tags",
    "_statistics_writing_app",
    "_statistics_writing_date_utc",
    "bps",
}
#: Video encoders named in the hint when the container cannot hold the chosen one.
COMMON_VIDEO_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "ffv1", "prores_ks")
#: Text subtitle codecs whose events ``_SubtitleConverter`` can read.
TEXT_SUBTITLES = {"subrip", "text", "ass", "ssa", "mov_text", "webvtt"}
#: Text subtitle codecs it can write, in order of preference.
TEXT_SUBTITLE_TARGETS = ("subrip", "mov_text", "webvtt")


def _fresh(metadata: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in metadata.items()
        if k.lower() not in STALE_METADATA and not k.lower().startswith("number_of_frames")
    }


def planes_to_frame(planes: Sequence[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    """An ``av.VideoFrame`` of planar ``pix_fmt`` holding copies of the Y, U, V arrays."""
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    dtype = np.dtype("<u2") if "p10" in pix_fmt or "p12" in pix_fmt else np.dtype(np.uint8)
    for plane, data in zip(frame.planes, planes, strict=True):
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        view = rows.view(dtype)
        view[: data.shape[0], : data.shape[1]] = data
    return frame


@lru_cache(maxsize=64)
def _encoder_accepts(codec: str, width: int, height: int, pix_fmt: str, color_range: str) -> bool:
    """Whether ``codec`` opens at this size, pixel format and range (odd 4:2:0, 8-bit-only
    builds, MJPEG's full range only)."""
    try:
        cc = av.CodecContext.create(codec, "w")
    except (av.FFmpegError, ValueError) as exc:
        raise ConfigError(f"unknown video encoder {codec!r}") from exc
    cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
    cc.color_range = tag_value(RANGE_NAMES, color_range)
    cc.time_base = Fraction(1, 25)
    if codec == "libx265":
        cc.options = {"x265-params": "log-level=none"}
    try:
        cc.open()
    except (av.FFmpegError, ValueError):
        return False
    return True


def _layout_distance(wanted: str, offered: str) -> tuple[int, int]:
    """Rank a substitute pixel format: same depth first (deeper before shallower), then
    same chroma resolution (finer before coarser)."""
    w, o = VideoFormat(2, 2, wanted, None), VideoFormat(2, 2, offered, None)  # type: ignore[arg-type]
    gap = o.bit_depth - w.bit_depth  # shallower: the nearest first (12-bit falls to 10)
    depth = 0 if gap == 0 else 1 if gap > 0 else 2 - gap
    w_res = 2 - sum(w.chroma_shift)
    o_res = 2 - sum(o.chroma_shift)
    chroma = 0 if w_res == o_res else (1 if o_res > w_res else 2)
    return depth, chroma


def pick_output_format(src_fmt: VideoFormat, codec: str, pix_fmt: str | None = None) -> VideoFormat:
    """The output format for ``codec``: ``pix_fmt`` (default: the source's) if the encoder
    takes it at this frame size, else the nearest one it does take, with a warning."""
    wanted = pix_fmt or src_fmt.pix_fmt
    if wanted not in SUPPORTED_PIX_FMTS:
        raise ConfigError(f"output pix_fmt {wanted!r} is not one of {SUPPORTED_PIX_FMTS}")
    try:
        offered = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
    except (av.FFmpegError, ValueError) as exc:
        raise ConfigError(f"unknown video encoder {codec!r}") from exc
    candidates = sorted(
        (f for f in SUPPORTED_PIX_FMTS if f in offered or not offered),
        key=lambda f: _layout_distance(wanted, f),
    )
    for candidate in candidates:
        if _encoder_accepts(codec, src_fmt.width, src_fmt.height, candidate, src_fmt.color.range):
            if candidate != wanted:
                message = (
                    f"{codec} cannot encode {wanted} at {src_fmt.width}x{src_fmt.height}; "
                    f"writing {candidate} instead"
                )
                warnings.warn(message, stacklevel=2)  # the caller of pick_output_format
                log.info(message)
            return replace(src_fmt, pix_fmt=candidate)
    raise ConfigError(
        f"{codec} accepts none of {SUPPORTED_PIX_FMTS} at {src_fmt.width}x{src_fmt.height} "
        f"in range {src_fmt.color.range}"
    )


def _warn(message: str, stacklevel: int = 4) -> None:
    """Tell the user once, as a warning; the log keeps it at info level (at warning level
    the CLI printed every message twice, once from each channel)."""
    # Blame the code that built the VideoWriter (by default through __init__ and a helper).
    warnings.warn(message, stacklevel=stacklevel)
    log.info(message)


def _subtitle_text(payload: bytes, codec: str) -> str:
    """The plain text of one text-subtitle packet (styling dropped)."""
    if codec == "mov_text":  # tx3g: 16-bit big-endian length, text, then style boxes
        payload = payload[2 : 2 + int.from_bytes(payload[:2], "big")]
    text = payload.decode("utf-8", "replace")
    if codec in ("ass", "ssa"):  # ReadOrder,Layer,Style,Name,MarginL,R,V,Effect,Text
        text = text.split(",", 8)[-1].replace("\\N", "\n").replace("\\n", "\n")
        while "{" in text and "}" in text.split("{", 1)[1]:
            head, rest = text.split("{", 1)
            text = head + rest.split("}", 1)[1]
    return text


class _SubtitleConverter:
    """Fallback for text subtitles the container cannot hold: re-wrap the text of each
    event in a text codec it can (SubRip, mov_text or WebVTT); timing is unchanged."""

    def __init__(self, out: av.container.OutputContainer, source: Any, source_codec: str,
                 codec: str, metadata: dict[str, str]) -> None:  # fmt: skip
        self.stream = out.add_mux_stream(codec)
        self.stream.time_base = source.time_base
        self.stream.metadata.update(metadata)
        self.out, self.source_codec, self.codec = out, source_codec, codec

    def feed(self, packet: av.Packet | None) -> None:
        if packet is None:
            return
        text = _subtitle_text(bytes(packet), self.source_codec)
        if not text:
            return  # gap fillers (empty mov_text samples); muxers add their own
        data = text.encode("utf-8")
        if self.codec == "mov_text":
            data = len(data).to_bytes(2, "big") + data
        converted = av.Packet(data)
        converted.time_base = packet.time_base
        converted.pts, converted.dts = packet.pts, packet.dts
        converted.duration = packet.duration
        converted.stream = self.stream
        self.out.mux(converted)


class _AudioTranscoder:
    """Fallback for audio the output container cannot hold: decode, resample, re-encode."""

    def __init__(self, out: av.container.OutputContainer, source: Any, codec: str) -> None:
        src_cc = source.codec_context
        rate = src_cc.sample_rate or 48000
        if codec in ("libopus", "opus") and rate not in (8000, 12000, 16000, 24000, 48000):
            rate = 48000
        self.stream = out.add_stream(codec, rate=rate, layout=src_cc.layout.name)
        cc = self.stream.codec_context
        self.resampler = av.AudioResampler(
            format=cc.format.name,
            layout=cc.layout.name,
            rate=rate,
            frame_size=cc.frame_size or None,
        )
        self.out = out

    def feed(self, packet: av.Packet | None) -> None:
        frames = packet.decode() if packet is not None else [None]
        for frame in frames:
            for resampled in self.resampler.resample(frame):
                self.out.mux(self.stream.encode(resampled))
        if packet is None:
            self.out.mux(self.stream.encode(None))


@dataclass(frozen=True)
class EncodeSpec:
    """What an encoder needs so that its packets are the output stream's own: segment
    workers encode with the spec of the writer that muxes their packets."""

    codec: str
    options: dict[str, str]
    container_format: str  # its global-header choice decides where stream headers go
    fmt: VideoFormat
    time_base: Fraction
    rate: Fraction
    field_order: int = 0  # AVFieldOrder of the output (interlaced input stays interlaced)


def color_tags(fmt: VideoFormat) -> dict[str, int]:
    """The colour tags written on the codec context and on every frame."""
    color = fmt.color
    return {
        "colorspace": tag_value(MATRIX_NAMES, color.matrix),
        "color_range": tag_value(RANGE_NAMES, color.range),
        "color_primaries": tag_value(PRIMARIES_NAMES, color.primaries),
        "color_trc": tag_value(TRANSFER_NAMES, color.transfer),
    }


def add_video_stream(out: av.container.OutputContainer, spec: EncodeSpec) -> Any:
    """A video stream on ``out`` encoding as ``spec`` says; ``ValueError`` when the
    container has no tag for the codec."""
    options = spec.options
    params = options.get("x265-params", "")
    if spec.codec == "libx265" and "log-level" not in params:
        # x265 prints a banner and its settings to stderr; keep the CLI's one-line output.
        options = {**options, "x265-params": ":".join(filter(None, [params, "log-level=error"]))}
    stream = out.add_stream(spec.codec, rate=spec.rate, options=dict(options))
    stream.width, stream.height = spec.fmt.width, spec.fmt.height
    stream.pix_fmt = spec.fmt.pix_fmt
    stream.time_base = spec.time_base
    cc = stream.codec_context
    cc.time_base = spec.time_base
    for attr, value in color_tags(spec.fmt).items():
        setattr(cc, attr, value)
    if spec.field_order in FIELD_ORDER_NAMES:
        cc.field_order = spec.field_order
        if spec.codec == "libx264":  # x264 codes fields only when asked to
            cc.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
    return stream


def chunk_to_frames(chunk: Chunk, spec: EncodeSpec) -> Iterator[av.VideoFrame]:
    """The chunk's frames as ``av.VideoFrame``s in the spec's layout, tags and time base."""
    fmt = chunk.fmt
    tags = color_tags(spec.fmt)
    rescale = chunk.time_base != spec.time_base
    y, u, v = chunk.planes
    for i, pts in enumerate(chunk.pts):
        frame = planes_to_frame((y[i], u[i], v[i]), fmt.pix_fmt)
        if fmt.pix_fmt != spec.fmt.pix_fmt:
            frame = convert_layout(frame, spec.fmt.pix_fmt, spec.fmt.color)
        for attr, value in tags.items():
            setattr(frame, attr, value)
        frame.pts = round(pts * chunk.time_base / spec.time_base) if rescale else pts
        frame.time_base = spec.time_base
        yield frame


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded video packet as plain data (it travels back from a worker)."""

    data: bytes
    pts: int
    dts: int
    duration: int
    time_base: Fraction
    keyframe: bool
    frame: bool = True  # False for a packet that carries no picture

    @classmethod
    def from_packet(cls, packet: av.Packet) -> EncodedPacket:
        dts = packet.dts if packet.dts is not None else packet.pts
        return cls(bytes(packet), packet.pts, dts, packet.duration or 0, packet.time_base,
                   packet.is_keyframe)  # fmt: skip

    def to_packet(self) -> av.Packet:
        packet = av.Packet(self.data)
        packet.time_base = self.time_base
        packet.pts, packet.dts, packet.duration = self.pts, self.dts, self.duration
        packet.is_keyframe = self.keyframe
        return packet


class PacketEncoder:
    """Frames to packets with a writer's ``EncodeSpec``, muxing nothing (segment workers)."""

    def __init__(self, spec: EncodeSpec) -> None:
        self.spec = spec
        # The container is never written: it only gives the stream the output container's
        # flags (global headers), so the packets are the ones the writer's stream expects.
        self._out = av.open(io.BytesIO(), "w", format=spec.container_format)
        self._stream = add_video_stream(self._out, spec)

    def encode(self, chunk: Chunk) -> list[EncodedPacket]:
        packets = []
        for frame in chunk_to_frames(chunk, self.spec):
            packets += self._stream.encode(frame)
        return [EncodedPacket.from_packet(p) for p in packets]

    def finish(self) -> tuple[list[EncodedPacket], bytes | None]:
        """Flush; returns the last packets and the stream headers (extradata)."""
        packets = [EncodedPacket.from_packet(p) for p in self._stream.encode(None)]
        return packets, self._stream.codec_context.extradata


def _warn_about_lost_planes(src: MediaInfo) -> None:
    """Say what the transport format leaves behind: an alpha plane (the stages restore
    colour only) and bits beyond 12. A depth the encoder cannot take is said by
    ``pick_output_format``."""
    source = src.video.source_pix_fmt
    desc = av.VideoFormat(source)
    if any(c.is_alpha for c in desc.components):
        _warn(f"input {source} has an alpha plane; restored without it (the output has none)", 5)
    depth = max(c.bits for c in desc.components)
    if depth > src.video.fmt.bit_depth and depth > 10:
        _warn(f"input {source} is {depth}-bit; restored at {src.video.fmt.bit_depth} bits", 5)


def written_field_order(path: str) -> int:
    """The field order a finished file's video stream declares (0 when unreadable)."""
    try:
        with av.open(path, "r") as written:
            return int(written.streams.video[0].codec_context.field_order or 0)
    except (av.FFmpegError, OSError, IndexError):
        return 0


class VideoWriter:
    """Context manager that encodes ``Chunk``s to ``dst`` and carries the source's other
    streams across. ``close()`` finishes and renames the file; ``abort()`` discards it."""

    def __init__(
        self,
        dst: str | os.PathLike | OutputTarget,
        src: MediaInfo,
        out_fmt: VideoFormat,
        codec: str = "libx264",
        options: dict[str, str] | None = None,
        container_format: str | None = None,
        drop: frozenset[str] = frozenset(),
    ) -> None:
        """``dst``: a path (replaced if it exists) or a checked ``OutputTarget``;
        ``drop``: stream types ("audio", "subtitle", ...) not to carry across."""
        if not isinstance(dst, OutputTarget):
            dst = prepare_output(dst, overwrite=True, inputs=[src.path])
        self.target = dst
        self.dst = self.target.path
        self.drop = drop
        self.src = src
        self.frames_written = 0
        self._first_time: Fraction | None = None  # seconds, of the first frame written
        self.fmt = pick_output_format(out_fmt, codec, out_fmt.pix_fmt)
        self.time_base = src.video.time_base
        self.streaming = self.target.stream
        self.tmp_path = self.target.url
        if self.streaming:  # standard output, a FIFO, a device: nothing to rename
            container_format = container_format or DEFAULT_STREAM_FORMAT
        self._src: av.container.InputContainer | None = None
        try:
            self._out = av.open(self.tmp_path, "w", format=container_format)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.abort()
            raise OutputError(f"cannot write {self.dst}: {exc}") from None
        try:
            check_muxer(self._out.format.name)
        except ValueError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.dst}: {exc}") from None
        if self.streaming and self._out.format.name in SEEKING_MUXERS:
            self.abort()
            raise ConfigError(
                f"{self._out.format.name} cannot be written as a stream (its muxer goes back "
                f"to finish the file): use output.format=matroska or nut for {self.dst}"
            )
        rate = src.video.avg_rate
        if not self._out.format.flags & av.format.Flags.variable_fps.value:
            # AVI-like muxers count time in frames: a fine input time base would store
            # hundreds of empty frames per second. CFR input gets 1/fps (pts rescaled).
            if rate and not src.video.is_vfr:
                self.time_base = 1 / Fraction(rate)
            else:
                _warn(f"{self._out.format.name} cannot keep variable frame timing exactly", 3)
        self._copies: dict[int, Any] = {}  # source stream index -> output stream / transcoder
        self._pending: Iterator[av.Packet] | None = None
        self._lookahead: av.Packet | None = None
        self._last_dts: int | None = None  # of the last pre-encoded packet muxed
        self._closed = False
        try:
            self._stream = self._add_video(codec, options or {})
            self._out.metadata.update(_fresh(src.metadata))
            if src.chapters:
                self._out.set_chapters(src.chapters)
            if any(s.type not in drop for s in src.other_streams):
                self._add_other_streams()
        except Exception:
            self.abort()
            raise

    # -- setup ------------------------------------------------------------------------
    def _add_video(self, codec: str, options: dict[str, str]) -> Any:
        self.spec = EncodeSpec(
            codec=codec,
            options=dict(options),
            container_format=self._out.format.name,
            fmt=self.fmt,
            time_base=self.time_base,
            rate=self.src.video.avg_rate or Fraction(25),
            field_order=self.src.video.field_order,
        )
        _warn_about_lost_planes(self.src)
        if self.src.video.field_order in FIELD_ORDER_NAMES:
            order = FIELD_ORDER_NAMES[self.src.video.field_order]
            _warn(
                f"input is interlaced ({order}): restored as whole frames (both fields "
                f"together) and written interlaced ({order}); deinterlace first for best results"
            )
        try:
            stream = add_video_stream(self._out, self.spec)
        except ValueError as exc:  # the container has no tag for this codec (libx264 in webm)
            fits = [c for c in COMMON_VIDEO_ENCODERS if c in self._out.supported_codecs]
            hint = f"; it takes {', '.join(fits)}" if fits else ""
            raise ConfigError(
                f"{self._out.format.name} cannot hold {codec} video ({exc}): set output.codec "
                f"or pick another container{hint}"
            ) from None
        if self.src.video.rotation:
            stream.set_display_rotation(self.src.video.rotation)
        stream.metadata.update(_fresh(self.src.video.metadata))
        return stream

    def _accepts(self, codec: str | None) -> bool:
        if not codec:
            return False
        supported = self._out.supported_codecs
        # Formats without a codec tag table (mpegts, nut) report nothing: let them try.
        return not supported or codec in supported

    def _text_target(self) -> str | None:
        """The text subtitle codec this container takes, if it takes any we can write."""
        supported = self._out.supported_codecs
        return next((c for c in TEXT_SUBTITLE_TARGETS if c in supported), None)

    def _add_other_streams(self) -> None:
        try:
            self._src = open_input(self.src.path)
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"cannot reopen {self.src.path} to copy streams: {exc}") from None
        check_unchanged(self.src)
        fmt_name = self._out.format.name
        for info in self.src.other_streams:
            source = self._src.streams[info.index]
            label = f"stream #{info.index} ({info.type} {info.codec})"
            if info.type in self.drop:
                log.info("%s: dropped as the config asks", label)
                continue
            if info.type == "attachment":
                if "matroska" in fmt_name:
                    self._out.add_attachment(
                        info.filename or f"attachment{info.index}",
                        source.mimetype or "application/octet-stream",
                        source.data,
                    )
                else:
                    _warn(f"{label}: {fmt_name} cannot hold attachments; dropped")
                continue
            if info.picture:
                label = f"stream #{info.index} (cover art {info.codec})"
                if "matroska" in fmt_name and (data := picture_bytes(self.src.path, info.index)):
                    self._out.add_attachment(*attachment_name(info), data)
                    continue
                if fmt_name not in COVER_ART_FORMATS or not self._accepts(info.codec):
                    _warn(f"{label}: {fmt_name} cannot hold cover art; dropped")
                    continue
            elif info.type == "video" and self._accepts(info.codec):
                _warn(
                    f"{label}: copied as it is, not restored (only the first video stream, "
                    f"#{self.src.video.index}, is)"
                )
            if info.type == "data" and info.codec is None and "timecode" in info.metadata:
                # A QuickTime timecode track (tmcd): kept as the video's timecode, from
                # which MOV/MP4 muxers write their own track and Matroska a tag.
                self._stream.metadata.setdefault("timecode", info.metadata["timecode"])
                log.info("%s: timecode track, carried as the video's timecode", label)
                continue
            if info.type == "data" and info.codec is None and self.src.chapters:
                # mov/mp4 keep chapters in a codec-less text track; they are copied as
                # chapters above, and the muxer writes its own track for them.
                log.info("%s: chapter track, carried as chapters", label)
                continue
            if self._accepts(info.codec):
                out_stream = self._out.add_stream_from_template(source)
                out_stream.metadata.update(_fresh(info.metadata))
                with contextlib.suppress(AttributeError, ValueError):
                    out_stream.disposition = source.disposition
                self._copies[info.index] = out_stream
            elif info.type == "audio" and info.codec is not None:
                codec = self._out.default_audio_codec
                if codec in ("opus", "vorbis") and "lib" + codec in av.codecs_available:
                    codec = "lib" + codec
                if not codec or codec == "none":
                    _warn(f"{label}: {fmt_name} holds no audio; dropped")
                    continue
                _warn(f"{label}: {fmt_name} cannot hold {info.codec}; transcoding to {codec}")
                self._copies[info.index] = _AudioTranscoder(self._out, source, codec)
            elif info.type == "subtitle" and info.codec in TEXT_SUBTITLES and self._text_target():
                codec = self._text_target()
                _warn(f"{label}: {fmt_name} cannot hold {info.codec}; converting to {codec}")
                self._copies[info.index] = _SubtitleConverter(
                    self._out, source, info.codec, codec, _fresh(info.metadata)
                )
            else:
                _warn(f"{label}: {fmt_name} cannot hold {info.codec}; dropped")
        if self._copies:
            self._pending = self._src.demux([self._src.streams[i] for i in self._copies])

    # -- writing ----------------------------------------------------------------------
    def write(self, chunk: Chunk) -> None:
        """Encode the chunk's frames in the given order, each with its own pts."""
        if self._closed:
            raise OutputError("write() after close()")
        fmt = chunk.fmt
        if (fmt.width, fmt.height) != (self.fmt.width, self.fmt.height):
            raise ValueError(
                f"chunk is {fmt.width}x{fmt.height}, writer expects {self.fmt.width}x"
                f"{self.fmt.height}"
            )
        try:
            for frame in chunk_to_frames(chunk, self.spec):
                if self._first_time is None:
                    self._first_time = frame.pts * self.time_base
                self._mux_video(self._stream.encode(frame))
                self.frames_written += 1
        except av.FFmpegError as exc:
            raise OutputError(
                f"encoding {self.dst} failed at frame {self.frames_written}: {exc}"
            ) from None

    def mux_encoded(self, packets: Sequence[EncodedPacket], extradata: bytes | None) -> None:
        """Mux packets a ``PacketEncoder`` made from this writer's ``spec`` (segment mode).

        Each segment starts its own closed GOP; its decode timestamps may start below the
        previous segment's last one (the encoder's B-frame delay), so they are lifted just
        enough to increase, never past a packet's own pts. Presentation times are kept.
        """
        if self._closed:
            raise OutputError("mux_encoded() after close()")
        try:
            for record in packets:
                packet = record.to_packet()
                if self._last_dts is not None and packet.dts <= self._last_dts:
                    packet.dts = self._last_dts + 1
                    if packet.pts < packet.dts:
                        raise OutputError(
                            f"segment packets at pts {packet.pts} cannot follow the previous "
                            "segment in decode order"
                        )
                self._last_dts = packet.dts
                packet.stream = self._stream
                if self._first_time is None:
                    self._first_time = packet.pts * packet.time_base
                self._mux_video([packet])
                if self._stream.codec_context.extradata != extradata:
                    raise OutputError(
                        "a segment encoder's stream headers differ from the output's "
                        "(encoder settings differ between workers)"
                    )
        except av.FFmpegError as exc:
            raise OutputError(f"muxing {self.dst} failed: {exc}") from None
        self.frames_written += sum(1 for p in packets if p.frame)

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._out.mux(packet)
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is not None and packet.time_base is not None:
                self._copy_until(float(stamp * packet.time_base))

    def _copy_until(self, seconds: float) -> None:
        """Mux the source's other packets up to ``seconds`` (all of them for ``inf``)."""
        while self._pending is not None:
            packet = self._lookahead
            if packet is None:
                try:
                    packet = next(self._pending)
                except StopIteration:
                    self._pending = None
                    break
                except av.FFmpegError as exc:
                    _warn(f"stopped copying other streams early (read error: {exc})")
                    self._pending = None
                    break
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is not None and float(stamp * packet.time_base) > seconds:
                self._lookahead = packet
                return
            self._lookahead = None
            self._copy_packet(packet)

    def _copy_packet(self, packet: av.Packet) -> None:
        target = self._copies[packet.stream.index]
        if not packet.size:
            return
        if isinstance(target, (_AudioTranscoder, _SubtitleConverter)):
            target.feed(packet)
            return
        packet.stream = target
        self._out.mux(packet)

    # -- finishing --------------------------------------------------------------------
    def close(self) -> None:
        """Flush the encoder, copy the rest of the other streams, and publish the file."""
        if self._closed:
            return
        try:
            self._mux_video(self._stream.encode(None))
            self._copy_until(math.inf)
            for target in self._copies.values():
                if isinstance(target, (_AudioTranscoder, _SubtitleConverter)):
                    target.feed(None)
            self._out.close()
        except av.FFmpegError as exc:
            self.abort()
            raise OutputError(f"finishing {self.dst} failed: {exc}") from None
        except BaseException:
            self.abort()
            raise
        self._closed = True
        if self._src is not None:
            self._src.close()
        if self.streaming:
            return
        self._check_what_players_see()
        self.target.publish()

    def _check_what_players_see(self) -> None:
        """Warn when the finished file differs from what was written in ways a muxer does
        silently: lost colour tags (AVI with FFV1: players then guess other colours), or
        every timestamp shifted (Matroska cannot start below zero, and copied AAC often
        starts at a negative pts; relative timing and A/V sync are kept)."""
        color = self.fmt.color
        try:
            with av.open(self.tmp_path, "r") as written:
                frame = next(written.decode(video=0), None)
        except (av.FFmpegError, OSError):
            return  # nothing to learn; the file was written without errors
        if frame is None:
            return
        if self._first_time is not None and frame.pts is not None:
            shift = float(frame.pts * frame.time_base - self._first_time)
            if abs(shift) > 1e-3:
                _warn(
                    f"{self._out.format.name} shifted every timestamp by {shift:+.3f} s "
                    "(it cannot start below zero); relative timing and A/V sync are kept"
                )
        order = FIELD_ORDER_NAMES.get(self.spec.field_order)
        if order and written_field_order(self.tmp_path) != self.spec.field_order:
            _warn(
                f"{self._out.format.name} with {self._stream.codec_context.name} lost the "
                f"interlacing flag ({order}); players will take it as progressive"
            )
        matrix = MATRIX_NAMES.get(int(frame.colorspace)) or assumed_color(self.fmt.height)[0]
        color_range = RANGE_NAMES.get(int(frame.color_range), "tv")
        same_601 = {matrix, color.matrix} <= {"smpte170m", "bt470bg"}
        if (matrix != color.matrix and not same_601) or color_range != color.range:
            _warn(
                f"{self._out.format.name} with {self._stream.codec_context.name} lost the colour "
                f"tags ({color.matrix}, range {color.range}); players will assume {matrix}, "
                f"range {color_range}"
            )

    def abort(self) -> None:
        """Close without finishing and remove the partial file (errors are irrelevant now)."""
        self._closed = True
        for container in (getattr(self, "_out", None), self._src):
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
        self.target.discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
