"""Inputs built from ``media_factory`` clips for the cases users meet in the wild: cover
art, image attachments, a second video stream, an audio file with a picture."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np


def png_bytes(size: int = 16, value: int = 128) -> bytes:
    """A small PNG image (the kind cover art and attachments are)."""
    frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), value, np.uint8), format="rgb24")
    cc = av.CodecContext.create("png", "w")
    cc.width = cc.height = size
    cc.pix_fmt = "rgb24"
    cc.time_base = Fraction(1, 25)
    return b"".join(bytes(p) for p in cc.encode(frame) + cc.encode(None))


def _add_cover(out: av.container.OutputContainer) -> av.stream.Stream:
    stream = out.add_stream("png", rate=1)
    stream.width = stream.height = 16
    stream.pix_fmt = "rgb24"
    stream.disposition = av.stream.Disposition.attached_pic
    return stream


def _mux_cover(out: av.container.OutputContainer, stream: av.stream.Stream, data: bytes) -> None:
    packet = av.Packet(data)
    packet.stream = stream
    packet.pts = packet.dts = 0
    packet.time_base = Fraction(1, 90000)
    out.mux(packet)


def make_song_with_cover(path: str | os.PathLike, codec: str = "libmp3lame") -> str:
    """An audio file (``song.mp3``) with cover art: its only video stream is a picture."""
    path = os.fspath(path)
    with av.open(path, "w") as out:
        audio = out.add_stream(codec, rate=48000, layout="stereo")
        cover = _add_cover(out)
        _mux_cover(out, cover, png_bytes())
        cc = audio.codec_context
        samples = cc.frame_size or 1024
        for i in range(20):
            frame = av.AudioFrame(format=cc.format.name, layout="stereo", samples=samples)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = 48000, i * samples
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def remux_with(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    attachment: bytes | None = None,
    cover: bytes | None = None,
    second_video: str | os.PathLike | None = None,
) -> str:
    """``src``'s streams copied into ``dst``, plus an image attachment (Matroska), cover
    art (an ``attached_pic`` stream, MP4) and/or the video of ``second_video`` as a
    second video stream."""
    dst = os.fspath(dst)
    inputs = [av.open(os.fspath(src))] + (
        [av.open(os.fspath(second_video))] if second_video else []
    )
    try:
        with av.open(dst, "w") as out:
            streams = {}
            for n, container in enumerate(inputs):
                for s in container.streams if n == 0 else container.streams.video:
                    copy = out.add_stream_from_template(s)
                    copy.disposition = s.disposition
                    streams[(n, s.index)] = copy
            if attachment is not None:
                out.add_attachment("cover.png", "image/png", attachment)
            cover_stream = _add_cover(out) if cover is not None else None
            for n, container in enumerate(inputs):
                wanted = container.streams if n == 0 else container.streams.video
                for packet in container.demux(list(wanted)):
                    if packet.size:
                        packet.stream = streams[(n, packet.stream.index)]
                        out.mux(packet)
            if cover_stream is not None and cover is not None:
                _mux_cover(out, cover_stream, cover)
    finally:
        for container in inputs:
            container.close()
    return dst


def shifted(src: str | os.PathLike, dst: str | os.PathLike, seconds: float) -> str:
    """``src``'s video packets with every timestamp moved by ``seconds``: a negative shift
    into MP4 is what ``ffmpeg -ss T -c copy`` writes (an edit list whose pre-roll frames,
    from the keyframe before T, are decoded but not shown); a positive one into Matroska
    is a file whose first frame is late (a recording cut from a longer one)."""
    dst = os.fspath(dst)
    with av.open(os.fspath(src)) as source, av.open(dst, "w") as out:
        stream = source.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if not packet.size:
                continue
            offset = round(seconds / packet.time_base)
            packet.pts += offset
            if packet.dts is not None:
                packet.dts += offset
            packet.stream = copy
            out.mux(packet)
    return dst


def make_interlaced(path: str | os.PathLike, frames: int = 6) -> str:
    """Interlaced H.264, top field first (what ``-flags +ildct+ilme -field_order tt``
    writes): the container and every frame say so."""
    path = os.fspath(path)
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        cc = stream.codec_context
        cc.field_order = 2  # AV_FIELD_TT
        cc.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # bt709
        for i in range(frames):
            rgb = np.full((48, 64, 3), 30 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def make_ffv1(path: str | os.PathLike, pix_fmt: str, frames: int = 4) -> str:
    """FFV1 in Matroska in any planar ``pix_fmt`` (12-bit, alpha ...): every plane a
    moving ramp over the format's whole code range, tagged BT.709."""
    path = os.fspath(path)
    desc = av.VideoFormat(pix_fmt)
    depth = desc.components[0].bits
    dtype = np.dtype("<u2") if depth > 8 else np.dtype(np.uint8)
    with av.open(path, "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        cc = stream.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # bt709
        for i in range(frames):
            frame = av.VideoFrame(64, 48, pix_fmt)
            for n, plane in enumerate(frame.planes):
                rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size).view(dtype)
                h, w = plane.height, plane.width
                ramp = np.arange(w)[None, :] * 7 + np.arange(h)[:, None] * 3 + 11 * i + 5 * n
                rows[:h, :w] = ramp % (1 << depth)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def make_size_change(folder: str | os.PathLike) -> str:
    """MPEG-TS whose H.264 stream changes from 64x48 to 32x32 after 6 frames (a new
    SPS mid-stream, as spliced broadcasts and some cameras write)."""
    from tests.media_factory import make_clip

    folder = os.fspath(folder)
    first = make_clip(os.path.join(folder, "a.ts"), width=64, height=48, frames=6, matrix="bt709")
    then = make_clip(os.path.join(folder, "b.ts"), width=32, height=32, frames=6, matrix="bt709")
    path = os.path.join(folder, "spliced.ts")
    with av.open(first) as a, av.open(then) as b, av.open(path, "w") as out:
        copy = out.add_stream_from_template(a.streams.video[0])
        last = 0
        for packet in a.demux(a.streams.video[0]):
            if packet.size:
                packet.stream, last = copy, max(last, packet.pts)
                out.mux(packet)
        offset = None
        for packet in b.demux(b.streams.video[0]):
            if packet.size:
                offset = last + 3600 - packet.dts if offset is None else offset
                packet.pts += offset
                packet.dts += offset
                packet.stream = copy
                out.mux(packet)
    return path


def make_mov_with_timecode(path: str | os.PathLike) -> str:
    """QuickTime with a timecode track (``tmcd``, a data stream without a codec)."""
    path = os.fspath(path)
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.colorspace = 1  # bt709
        stream.metadata["timecode"] = "01:00:00:00"  # the muxer adds the tmcd track
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
