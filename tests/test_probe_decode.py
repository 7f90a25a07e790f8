"""Probe and decode against clips made on the fly: formats, colour, time, damage."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.media.decode import DecodeStats, iter_chunks
from pipeline.media.probe import describe, probe, transport_pix_fmt
from tests.media_factory import (
    frame_pts,
    make_audio_only,
    make_clip,
    make_text_file_as_mp4,
    make_truncated,
)

TAGS_709 = {"matrix": "bt709", "range": "tv", "primaries": "bt709", "transfer": "bt709"}


def quiet_probe(path: str):
    """Probe with the untagged-colour warning silenced (tested on its own below)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return probe(path)


def demuxed_pts(path: str) -> list[int]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        return sorted(p.pts for p in container.demux(stream) if p.size)


def all_frames(info, chunk_frames: int = 64):
    reader = iter_chunks(info, chunk_frames)
    chunks = list(reader)
    planes = [np.concatenate([c.planes[k] for c in chunks]) for k in range(3)]
    return chunks, planes, reader.stats


# -- probe --------------------------------------------------------------------------------


def test_probe_tagged_clip(tmp_path):
    path = make_clip(tmp_path / "tagged.mp4", **TAGS_709)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fully tagged clip must not warn
        info = probe(path)
    video = info.video
    assert (video.width, video.height, video.codec) == (64, 48, "h264")
    assert video.fmt.pix_fmt == "yuv420p" and video.fmt.bit_depth == 8
    assert video.fmt.color.matrix == "bt709" and video.fmt.color.range == "tv"
    assert video.fmt.color.primaries == "bt709" and video.fmt.color.transfer == "bt709"
    assert not video.fmt.color.assumed
    assert video.frame_count == 12 and video.avg_rate == 24 and not video.is_vfr
    assert info.duration == pytest.approx(0.5, abs=0.05)
    assert info.other_streams == []


def test_probe_untagged_sd_assumes_601_and_warns(tmp_path):
    path = make_clip(tmp_path / "untagged.mp4")
    with pytest.warns(UserWarning, match="assuming smpte170m"):
        info = probe(path)
    color = info.video.fmt.color
    assert (color.matrix, color.range, color.assumed) == ("smpte170m", "tv", True)


def test_probe_untagged_hd_assumes_709(tmp_path):
    path = make_clip(tmp_path / "hd.mp4", width=1280, height=720, frames=2, content="gradient")
    with pytest.warns(UserWarning, match="assuming bt709"):
        info = probe(path)
    assert info.video.fmt.color.matrix == "bt709" and info.video.fmt.color.assumed


def test_probe_bt2020_full_range_tags(tmp_path):
    tags = {"matrix": "bt2020nc", "range": "pc", "primaries": "bt2020", "transfer": "bt2020-10"}
    path = make_clip(tmp_path / "hdr.mkv", pix_fmt="yuv420p10le", **tags)
    color = probe(path).video.fmt.color
    assert (color.matrix, color.range, color.primaries, color.transfer) == tuple(tags.values())


@pytest.mark.parametrize(
    ("source", "transport"),
    [
        ("yuv420p", "yuv420p"),
        ("yuvj420p", "yuv420p"),
        ("nv12", "yuv420p"),
        ("yuv422p", "yuv422p"),
        ("yuv444p", "yuv444p"),
        ("yuv420p10le", "yuv420p10le"),
        ("yuv420p12le", "yuv420p12le"),
        ("yuv444p16le", "yuv444p12le"),
        ("p010le", "yuv420p10le"),
        ("yuv422p10le", "yuv422p10le"),
        ("rgb24", "yuv444p"),
        ("gbrp10le", "yuv444p10le"),
        ("gray", "yuv444p"),
        ("yuv411p", "yuv444p"),
    ],
)
def test_transport_pix_fmt(source, transport):
    assert transport_pix_fmt(source) == transport


def test_probe_and_decode_10bit(tmp_path):
    path = make_clip(tmp_path / "ten.mkv", pix_fmt="yuv420p10le", **TAGS_709)
    info = probe(path)
    assert info.video.fmt.pix_fmt == "yuv420p10le" and info.video.fmt.bit_depth == 10
    _, planes, _ = all_frames(info)
    assert planes[0].dtype == np.uint16
    assert 255 < planes[0].max() <= 1023


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "chroma"),
    [("libx264", "yuv444p", (47, 63)), ("ffv1", "yuv420p", (24, 32))],
)
def test_odd_size(tmp_path, codec, pix_fmt, chroma):
    path = make_clip(tmp_path / "odd.mkv", width=63, height=47, codec=codec, pix_fmt=pix_fmt)
    info = quiet_probe(path)
    assert (info.video.width, info.video.height) == (63, 47)
    assert info.video.fmt.plane_shapes()[1] == chroma
    chunks, planes, _ = all_frames(info, chunk_frames=5)
    assert [len(c) for c in chunks] == [5, 5, 2]
    assert planes[0].shape == (12, 47, 63) and planes[1].shape == (12, *chroma)


def test_full_range_jpeg_layout_is_copied_as_is(tmp_path):
    path = make_clip(tmp_path / "j.mp4", pix_fmt="yuvj420p", codec="libx264")
    info = quiet_probe(path)
    assert info.video.source_pix_fmt == "yuvj420p"
    assert info.video.fmt.pix_fmt == "yuv420p" and info.video.fmt.color.range == "pc"
    _, planes, _ = all_frames(info)
    with av.open(path) as container:
        first = next(container.decode(video=0))
        assert np.array_equal(planes[0][0], first.to_ndarray()[:48])


def test_rgb_source_travels_as_full_range_444(tmp_path):
    path = make_clip(tmp_path / "rgb.mkv", codec="ffv1", pix_fmt="bgr0")
    info = probe(path)
    assert info.video.fmt.pix_fmt == "yuv444p" and info.video.fmt.color.range == "pc"
    _, planes, stats = all_frames(info)
    assert planes[1].shape == (12, 48, 64) and stats.frames_decoded == 12


def test_probe_vfr_and_decode_keeps_every_pts(tmp_path):
    path = make_clip(tmp_path / "vfr.mkv", vfr=True, frames=13)
    info = quiet_probe(path)
    assert info.video.is_vfr
    chunks, _, stats = all_frames(info, chunk_frames=4)
    pts = [p for c in chunks for p in c.pts]
    assert pts == frame_pts(13, 24, vfr=True) == demuxed_pts(path)
    assert all(c.time_base == info.video.time_base for c in chunks)
    assert stats == DecodeStats(frames_decoded=13)


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov"])
def test_decode_pts_match_demux(tmp_path, ext):
    path = make_clip(tmp_path / f"clip{ext}", frames=10)
    info = quiet_probe(path)
    chunks, _, _ = all_frames(info, chunk_frames=3)
    assert [p for c in chunks for p in c.pts] == demuxed_pts(path)
    assert [(c.index, c.first_frame, len(c)) for c in chunks] == [
        (0, 0, 3),
        (1, 3, 3),
        (2, 6, 3),
        (3, 9, 1),
    ]


def test_decode_matches_pyav_planes(tmp_path):
    path = make_clip(tmp_path / "clip.mkv", width=66, height=38)
    _, planes, _ = all_frames(quiet_probe(path))
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            packed = frame.to_ndarray()  # yuv420p: Y rows, then U and V rows packed
            assert np.array_equal(planes[0][i], packed[:38])
            assert np.array_equal(planes[1][i].ravel(), packed[38:].ravel()[: 19 * 33])


def test_start_index_resumes_with_same_frames(tmp_path):
    path = make_clip(tmp_path / "clip.mkv", frames=10)
    info = quiet_probe(path)
    full = [c for c in iter_chunks(info, 4)]
    tail = list(iter_chunks(info, 4, start_index=4))
    assert [c.first_frame for c in tail] == [4, 8] and [c.index for c in tail] == [1, 2]
    assert tail[0].pts == full[1].pts
    assert np.array_equal(tail[0].planes[0], full[1].planes[0])


def test_raw_stream_without_pts_gets_derived_pts(tmp_path):
    path = make_clip(tmp_path / "raw.h264", frames=6)
    info = quiet_probe(path)
    reader = iter_chunks(info, 8)
    pts = next(reader).pts
    assert len(pts) == 6 and pts == sorted(set(pts))
    assert reader.stats.pts_repaired == 6


def test_probe_other_streams_rotation_chapters(tmp_path):
    path = make_clip(
        tmp_path / "full.mkv",
        audio=True,
        subtitles=True,
        attachment=True,
        chapters=True,
        rotation=90,
        metadata={"title": "A title"},
    )
    info = quiet_probe(path)
    kinds = [(s.type, s.codec) for s in info.other_streams]
    assert kinds == [("audio", "aac"), ("subtitle", "subrip"), ("attachment", None)]
    assert info.other_streams[0].sample_rate == 48000 and info.other_streams[0].channels == 2
    assert info.other_streams[1].language == "eng"
    assert info.other_streams[2].filename == "notes.txt"
    assert info.video.rotation == 90
    assert info.metadata["title"] == "A title"
    assert [c["metadata"]["title"] for c in info.chapters] == ["Opening", "Closing"]
    summary = describe(info)
    json.dumps(summary)
    assert summary["video"]["fmt"]["pix_fmt"] == "yuv420p"


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_probe_rotation_mp4(tmp_path, rotation):
    path = make_clip(tmp_path / "rot.mp4", rotation=rotation)
    assert quiet_probe(path).video.rotation == rotation


# -- bad inputs ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        probe(tmp_path / "nope.mp4")


def test_directory(tmp_path):
    with pytest.raises(InputError, match="directory"):
        probe(tmp_path)


def _probe_error_as(uid: int, path: str) -> str:
    """The ``InputError`` text of ``probe(path)`` in a forked child running as ``uid``
    (root reads anything, so a root test gives root up to meet an unreadable file)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgid(uid)
            os.setuid(uid)
            try:
                probe(path)
                message = "no error"
            except InputError as exc:
                message = str(exc)
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return message


def test_unreadable_file():
    folder = tempfile.mkdtemp(prefix="unreadable-")  # /tmp: reachable for any user
    try:
        os.chmod(folder, 0o755)
        path = make_clip(Path(folder) / "locked.mp4")
        os.chmod(path, 0)
        if os.geteuid() == 0:
            assert "not readable" in _probe_error_as(65534, path)  # nobody
        else:
            with pytest.raises(InputError, match="not readable"):
                probe(path)
    finally:
        shutil.rmtree(folder)


def test_text_file_named_mp4(tmp_path):
    with pytest.raises(InputError, match="not a readable media file") as err:
        probe(make_text_file_as_mp4(tmp_path / "notes.mp4"))
    assert "\n" not in str(err.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mkv"
    path.write_bytes(b"")
    with pytest.raises(InputError):
        probe(path)


def test_audio_only(tmp_path):
    with pytest.raises(InputError, match="no video stream"):
        probe(make_audio_only(tmp_path / "song.m4a"))


def test_truncated_mp4_without_index_is_an_input_error(tmp_path):
    # mp4 writes its index (moov) last: half a file has no index at all.
    src = make_clip(tmp_path / "clip.mp4", frames=24)
    with pytest.raises(InputError):
        probe(make_truncated(src, tmp_path / "cut.mp4", 0.5))


@pytest.mark.parametrize("ext", [".mkv", ".ts"])
def test_truncated_file_decodes_partially(tmp_path, ext):
    src = make_clip(tmp_path / f"clip{ext}", frames=48, content="noise")
    cut = make_truncated(src, tmp_path / f"cut{ext}", 0.6)
    info = quiet_probe(cut)
    chunks, planes, stats = all_frames(info, chunk_frames=8)
    assert 5 < stats.frames_decoded < 48
    assert len(planes[0]) == stats.frames_decoded
    pts = [p for c in chunks for p in c.pts]
    assert pts == sorted(set(pts))


def test_decoder_skips_damaged_packets(tmp_path):
    src = make_clip(tmp_path / "clip.mkv", frames=24, content="noise")
    damaged = os.fspath(tmp_path / "damaged.mkv")
    rng = np.random.default_rng(0)
    # Remux with the payloads of two inter frames replaced by garbage of the same size.
    with av.open(src) as inp, av.open(damaged, "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for n, packet in enumerate(p for p in inp.demux() if p.size):
            if n in (8, 15):
                garbage = av.Packet(rng.integers(0, 256, packet.size, np.uint8).tobytes())
                garbage.time_base = packet.time_base
                garbage.pts, garbage.dts = packet.pts, packet.dts
                packet = garbage
            packet.stream = stream
            out.mux(packet)
    info = quiet_probe(damaged)
    _, planes, stats = all_frames(info)
    assert stats.frames_decoded == len(planes[0]) >= 20
    assert stats.packets_dropped >= 1 and not stats.clean


def test_a_chunk_larger_than_the_clip_allocates_only_the_clip(tmp_path):
    """Regression: chunk_frames=10**6 allocated 11.4 GiB up front for a 400-frame clip."""
    info = quiet_probe(make_clip(tmp_path / "clip.mkv", frames=10))
    (chunk,) = iter_chunks(info, 4096)
    assert len(chunk) == 10 and chunk.planes[0].base.shape[0] == 10


def test_a_header_that_undercounts_frames_still_gets_every_frame(tmp_path):
    from dataclasses import replace

    info = quiet_probe(make_clip(tmp_path / "clip.mkv", frames=10))
    full = list(iter_chunks(info, 8))
    low = replace(info, video=replace(info.video, frame_count=3))
    chunks = list(iter_chunks(low, 8))
    assert [len(c) for c in chunks] == [8, 2]
    for a, b in zip(chunks, full, strict=True):
        assert a.pts == b.pts and all(
            np.array_equal(x, y) for x, y in zip(a.planes, b.planes, strict=True)
        )
