"""What the run says about its input: a short or changing input, damaged timestamps, and
inputs that try to make the decoder read other files."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.media.decode import iter_chunks
from pipeline.media.probe import probe
from pipeline.plan import input_config
from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_factory import make_clip, make_truncated

PASSTHROUGH = """
version: 1
stages: []
output: {codec: libx264, crf: 20, preset: ultrafast}
execution: {executor: inline, chunk_frames: 4}
"""


def passthrough() -> Pipeline:
    return Pipeline(parse_config(PASSTHROUGH, "test.yaml"))


def frame_times(path: str | Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [f.pts * stream.time_base for f in c.decode(stream)]


def quiet_probe(path: str | Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return probe(path)


def clip_with_pts(path: Path, pts: list[int]) -> Path:
    """FFV1 in Matroska (1/1000 time base) whose frames carry exactly ``pts``."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, p in enumerate(pts):
            rgb = np.full((48, 64, 3), 20 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = p, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_one_duplicate_timestamp_repairs_only_its_frame(tmp_path: Path):
    """Regression: one duplicate pts moved every later frame by +42 ms, silently."""
    src = clip_with_pts(tmp_path / "dup.mkv", [0, 42, 83, 83, 125, 167, 208, 250])
    with pytest.warns(UserWarning, match="1 frame.* timestamp"):
        summary = passthrough().run(src, tmp_path / "out.mkv")
    assert summary.pts_repaired == 1 and summary.frames_out == 8
    expected = [0, 42, 83, 104, 125, 167, 208, 250]
    assert frame_times(tmp_path / "out.mkv") == [Fraction(p, 1000) for p in expected]


def test_timestamps_without_room_continue_one_frame_on(tmp_path: Path):
    """With no free tick between neighbours, the sequence must still increase."""
    src = clip_with_pts(tmp_path / "tight.mkv", [0, 1, 2, 2, 3])
    info = quiet_probe(src)
    reader = iter_chunks(info, 8)
    pts = next(reader).pts
    step = pts[4] - pts[3]  # one nominal frame duration
    assert pts[:3] == [0, 1, 2] and step > 1 and pts[3] == 2 + step
    assert reader.stats.pts_repaired == 2  # the duplicate, and the frame it pushed on


def test_a_truncated_input_is_reported_in_the_summary(tmp_path: Path):
    """Regression: a cut-off input exited 0 with "0 corrupt, 0 packets dropped"; the
    shortfall was only logged."""
    clip = make_clip(tmp_path / "in.mkv", frames=24, audio=True, matrix="bt709")
    src = make_truncated(clip, tmp_path / "cut.mkv", 0.6)
    with pytest.warns(UserWarning, match="input damaged: reading stopped early"):
        summary = passthrough().run(src, tmp_path / "out.mkv")
    written = frame_times(tmp_path / "out.mkv")
    assert 0 < summary.frames_out == len(written) < 24
    assert summary.frames_missing >= 24 - summary.frames_out - 2
    assert written == frame_times(clip)[: len(written)]


def test_a_whole_input_reports_nothing_missing(tmp_path: Path):
    clip = make_clip(tmp_path / "in.mkv", frames=24, audio=True, matrix="bt709")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        summary = passthrough().run(clip, tmp_path / "out.mkv")
    assert (summary.frames_missing, summary.read_errors, summary.pts_repaired) == (0, 0, 0)


def test_an_input_changed_after_probing_is_an_input_error(tmp_path: Path, monkeypatch):
    src = Path(make_clip(tmp_path / "in.mkv", frames=24, matrix="bt709"))
    real_probe = input_config.probe

    def probe_then_rewrite(path):
        info = real_probe(path)
        Path(path).write_bytes(Path(path).read_bytes()[: 3 * src.stat().st_size // 4])
        return info

    monkeypatch.setattr(input_config, "probe", probe_then_rewrite)
    with pytest.raises(InputError, match="changed while it was being read") as info:
        passthrough().run(src, tmp_path / "out.mkv")
    assert info.value.exit_code == 3
    assert [p.name for p in tmp_path.iterdir()] == ["in.mkv"]


def test_an_input_that_shrinks_while_decoding_is_an_input_error(tmp_path: Path):
    src = Path(make_clip(tmp_path / "in.mkv", frames=24, matrix="bt709"))
    reader = iter_chunks(quiet_probe(src), 4)
    next(reader)
    with open(src, "r+b") as f:
        f.truncate(src.stat().st_size // 2)
    with pytest.raises(InputError, match="changed while it was being read"):
        list(reader)


def test_a_playlist_cannot_make_the_decoder_read_another_file(tmp_path: Path):
    """Regression: an .m3u8 input made the decoder read a local file named inside it."""
    make_clip(tmp_path / "private.mkv", frames=5)
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nprivate.mkv\n#EXT-X-ENDLIST\n"
    )
    with av.open(str(playlist)) as c:  # what plain FFmpeg does with it: the precondition
        assert c.format.name == "hls" and c.streams.video
    with pytest.raises(InputError, match="not a readable media file"):
        probe(playlist)
    concat = tmp_path / "list.ffconcat"
    concat.write_text("ffconcat version 1.0\nfile private.mkv\n")
    with pytest.raises(InputError, match="not a readable media file"):
        probe(concat)


def test_a_local_file_named_like_a_protocol_is_not_a_protocol(tmp_path: Path, monkeypatch):
    """``concat:a|b`` or ``subfile:...`` must not reach FFmpeg's protocols even if a local
    file of that name exists."""
    make_clip(tmp_path / "a.mkv", frames=3)
    monkeypatch.chdir(tmp_path)
    Path("concat:a.mkv|a.mkv").write_bytes(b"not a video")
    with pytest.raises(InputError, match="not a readable media file"):
        probe("concat:a.mkv|a.mkv")
