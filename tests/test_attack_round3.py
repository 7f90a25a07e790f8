"""Round three of attacks on the newest paths (issue 24): shots whose frames differ in
format, user files beside an output sequence, long folder names, NaN in OpenEXR, a
sequence given to --report and a video streamed into the run's own log."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError, OutputError
from pipeline.media.sequence import probe_sequence
from pipeline.plan.sequence_segments import plan_sequence_segments, sequence_payloads
from pipeline.show.report import check_report_options
from tests.test_exr import rgb_of
from tests.test_exr import write_exr as write_exr_sequence
from tests.test_sequence_alpha import write_rgba_sequence
from tests.test_sequences import FLOAT_PATH, PASSTHROUGH, write_sequence
from tests.test_sequences import run as run_config


def test_a_deeper_frame_in_a_shot_is_an_error_not_cut_to_the_first_frames_depth(tmp_path):
    """The first frame sets how the shot travels: a 16-bit frame after 8-bit ones was cut
    to 8 bits (and an RGBA one lost its alpha) with exit 0."""
    src = write_sequence(tmp_path / "in", "png", "rgb24", range(1, 4))
    write_sequence(tmp_path / "in", "png", "rgb48be", range(4, 6))
    with pytest.raises(InputError, match=r"f\w*\.000004\.png is rgb48be.*\(rgb24\)"):
        run_config(PASSTHROUGH, src, tmp_path / "out" / "f.%06d.png")
    assert not (tmp_path / "out").exists()
    info = probe_sequence(src, Fraction(24))  # segment mode: the worker's reader too
    spans = plan_sequence_segments(info, 3 / 24)
    late = list(sequence_payloads(info, spans))[1]
    with pytest.raises(InputError, match="rgb48be"):
        list(late.frames())


def test_a_frame_with_alpha_the_first_lacks_is_an_error(tmp_path):
    write_sequence(tmp_path / "in", "png", "rgb48be", range(1, 3), name="f.{:04d}")
    write_rgba_sequence(tmp_path / "in", ".png", "rgba64be", range(3, 5))
    with pytest.raises(InputError, match=r"f\.0003\.png is rgba64be"):
        run_config(PASSTHROUGH, tmp_path / "in", tmp_path / "out.mkv")


def test_a_shallower_frame_in_a_shot_is_read_as_the_first(tmp_path):
    """Nothing is lost the other way round: an 8-bit frame among 16-bit ones is widened."""
    src = write_sequence(tmp_path / "in", "png", "rgb48be", range(1, 3))
    write_sequence(tmp_path / "in", "png", "rgb24", range(3, 4))
    assert run_config(PASSTHROUGH, src, tmp_path / "out" / "f.%06d.png")[0].frames_out == 3


def test_replacing_an_output_sequence_keeps_files_that_are_not_its_frames(tmp_path):
    """``f.notes.png`` starts and ends like ``f.%04d.png`` but is no frame of it: -y removed
    it with the old frames."""
    write_sequence(tmp_path / "in", "png", "rgb24", range(1, 3), name="f.{:04d}")
    src, out = tmp_path / "in", tmp_path / "out"
    out.mkdir()
    (out / "f.0001.png").write_bytes(b"old frame")
    for name in ("f.notes.png", "f.0001.png.png", "f.01.png"):
        (out / name).write_bytes(b"the user's")
        with pytest.raises(OutputError, match="holds other files"):
            run_config(PASSTHROUGH, src, out / "f.%04d.png")
        assert (out / name).read_bytes() == b"the user's"
        (out / name).unlink()
    run_config(PASSTHROUGH, src, out / "f.%04d.png")  # only its frames: replaced
    assert sorted(os.listdir(out)) == ["f.0001.png", "f.0002.png"]


def test_an_output_folder_with_a_long_name_is_written(tmp_path):
    """The hidden folder beside it added ~40 bytes: 'File name too long' for a folder name
    that fits."""
    src = write_sequence(tmp_path / "in", "png", "rgb24", range(1, 3))
    folder = tmp_path / ("é" * 120 + "-restored")  # 249 bytes
    assert run_config(PASSTHROUGH, src, folder / "f.%06d.png")[0].frames_out == 2
    assert sorted(os.listdir(folder)) == ["f.000001.png", "f.000002.png"]
    assert sorted(os.listdir(tmp_path)) == sorted(["in", folder.name])
    run_config(PASSTHROUGH, src, folder / "f.%06d.png")  # replaced: the old set's name fits
    assert sorted(os.listdir(tmp_path)) == sorted(["in", folder.name])


def write_exr(folder: Path, numbers: range, nan: bool = True) -> str:
    """Float frames in 0..1, with one NaN pixel each (a renderer's bad sample) or none."""

    def image(number: int) -> np.ndarray:
        rgb = np.random.default_rng(number).random((48, 64, 3), dtype=np.float32)
        if nan:
            rgb[20, 30] = np.nan
        return rgb

    return write_exr_sequence(folder, numbers, image)


def test_a_nan_in_openexr_does_not_spread_through_the_stages(tmp_path):
    """One NaN pixel came out of an unsharp stage as a 5x5 block of NaN (black in PNG)."""
    sharpen = FLOAT_PATH.replace("amount: 0.0", "amount: 0.8")
    notes = run_config(
        sharpen, write_exr(tmp_path / "in", range(1, 2)), tmp_path / "o" / "f.%04d.exr"
    )[1]
    assert any("NaN made 0" in n for n in notes)
    run_config(
        sharpen,
        write_exr(tmp_path / "clean", range(1, 2), nan=False),
        tmp_path / "c" / "f.%04d.exr",
    )
    out, clean = rgb_of(tmp_path / "o" / "f.0001.exr"), rgb_of(tmp_path / "c" / "f.0001.exr")
    assert np.isfinite(out).all()
    far = np.ones((48, 64), bool)
    far[15:26, 25:36] = False  # the NaN pixel's neighbourhood, which its 0 darkens
    np.testing.assert_allclose(out[far], clean[far], atol=1e-5)


def test_nan_into_an_integer_output_is_0_without_numpy_warnings(tmp_path):
    src = write_exr(tmp_path / "in", range(1, 2))
    notes = run_config(PASSTHROUGH, src, tmp_path / "png" / "f.%04d.png")[1]
    assert not any("invalid value" in n for n in notes)
    png = av.CodecContext.create("png", "r")
    data = (tmp_path / "png" / "f.0001.png").read_bytes()
    assert png.decode(av.Packet(data))[0].to_ndarray()[20, 30].tolist() == [0, 0, 0]


@pytest.mark.parametrize("as_folder", [False, True], ids=["pattern", "folder"])
def test_report_refuses_a_sequence_before_any_work(tmp_path, as_folder):
    """A pattern passed the check, the job ran and published, then exit 3 'input not found';
    a folder was refused as 'not a regular file (a FIFO or a device)'."""
    src = write_sequence(tmp_path / "in", "png", "rgb24", range(1, 3))
    given = str(tmp_path / "in") if as_folder else src
    report = str(tmp_path / "r.html")
    with pytest.raises(ConfigError, match="is a frame sequence"):
        check_report_options(report, None, (given, str(tmp_path / "out.mkv")))
    with pytest.raises(ConfigError, match="is a frame sequence"):
        check_report_options(report, None, (str(tmp_path / "a.mkv"), str(tmp_path / "o/%04d.png")))


def test_streaming_into_the_runs_own_log_is_refused(tmp_path):
    """``-o - >log 2>&1``: the video and the messages were mixed in one file, exit 0."""
    log = tmp_path / "log"
    with open(log, "wb") as both:
        result = subprocess.run(
            [sys.executable, "-c",
             "from pipeline.media.output_path import check_output\n"
             "check_output('-', overwrite=False)"],
            stdout=both, stderr=both, timeout=60, cwd=Path(__file__).parents[1],
        )  # fmt: skip
    assert result.returncode == 1 and "standard output is this run's standard error" in (
        log.read_text()
    )
    with open(log, "wb") as out, open(tmp_path / "err", "wb") as err:
        result = subprocess.run(
            [sys.executable, "-c",
             "from pipeline.media.output_path import check_output\n"
             "assert check_output('-', overwrite=False)"],
            stdout=out, stderr=err, timeout=60, cwd=Path(__file__).parents[1],
        )  # fmt: skip
    assert result.returncode == 0
