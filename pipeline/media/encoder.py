"""Frames to encoded packets, without a container.

The muxer's video stream and the segment workers encode with the same ``EncodeSpec``, so
packets made on a worker are the output stream's own.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from pipeline.frames import Chunk, VideoFormat
from pipeline.media.planes import FIELD_ORDER_NAMES, color_tags, convert_layout, planes_to_frame


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
    stream.pix_fmt = spec.fmt.layout
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
    for i, pts in enumerate(chunk.pts):
        frame = planes_to_frame([p[i] for p in chunk.planes], fmt.layout)
        if fmt.layout != spec.fmt.layout:
            frame = convert_layout(frame, spec.fmt.layout, spec.fmt.color)
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
