"""Fallbacks for streams the output container cannot hold as they are.

Audio is transcoded and text subtitles re-wrapped in a text codec the container takes;
the muxer (``pipeline.media.mux``) copies everything else as packets.
"""

from __future__ import annotations

from typing import Any

import av

#: Text subtitle codecs whose events ``SubtitleConverter`` can read.
TEXT_SUBTITLES = {"subrip", "text", "ass", "ssa", "mov_text", "webvtt"}


#: Text subtitle codecs it can write, in order of preference.
TEXT_SUBTITLE_TARGETS = ("subrip", "mov_text", "webvtt")


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


class SubtitleConverter:
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


class AudioTranscoder:
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
