"""Timecode: the first frame's is kept on the output, shifted by the frames ``-ss`` cuts."""

from __future__ import annotations

import warnings
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.media.timecode import check_timecode, shift_timecode, timecode_to_frames
from pipeline.media.window import Window
from pipeline.run.runner import Pipeline

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("start", "frames", "rate", "expected"),
    [
        ("01:00:10:00", 12, Fraction(24), "01:00:10:12"),
        ("00:59:59:24", 1, Fraction(25), "01:00:00:00"),
        ("23:59:59:23", 1, Fraction(24), "00:00:00:00"),  # wraps at midnight
        ("00:00:59;29", 1, NTSC, "00:01:00;02"),  # drop-frame skips ;00 and ;01
        ("00:09:59;29", 1, NTSC, "00:10:00;00"),  # ... except every tenth minute
        ("01:00:00;00", 107892, NTSC, "02:00:00;00"),  # an hour of 29.97 is 107,892 frames
    ],
)
def test_shift_timecode(start, frames, rate, expected):
    assert shift_timecode(start, frames, rate) == expected


def test_timecode_counts_from_midnight():
    assert timecode_to_frames("01:00:00:00", Fraction(24)) == 86400
    with pytest.raises(ValueError, match="HH:MM:SS:FF"):
        check_timecode("1:00:00")


def make_mov_with_timecode(path, timecode: str, frames: int = 24) -> str:
    """A 24 fps MOV whose video stream carries ``timecode`` (the muxer writes a tmcd track)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.metadata["timecode"] = timecode
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 8, np.uint8), "rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return str(path)


def written_timecodes(path) -> tuple[int, list[str], bool]:
    """Frames in the file and every timecode tag it carries (video, tmcd track, container)."""
    with av.open(str(path)) as c:
        tags = [v for s in c.streams for k, v in s.metadata.items() if k.lower() == "timecode"]
        tags += [v for k, v in c.metadata.items() if k.lower() == "timecode"]
        has_tmcd = any(s.type == "data" for s in c.streams)
        return sum(1 for _ in c.decode(video=0)), tags, has_tmcd


@pytest.mark.parametrize("ext", ["mov", "mp4", "mkv"])
def test_timecode_kept_and_shifted_by_ss(tmp_path, ext):
    src = make_mov_with_timecode(tmp_path / "shot.mov", "01:00:10:00")
    pipe = Pipeline.from_yaml("configs/passthrough.yaml", ["execution.executor=inline"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.run(src, tmp_path / f"whole.{ext}", overwrite=True)
        pipe.run(src, tmp_path / f"cut.{ext}", overwrite=True, window=Window.from_ffmpeg("0.5"))
    frames, tags, tmcd = written_timecodes(tmp_path / f"whole.{ext}")
    assert frames == 24 and tags and set(tags) == {"01:00:10:00"}
    assert tmcd == (ext != "mkv")  # MOV and MP4 get a tmcd track, Matroska a tag
    frames, tags, _ = written_timecodes(tmp_path / f"cut.{ext}")
    assert frames == 12 and tags and set(tags) == {"01:00:10:12"}  # 12 frames cut
