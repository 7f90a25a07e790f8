"""Preview options on ``run``: -ss/-t/-to trim frame-exactly with audio, subtitles and
chapters kept in sync, and --crop cuts a region before the stages."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.media.window import Crop, Window, parse_time
from pipeline.run.runner import Pipeline
from tests.media_factory import frame_pts, make_clip

REPO = Path(__file__).resolve().parent.parent
PASSTHROUGH = REPO / "configs" / "passthrough.yaml"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", Fraction(90)),
        ("2.5", Fraction(5, 2)),
        ("500ms", Fraction(1, 2)),
        ("250000us", Fraction(1, 4)),
        ("1:30", Fraction(90)),
        ("01:02:03.5", Fraction(7447, 2)),
        (".5", Fraction(1, 2)),
    ],
)
def test_parse_time_takes_ffmpeg_durations(text: str, seconds: Fraction) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:75", "-3", "1.5h"])
def test_parse_time_rejects_garbage(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_time(text)


def test_window_options_checked() -> None:
    with pytest.raises(ConfigError, match="mutually exclusive"):
        Window.from_ffmpeg("1", t="1", to="3")
    with pytest.raises(ConfigError, match="not after"):
        Window.from_ffmpeg("3", to="2")
    with pytest.raises(ConfigError, match="WxH"):
        Crop.parse("10x10")
    assert Window.from_ffmpeg("1.5", t="2").end == Fraction(7, 2)


def _decode(path: str | Path) -> tuple[list[np.ndarray], list[Fraction]]:
    with av.open(str(path)) as box:
        frames = list(box.decode(video=0))
    return [f.to_ndarray(format="gray") for f in frames], [f.pts * f.time_base for f in frames]


def _nearest(frame: np.ndarray, source: list[np.ndarray]) -> int:
    errors = [np.mean((frame.astype(float) - s.astype(float)) ** 2) for s in source]
    return int(np.argmin(errors))


def _packets(path: str | Path, kind: str) -> list[tuple[Fraction, Fraction]]:
    """(start, end) seconds of the non-empty packets of the first ``kind`` stream."""
    with av.open(str(path)) as box:
        stream = next(s for s in box.streams if s.type == kind)
        return [
            (p.pts * p.time_base, (p.pts + p.duration) * p.time_base)
            for p in box.demux(stream)
            if p.size
        ]


def test_trim_is_frame_exact_and_keeps_streams_in_sync(tmp_path: Path) -> None:
    # 24 fps, a keyframe every 10 frames: START lands between keyframes, so decoding
    # starts at an earlier keyframe and the frames before START must be dropped.
    src = make_clip(
        tmp_path / "in.mkv",
        frames=72,
        audio=True,
        subtitles=True,
        chapters=True,
        options={"g": "10"},
    )
    dst = tmp_path / "out.mkv"
    window = Window.from_ffmpeg("0.125", t="1.5")  # 3/24 s: frame 3 exactly
    summary = Pipeline.from_yaml(PASSTHROUGH).run(src, dst, window=window)
    assert summary.frames_in == summary.frames_out == 36  # frames 3..38
    assert summary.frames_missing == 0  # a span is not a truncated file

    source, source_times = _decode(src)
    frames, times = _decode(dst)
    assert [_nearest(f, source) for f in frames] == list(range(3, 39))
    assert times == [t - source_times[3] for t in source_times[3:39]]

    audio = _packets(dst, "audio")
    end = Fraction(3, 2)
    # Packet granularity: the first packet overlaps time 0, the last overlaps the end.
    assert audio[0][0] <= 0 < audio[0][1]
    assert audio[-1][0] < end <= audio[-1][1] + Fraction(1, 1000)
    assert audio == sorted(audio)

    # Subtitle events 0-0.2 s and 0.25-0.45 s, seen from 0.125 s: clipped and moved.
    subs = _packets(dst, "subtitle")
    assert subs == [(0, Fraction(75, 1000)), (Fraction(125, 1000), Fraction(325, 1000))]

    with av.open(str(dst)) as box:
        chapters = [
            (c["start"] * c["time_base"], c["end"] * c["time_base"]) for c in box.chapters()
        ]
    # 'Opening' 0-1.5 s and 'Closing' 1.5-3 s, seen through 0.125-1.625 s.
    assert chapters == [(0, Fraction(11, 8)), (Fraction(11, 8), Fraction(3, 2))]


def test_trim_vfr_starts_at_first_frame_at_or_after_start(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "vfr.mkv", frames=20, vfr=True)
    pts = frame_pts(20, 24, vfr=True)  # milliseconds
    start_ms = pts[5] - 1  # just before frame 5: frame 5 is the first at or after
    end_ms = pts[12]  # -to is exclusive: frame 12 is not restored
    dst = tmp_path / "out.mkv"
    window = Window.from_ffmpeg(f"{start_ms}ms", to=f"{end_ms}ms")
    Pipeline.from_yaml(PASSTHROUGH).run(src, dst, window=window)
    source, _ = _decode(src)
    frames, times = _decode(dst)
    assert [_nearest(f, source) for f in frames] == list(range(5, 12))
    assert times == [Fraction(p - pts[5], 1000) for p in pts[5:12]]  # VFR spacing kept


def test_crop_restores_only_the_region(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", width=96, height=64, frames=6, content="noise")
    dst = tmp_path / "out.mp4"
    summary = Pipeline.from_yaml(PASSTHROUGH).run(
        src, dst, window=Window.from_ffmpeg(crop="40x30+20+10")
    )
    assert summary.frames_out == 6
    source, _ = _decode(src)
    frames, _ = _decode(dst)
    assert frames[0].shape == (30, 40)
    for got, full in zip(frames, source, strict=True):

        def error(dy: int, dx: int, got: np.ndarray = got, full: np.ndarray = full) -> float:
            region = full[10 + dy : 40 + dy, 20 + dx : 60 + dx].astype(float)
            return float(np.abs(got.astype(float) - region).mean())

        # Two lossy encodes of noise: the right region is far closer than any neighbour.
        assert error(0, 0) < 4.0
        assert error(0, 0) < 0.5 * min(error(2, 0), error(-2, 0), error(0, 2), error(0, -2))


def test_crop_corner_moves_onto_the_chroma_grid(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", width=64, height=48, frames=2)
    dst = tmp_path / "out.mp4"
    with pytest.warns(UserWarning, match="moved to 2,4"):
        Pipeline.from_yaml(PASSTHROUGH).run(src, dst, window=Window.from_ffmpeg(crop="33x21+3+5"))
    frames, _ = _decode(dst)
    assert frames[0].shape == (21, 33)


def test_cli_preview_errors_are_one_line(tmp_path: Path) -> None:
    from tests.test_cli import assert_clean_error, cli

    src = make_clip(tmp_path / "in.mp4", frames=6)
    out = str(tmp_path / "out.mp4")
    run = ("run", "-c", str(PASSTHROUGH), "-i", src, "-o", out, "-y")
    assert_clean_error(cli(*run, "-ss", "5"), 3, "no video frames between 5.000 s")
    assert_clean_error(cli(*run, "--crop", "100x10+0+0"), 2, "does not fit")
    assert_clean_error(cli(*run, "-t", "1", "-to", "2"), 2, "not allowed with")
    assert not Path(out).exists()
    batch = ("run", "-c", str(PASSTHROUGH), "-i", src, src, "-o", str(tmp_path / "many"))
    assert_clean_error(cli(*batch, "-ss", "1"), 2, "one input file, not a batch")
    assert not (tmp_path / "many").exists()
