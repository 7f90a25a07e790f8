"""Decode -> encode round trips: pixels, time, colour tags, and the streams carried across."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.frames import ColorInfo
from pipeline.media.decode import iter_chunks
from pipeline.media.mux import VideoWriter
from pipeline.media.probe import probe
from tests.media_factory import SUBTITLE_EVENTS, make_clip

TAGS_709 = {"matrix": "bt709", "range": "tv", "primaries": "bt709", "transfer": "bt709"}
X265_QUIET = {"x265-params": "log-level=error"}


def quiet_probe(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return probe(path)


def transcode(src, dst, codec="ffv1", options=None, out_fmt=None, chunk_frames=5, **kwargs):
    """Decode ``src`` and write it unchanged: the pipeline with no stage."""
    info = quiet_probe(src)
    with VideoWriter(dst, info, out_fmt or info.video.fmt, codec, options, **kwargs) as writer:
        for chunk in iter_chunks(info, chunk_frames):
            writer.write(chunk)
    assert writer.frames_written == (info.video.frame_count or writer.frames_written)
    return info, quiet_probe(dst)


def planes_and_pts(info):
    chunks = list(iter_chunks(info, 64))
    planes = [np.concatenate([c.planes[k] for c in chunks]) for k in range(3)]
    return planes, [p for c in chunks for p in c.pts]


def seconds(info, pts):
    return [float(p * info.video.time_base) for p in pts]


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def packets(path, kind):
    """(pts, bytes) of every non-empty packet of the first stream of ``kind``."""
    with av.open(os.fspath(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [
            (float(p.pts * p.time_base) if p.pts is not None else None, bytes(p))
            for p in container.demux(stream)
            if p.size
        ]


# -- pixels and time ----------------------------------------------------------------------


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le", "yuv444p"])
def test_ffv1_round_trip_is_bit_exact(tmp_path, pix_fmt):
    src = make_clip(tmp_path / "src.mkv", pix_fmt=pix_fmt, vfr=True, **TAGS_709)
    info, out = transcode(src, tmp_path / "out.mkv", "ffv1")
    (a, pts_a), (b, pts_b) = planes_and_pts(info), planes_and_pts(out)
    assert out.video.fmt == info.video.fmt
    assert pts_a == pts_b
    for pa, pb in zip(a, b, strict=True):
        assert np.array_equal(pa, pb)


def test_ffv1_odd_size_420_is_bit_exact(tmp_path):
    src = make_clip(tmp_path / "src.mkv", codec="ffv1", width=63, height=47)
    info, out = transcode(src, tmp_path / "out.mkv", "ffv1")
    for pa, pb in zip(planes_and_pts(info)[0], planes_and_pts(out)[0], strict=True):
        assert np.array_equal(pa, pb)


def test_libx264_low_crf_keeps_quality_and_timestamps(tmp_path):
    src = make_clip(tmp_path / "src.mp4", vfr=True, frames=16, **TAGS_709)
    info, out = transcode(src, tmp_path / "out.mp4", "libx264", {"crf": "8", "preset": "fast"})
    (a, pts_a), (b, pts_b) = planes_and_pts(info), planes_and_pts(out)
    assert seconds(info, pts_a) == pytest.approx(seconds(out, pts_b), abs=1e-3)
    assert out.video.is_vfr
    assert psnr(a[0], b[0], 255) > 45
    assert psnr(a[1], b[1], 255) > 45


def test_10bit_in_gives_10bit_out_with_libx264(tmp_path):
    src = make_clip(tmp_path / "src.mkv", pix_fmt="yuv420p10le", **TAGS_709)
    info, out = transcode(src, tmp_path / "out.mp4", "libx264", {"crf": "10"})
    assert out.video.source_pix_fmt == "yuv420p10le" and out.video.fmt.bit_depth == 10
    a, b = planes_and_pts(info)[0], planes_and_pts(out)[0]
    assert b[0].max() > 255
    assert psnr(a[0], b[0], 1023) > 45


def test_10bit_with_libx265(tmp_path):
    src = make_clip(tmp_path / "src.mkv", pix_fmt="yuv420p10le", **TAGS_709)
    info, out = transcode(src, tmp_path / "out.mkv", "libx265", {"crf": "8", **X265_QUIET})
    assert out.video.codec == "hevc" and out.video.fmt.pix_fmt == "yuv420p10le"
    assert psnr(planes_and_pts(info)[0][0], planes_and_pts(out)[0][0], 1023) > 40


def test_libx265_is_quiet_unless_asked(tmp_path, capfd):
    """x265 printed ~20 banner and setting lines per run; its own params still apply."""
    src = make_clip(tmp_path / "src.mkv", frames=4, **TAGS_709)
    transcode(src, tmp_path / "out.mkv", "libx265", {"x265-params": "keyint=2"})
    assert "x265 [" not in capfd.readouterr().err
    transcode(src, tmp_path / "loud.mkv", "libx265", {"x265-params": "log-level=info"})
    assert "x265 [info]" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("codec", "ext"), [("libvpx-vp9", ".webm"), ("mpeg4", ".avi"), ("libsvtav1", ".mkv")]
)
def test_other_codecs_and_containers(tmp_path, codec, ext):
    src = make_clip(tmp_path / "src.mkv", frames=8, **TAGS_709)
    info, out = transcode(src, tmp_path / f"out{ext}", codec)
    assert len(planes_and_pts(out)[1]) == 8  # decoded, not what the header claims
    assert psnr(planes_and_pts(info)[0][0], planes_and_pts(out)[0][0], 255) > 28


def test_frames_are_written_in_given_order_with_their_pts(tmp_path):
    src = make_clip(tmp_path / "src.mkv", frames=10)
    info = quiet_probe(src)
    chunks = list(iter_chunks(info, 3))
    with VideoWriter(tmp_path / "out.mkv", info, info.video.fmt, "ffv1") as writer:
        for chunk in chunks:
            writer.write(chunk)
    assert writer.frames_written == 10
    assert planes_and_pts(quiet_probe(tmp_path / "out.mkv"))[1] == [
        p for c in chunks for p in c.pts
    ]


# -- output format choice -----------------------------------------------------------------


def test_full_range_source_can_be_written_as_mjpeg(tmp_path):
    """Regression: the encoder check opened MJPEG in limited range, which it refuses, so
    no pixel format fitted and a full-range MJPEG clip could not be written as MJPEG."""
    src = make_clip(tmp_path / "src.avi", codec="mjpeg", pix_fmt="yuvj420p", frames=4)
    info, out = transcode(src, tmp_path / "out.avi", "mjpeg")
    assert (out.video.codec, out.video.source_pix_fmt) == ("mjpeg", "yuvj420p")
    assert out.video.fmt.color.range == "pc"
    assert psnr(planes_and_pts(info)[0][0], planes_and_pts(out)[0][0], 255) > 30


def test_10bit_to_8bit_only_encoder_converts_depth(tmp_path):
    src = make_clip(tmp_path / "src.mkv", pix_fmt="yuv420p10le", **TAGS_709)
    info = quiet_probe(src)
    with pytest.warns(UserWarning, match="writing yuv420p"):
        writer = VideoWriter(tmp_path / "out.mkv", info, info.video.fmt, "mpeg4", {"b": "4M"})
    with writer:
        for chunk in iter_chunks(info, 4):
            writer.write(chunk)
    out = quiet_probe(tmp_path / "out.mkv")
    a, b = planes_and_pts(info)[0][0], planes_and_pts(out)[0][0]
    assert out.video.fmt.pix_fmt == "yuv420p"
    assert psnr(a / 4.0, b, 255) > 40


def test_odd_size_420_with_libx264_goes_444(tmp_path):
    src = make_clip(tmp_path / "src.mkv", codec="ffv1", width=63, height=47)
    with pytest.warns(UserWarning, match="yuv444p"):
        _, out = transcode(src, tmp_path / "out.mp4", "libx264", {"crf": "10"})
    assert (out.video.width, out.video.height, out.video.fmt.pix_fmt) == (63, 47, "yuv444p")


# -- colour tags ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "ext"), [("libx264", ".mp4"), ("ffv1", ".mkv"), ("libx265", ".mkv")]
)
def test_colour_tags_preserved(tmp_path, codec, ext):
    tags = {"matrix": "bt2020nc", "range": "pc", "primaries": "bt2020", "transfer": "smpte2084"}
    src = make_clip(tmp_path / "src.mkv", pix_fmt="yuv420p10le", **tags)
    options = X265_QUIET if codec == "libx265" else {}
    info, out = transcode(src, tmp_path / f"out{ext}", codec, options)
    assert out.video.fmt.color == info.video.fmt.color
    color = out.video.fmt.color
    assert (color.matrix, color.range, color.primaries, color.transfer) == tuple(tags.values())


def test_untagged_input_is_written_with_the_assumed_tags(tmp_path):
    src = make_clip(tmp_path / "src.mp4")
    _, out = transcode(src, tmp_path / "out.mp4", "libx264")
    color = out.video.fmt.color
    assert (color.matrix, color.range, color.assumed) == ("smpte170m", "tv", False)


def test_writer_uses_out_fmt_colour(tmp_path):
    src = make_clip(tmp_path / "src.mkv", **TAGS_709)
    info = quiet_probe(src)
    new = replace(info.video.fmt, color=ColorInfo("smpte170m", "tv", "smpte170m", "smpte170m"))
    with VideoWriter(tmp_path / "out.mkv", info, new, "ffv1") as writer:
        for chunk in iter_chunks(info, 12):
            writer.write(replace(chunk, fmt=new))
    assert quiet_probe(tmp_path / "out.mkv").video.fmt.color.matrix == "smpte170m"


# -- other streams ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src_ext", "dst_ext", "audio"),
    [
        (".mkv", ".mkv", "aac"),
        (".mp4", ".mp4", "aac"),
        (".mp4", ".mkv", "aac"),
        (".mkv", ".mp4", "opus"),
        (".mkv", ".mkv", "pcm"),
        (".mov", ".mov", "pcm"),
    ],
)
def test_audio_packets_copied_byte_identical(tmp_path, src_ext, dst_ext, audio):
    src = make_clip(tmp_path / f"src{src_ext}", audio=audio, frames=24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to fall back on: no warning expected
        # except that Matroska shifts the file when copied AAC starts below zero
        warnings.filterwarnings("ignore", "matroska shifted every timestamp")
        transcode(src, tmp_path / f"out{dst_ext}", "libx264")
    a, b = packets(src, "audio"), packets(tmp_path / f"out{dst_ext}", "audio")
    assert len(a) == len(b) > 10
    assert [data for _, data in a] == [data for _, data in b]


def test_audio_and_video_are_interleaved(tmp_path):
    src = make_clip(tmp_path / "src.mkv", audio=True, frames=48)
    transcode(src, tmp_path / "out.mkv", "libx264")
    with av.open(os.fspath(tmp_path / "out.mkv")) as container:
        order = [p.stream.type for p in container.demux() if p.size]
    first_audio = order.index("audio")
    assert first_audio < order.count("video") / 2  # not all video first, then all audio


@pytest.mark.parametrize("kind", ["srt", "ass"])
def test_subtitles_copied_in_mkv(tmp_path, kind):
    src = make_clip(tmp_path / "src.mkv", subtitles=kind, audio=True)
    info, out = transcode(src, tmp_path / "out.mkv", "libx264")
    assert [s.type for s in out.other_streams] == ["audio", "subtitle"]
    assert out.other_streams[1].codec == info.other_streams[1].codec
    assert out.other_streams[1].language == "eng"
    assert packets(src, "subtitle") == packets(tmp_path / "out.mkv", "subtitle")


def subtitle_texts(path) -> list[str]:
    """Event texts of the first subtitle stream, whatever its text codec."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.subtitles[0]
        codec = stream.codec_context.codec.canonical_name
        texts = []
        for packet in container.demux(stream):
            data = bytes(packet)
            if codec == "mov_text":
                data = data[2 : 2 + int.from_bytes(data[:2], "big")]
            if data:  # mp4 fills the gaps between events with empty samples
                texts.append(data.decode())
        return texts


@pytest.mark.parametrize(
    ("kind", "dst_ext", "codec"),
    [
        ("srt", ".mp4", "mov_text"),
        ("ass", ".mp4", "mov_text"),
        ("srt", ".webm", "webvtt"),
    ],
)
def test_text_subtitles_converted_where_the_codec_does_not_fit(tmp_path, kind, dst_ext, codec):
    src = make_clip(tmp_path / "src.mkv", subtitles=kind)
    video = "libvpx-vp9" if dst_ext == ".webm" else "libx264"
    with pytest.warns(UserWarning, match=f"converting to {codec}"):
        _, out = transcode(src, tmp_path / f"out{dst_ext}", video)
    assert [(s.type, s.codec) for s in out.other_streams] == [("subtitle", codec)]
    assert subtitle_texts(tmp_path / f"out{dst_ext}") == [text for _, _, text in SUBTITLE_EVENTS]
    times = [t for t, _ in packets(tmp_path / f"out{dst_ext}", "subtitle")]
    assert times[0] == pytest.approx(SUBTITLE_EVENTS[0][0], abs=1e-3)


def test_mov_text_from_mp4_into_mkv_becomes_subrip(tmp_path):
    with pytest.warns(UserWarning):
        transcode(make_clip(tmp_path / "src.mkv", subtitles=True), tmp_path / "mid.mp4", "ffv1")
    with pytest.warns(UserWarning, match="converting to subrip"):
        _, out = transcode(tmp_path / "mid.mp4", tmp_path / "out.mkv", "ffv1")
    assert [(s.type, s.codec) for s in out.other_streams] == [("subtitle", "subrip")]
    assert subtitle_texts(tmp_path / "out.mkv") == [text for _, _, text in SUBTITLE_EVENTS]


def test_video_codec_the_container_cannot_hold_is_a_config_error(tmp_path):
    """Regression: libx264 into .webm was a bare ValueError (CLI: internal error, exit 1)."""
    src = make_clip(tmp_path / "src.mp4", frames=4)
    with pytest.raises(ConfigError, match=r"webm cannot hold libx264.*libvpx-vp9"):
        transcode(src, tmp_path / "out.webm", "libx264")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.mp4"]


def test_aac_into_webm_is_transcoded_with_warning(tmp_path):
    src = make_clip(tmp_path / "src.mp4", audio=True, frames=24)
    with pytest.warns(UserWarning, match="transcoding to libopus"):
        _, out = transcode(src, tmp_path / "out.webm", "libvpx-vp9")
    assert [(s.type, s.codec) for s in out.other_streams] == [("audio", "opus")]
    assert out.duration == pytest.approx(1.0, abs=0.1)


def test_attachments_chapters_metadata_rotation_copied(tmp_path):
    src = make_clip(
        tmp_path / "src.mkv",
        attachment=True,
        chapters=True,
        rotation=-90,
        metadata={"title": "Storm"},
    )
    info, out = transcode(src, tmp_path / "out.mkv", "libx264")
    assert out.video.rotation == -90
    assert out.metadata["title"] == "Storm"
    assert [c["metadata"] for c in out.chapters] == [c["metadata"] for c in info.chapters]
    assert [(c["start"], c["end"]) for c in out.chapters] == [
        (c["start"], c["end"]) for c in info.chapters
    ]
    assert [(s.type, s.filename) for s in out.other_streams] == [("attachment", "notes.txt")]


def test_attachment_dropped_from_mp4_with_warning(tmp_path):
    src = make_clip(tmp_path / "src.mkv", attachment=True, chapters=True)
    with pytest.warns(UserWarning, match="attachments; dropped"):
        _, out = transcode(src, tmp_path / "out.mp4", "libx264")
    assert len(out.chapters) == 2


def test_dropping_every_other_stream_type_writes_video_only(tmp_path):
    src = make_clip(tmp_path / "src.mkv", audio=True, subtitles=True)
    drop = frozenset({"audio", "subtitle"})
    _, out = transcode(src, tmp_path / "out.mkv", "libx264", drop=drop)
    assert out.other_streams == []


# -- failure handling ---------------------------------------------------------------------


def test_abort_leaves_nothing(tmp_path):
    src = make_clip(tmp_path / "src.mkv")
    info = quiet_probe(src)
    dst = tmp_path / "out.mkv"
    with pytest.raises(RuntimeError), VideoWriter(dst, info, info.video.fmt, "ffv1") as writer:
        writer.write(next(iter_chunks(info, 4)))
        raise RuntimeError("stage failed")
    assert sorted(os.listdir(tmp_path)) == ["src.mkv"]


def test_output_appears_only_when_complete(tmp_path):
    src = make_clip(tmp_path / "src.mkv")
    info = quiet_probe(src)
    dst = tmp_path / "out.mkv"
    writer = VideoWriter(dst, info, info.video.fmt, "ffv1")
    writer.write(next(iter_chunks(info, 4)))
    assert not dst.exists()
    writer.close()
    assert dst.exists() and not os.path.exists(writer.tmp_path)


def test_chunk_time_base_is_rescaled(tmp_path):
    src = make_clip(tmp_path / "src.mkv", frames=4)
    info = quiet_probe(src)
    chunk = next(iter_chunks(info, 4))
    finer = replace(chunk, pts=[p * 90 for p in chunk.pts], time_base=chunk.time_base / 90)
    with VideoWriter(tmp_path / "out.mkv", info, info.video.fmt, "ffv1") as writer:
        writer.write(finer)
    assert planes_and_pts(quiet_probe(tmp_path / "out.mkv"))[1] == chunk.pts


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_rotation_copied_to_mp4(tmp_path, rotation):
    src = make_clip(tmp_path / "src.mp4", rotation=rotation)
    _, out = transcode(src, tmp_path / "out.mp4", "libx264")
    assert out.video.rotation == rotation


def test_cfr_into_avi_counts_real_frames(tmp_path):
    src = make_clip(tmp_path / "src.mp4", frames=12)  # mp4 time base 1/12288
    _, out = transcode(src, tmp_path / "out.avi", "mpeg4")
    assert out.video.time_base == Fraction(1, 24)
    assert planes_and_pts(out)[1] == list(range(12))
