"""Every stream of the input reaches the output or is named: cover art, image attachments,
a second video stream; and a file whose only picture is cover art is not a video."""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import pytest

from pipeline.errors import InputError
from pipeline.media.probe import probe
from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_cases import make_song_with_cover, png_bytes, remux_with
from tests.media_factory import make_clip

PASSTHROUGH = """
version: 1
stages: []
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 4}
"""


def passthrough() -> Pipeline:
    return Pipeline(parse_config(PASSTHROUGH, "test.yaml"))


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def pictures(path: str | Path) -> list[bytes]:
    """The attached pictures of a file (cover art, image attachments), as bytes."""
    with av.open(str(path)) as c:
        wanted = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        return [bytes(p) for p in c.demux(wanted) if p.size] if wanted else []


def test_an_audio_file_with_cover_art_has_no_video_to_restore(tmp_path: Path):
    """Regression: song.mp3 exited 0 with a one-frame "video" and 89999 frames missing."""
    song = make_song_with_cover(tmp_path / "song.mp3")
    with pytest.raises(InputError, match="no video stream to restore") as caught:
        passthrough().run(song, tmp_path / "out.mkv")
    assert caught.value.exit_code == 3


def test_a_song_with_cover_art_and_video_restores_the_video(tmp_path: Path):
    song = make_song_with_cover(tmp_path / "song.mp4", codec="aac")
    clip = make_clip(tmp_path / "in.mp4", frames=6)
    src = remux_with(song, tmp_path / "song_video.mp4", second_video=clip)
    info = quiet(probe, src)
    assert (info.video.codec, info.video.frame_count) == ("h264", 6)
    assert [(s.type, s.picture) for s in info.other_streams] == [("audio", False), ("video", True)]
    summary = quiet(passthrough().run, src, tmp_path / "out.mp4")
    assert summary.frames_out == 6 and pictures(tmp_path / "out.mp4") == [png_bytes()]


def test_a_second_video_stream_is_copied_and_named(tmp_path: Path):
    """Regression: the second video stream of a file was dropped without a word."""
    clip = make_clip(tmp_path / "a.mkv", frames=6)
    other = make_clip(tmp_path / "b.mkv", frames=6, width=32, height=32)
    both = remux_with(clip, tmp_path / "both.mkv", second_video=other)
    with pytest.warns(UserWarning, match=r"stream #1 \(video h264\).*not restored"):
        summary = passthrough().run(both, tmp_path / "out.mkv")
    assert summary.frames_out == 6
    with av.open(str(tmp_path / "out.mkv")) as out, av.open(other) as src:
        assert len(out.streams.video) == 2
        copied = [bytes(p) for p in out.demux(out.streams.video[1]) if p.size]
        original = [bytes(p) for p in src.demux(src.streams.video[0]) if p.size]
    assert copied == original


@pytest.mark.parametrize(
    ("src_ext", "dst_ext"), [(".mkv", ".mkv"), (".mkv", ".mp4"), (".mp4", ".mp4"), (".mp4", ".mkv")]
)
def test_cover_art_and_image_attachments_are_kept(tmp_path: Path, src_ext: str, dst_ext: str):
    """Regression: a Matroska PNG attachment and MP4 cover art were dropped silently."""
    image = png_bytes()
    clip = make_clip(tmp_path / f"in{src_ext}", frames=6, matrix="bt709")
    extra = {"attachment": image} if src_ext == ".mkv" else {"cover": image}
    src = remux_with(clip, tmp_path / f"pic{src_ext}", **extra)
    assert pictures(src) == [image]
    out = tmp_path / f"out{dst_ext}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        passthrough().run(src, out)
    assert pictures(out) == [image]


def test_cover_art_a_container_cannot_hold_is_named(tmp_path: Path):
    clip = make_clip(tmp_path / "in.mp4", frames=6)
    src = remux_with(clip, tmp_path / "pic.mp4", cover=png_bytes())
    with pytest.warns(UserWarning, match=r"stream #1 \(cover art png\).*dropped"):
        passthrough().run(src, tmp_path / "out.avi")
