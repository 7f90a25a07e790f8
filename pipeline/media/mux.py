"""Encode restored YUV chunks and mux them with the source's other streams, copied as packets.

The writer builds ``av.VideoFrame``s straight from the chunk planes (no RGB round trip),
keeps every frame's pts in the input time base (codec context too: libx264's VFR flush
needs it), writes the colour tags and display rotation back, and interleaves the source's
audio / subtitle / data packets by time as the video packets come out, so memory stays
flat. A stream the output container cannot hold is transcoded (audio) or dropped, always
with a warning. The file is written under a temporary name and renamed on ``close()``
(``pipeline.media.output_path``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

import av

from pipeline.errors import ConfigError, InputError, OutputError
from pipeline.frames import Chunk, VideoFormat
from pipeline.media.encoder import EncodedPacket, EncodeSpec, add_video_stream, chunk_to_frames
from pipeline.media.output_checks import check_written, notice, warn_interlaced, warn_lost_planes
from pipeline.media.output_format import pick_output_format
from pipeline.media.output_options import check_muxer
from pipeline.media.output_path import OutputTarget, prepare_output
from pipeline.media.pictures import COVER_ART_FORMATS, attachment_name, picture_bytes
from pipeline.media.probe import MediaInfo, check_unchanged, open_input
from pipeline.media.stream_copy import (
    TEXT_SUBTITLE_TARGETS,
    TEXT_SUBTITLES,
    AudioTranscoder,
    SubtitleConverter,
)
from pipeline.media.streaming import DEFAULT_STREAM_FORMAT, SEEKING_MUXERS

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


def _fresh(metadata: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in metadata.items()
        if k.lower() not in STALE_METADATA and not k.lower().startswith("number_of_frames")
    }


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
        self.fmt = pick_output_format(out_fmt, codec, out_fmt.pix_fmt, options)
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
                notice(f"{self._out.format.name} cannot keep variable frame timing exactly", 3)
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
        warn_lost_planes(self.src, self.fmt, codec, options)
        warn_interlaced(self.src)
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
                    notice(f"{label}: {fmt_name} cannot hold attachments; dropped")
                continue
            if info.picture:
                label = f"stream #{info.index} (cover art {info.codec})"
                if "matroska" in fmt_name and (data := picture_bytes(self.src.path, info.index)):
                    self._out.add_attachment(*attachment_name(info), data)
                    continue
                if fmt_name not in COVER_ART_FORMATS or not self._accepts(info.codec):
                    notice(f"{label}: {fmt_name} cannot hold cover art; dropped")
                    continue
            elif info.type == "video" and self._accepts(info.codec):
                notice(
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
                    notice(f"{label}: {fmt_name} holds no audio; dropped")
                    continue
                notice(f"{label}: {fmt_name} cannot hold {info.codec}; transcoding to {codec}")
                self._copies[info.index] = AudioTranscoder(self._out, source, codec)
            elif info.type == "subtitle" and info.codec in TEXT_SUBTITLES and self._text_target():
                codec = self._text_target()
                notice(f"{label}: {fmt_name} cannot hold {info.codec}; converting to {codec}")
                self._copies[info.index] = SubtitleConverter(
                    self._out, source, info.codec, codec, _fresh(info.metadata)
                )
            else:
                notice(f"{label}: {fmt_name} cannot hold {info.codec}; dropped")
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
                    notice(f"stopped copying other streams early (read error: {exc})")
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
        if isinstance(target, (AudioTranscoder, SubtitleConverter)):
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
                if isinstance(target, (AudioTranscoder, SubtitleConverter)):
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
        check_written(
            self.tmp_path,
            self.fmt,
            self.spec.field_order,
            self._first_time,
            self._out.format.name,
            self._stream.codec_context.name,
        )
        self.target.publish()

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
