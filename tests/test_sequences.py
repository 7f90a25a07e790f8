"""Frame sequences in and out: numbering, bit depth, gaps, timecode, a set published whole."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.media.describe import describe_media
from pipeline.media.window import Window
from pipeline.plan.batch_inputs import expand_inputs, plan_outputs
from pipeline.plan.config_loader import parse_config
from pipeline.plan.input_config import InputConfig, probe_input
from pipeline.run.batch import Batch
from pipeline.run.runner import Pipeline

PASSTHROUGH = """
version: 1
stages: []
output: {codec: ffv1}
execution: {executor: inline, chunk_frames: 4}
"""
#: A float-path stage that changes nothing: unsharp with nothing added back.
FLOAT_PATH = PASSTHROUGH.replace("stages: []", "stages: [{id: s, type: unsharp, amount: 0.0}]")


def ramp(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A 16-bit RGB ramp over every code value's neighbourhood, different per frame."""
    values = np.arange(width * height * 3, dtype=np.int64).reshape(height, width, 3)
    return ((values * 7 + index * 1000) % 65536).astype(np.uint16)


def write_sequence(folder: Path, ext: str, pix_fmt: str, numbers, name="frame.{:06d}"):
    """Frames ``numbers`` of a 16-bit ramp, encoded by PyAV's image encoder as ``pix_fmt``."""
    codec = {"dpx": "dpx", "tif": "tiff", "png": "png"}[ext]
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        frame = av.VideoFrame.from_ndarray(ramp(number), format="rgb48le")
        encoder = av.CodecContext.create(codec, "w")
        encoder.width, encoder.height, encoder.pix_fmt = 64, 48, pix_fmt
        encoder.time_base = Fraction(1, 24)
        frame = frame.reformat(format=pix_fmt)
        frame.pts = 0
        data = b"".join(bytes(p) for p in encoder.encode(frame) + encoder.encode(None))
        (folder / f"{name.format(number)}.{ext}").write_bytes(data)
    return str(folder / f"{name.replace('{:06d}', '%06d')}.{ext}")


def read_frame(path: Path) -> av.VideoFrame:
    codec = {".dpx": "dpx", ".tif": "tiff", ".png": "png", ".exr": "exr"}[path.suffix]
    decoder = av.CodecContext.create(codec, "r")
    return decoder.decode(av.Packet(path.read_bytes()))[0]


def run(config: str, src, dst, *sets: str, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = Pipeline(parse_config(config, "g.yaml", list(sets))).run(
            src, dst, overwrite=True, **kwargs
        )
    return summary, [str(w.message) for w in caught]


def test_dpx_10_bit_round_trip_keeps_numbers_and_bits(tmp_path):
    src = write_sequence(tmp_path / "shot_0101", "dpx", "gbrp10le", range(1001, 1007))
    summary, notes = run(PASSTHROUGH, src, tmp_path / "restored" / "frame.%06d.dpx")
    assert summary.frames_out == 6
    assert any("taking 24 fps" in n for n in notes)  # the run says which rate it took
    names = sorted(os.listdir(tmp_path / "restored"))
    assert names == [f"frame.{n:06d}.dpx" for n in range(1001, 1007)]
    for name in names:
        a, b = read_frame(tmp_path / "shot_0101" / name), read_frame(tmp_path / "restored" / name)
        assert b.format.name == "gbrp10le"
        assert np.array_equal(a.to_ndarray(), b.to_ndarray())
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # nothing left over


@pytest.mark.parametrize("config", [PASSTHROUGH, FLOAT_PATH], ids=["copy", "float-path"])
def test_16_bit_tiff_ramp_survives_within_one_code_value(tmp_path, config):
    src = write_sequence(tmp_path / "in", "tif", "rgb48le", range(1, 4))
    run(config, src, tmp_path / "out" / "frame.%06d.tif", "input.frame_rate=25")
    for n in range(1, 4):
        written = read_frame(tmp_path / "out" / f"frame.{n:06d}.tif")
        assert written.format.name == "rgb48le"
        diff = np.abs(written.to_ndarray().astype(np.int64) - ramp(n))
        assert diff.max() <= 1


def test_folder_input_and_png_output_with_other_numbering(tmp_path):
    write_sequence(tmp_path / "in", "png", "rgb48be", range(7, 10), name="plate_{:04d}")
    run(PASSTHROUGH, tmp_path / "in", tmp_path / "out" / "plate_%04d.png")
    assert sorted(os.listdir(tmp_path / "out")) == ["plate_0007.png", "plate_0008.png",
                                                    "plate_0009.png"]  # fmt: skip


def test_gap_is_reported_and_refused_or_kept(tmp_path):
    src = write_sequence(tmp_path / "in", "dpx", "gbrp10le", [1, 2, 4, 7, 8])
    with pytest.raises(InputError, match=r"3 frames missing: 3, 5-6 \(--keep-gaps"):
        run(PASSTHROUGH, src, tmp_path / "out" / "frame.%06d.dpx")
    assert not (tmp_path / "out").exists()
    _, notes = run(PASSTHROUGH, src, tmp_path / "out" / "frame.%06d.dpx", "input.gaps=keep")
    assert any("missing: 3, 5-6; kept as gaps" in n for n in notes)
    assert sorted(os.listdir(tmp_path / "out")) == [f"frame.{n:06d}.dpx" for n in [1, 2, 4, 7, 8]]
    run(PASSTHROUGH, src, tmp_path / "gaps.mkv", "input.gaps=keep")
    with av.open(str(tmp_path / "gaps.mkv")) as c:  # the gaps stay gaps in time
        assert [f.pts for f in c.decode(video=0)] == [0, 42, 125, 250, 292]


def test_a_failed_run_leaves_no_sequence_under_the_final_name(tmp_path):
    src = write_sequence(tmp_path / "in", "dpx", "gbrp10le", range(1, 7))
    (tmp_path / "in" / "frame.000005.dpx").write_bytes(b"not a dpx")
    with pytest.raises(InputError, match=r"frame\.000005\.dpx"):
        run(PASSTHROUGH, src, tmp_path / "out" / "frame.%06d.dpx")
    assert sorted(os.listdir(tmp_path)) == ["in"]  # no final folder, no hidden one


def test_start_timecode_and_ss_on_a_sequence(tmp_path):
    src = write_sequence(tmp_path / "in", "dpx", "gbrp10le", range(1001, 1025))
    sets = ("input.timecode='01:00:00:00'", "output.codec=prores_ks")
    run(PASSTHROUGH, src, tmp_path / "shot.mov", *sets)
    run(PASSTHROUGH, src, tmp_path / "cut.mov", *sets, window=Window.from_ffmpeg("0.5"))
    run(PASSTHROUGH, src, tmp_path / "cut" / "f.%06d.dpx", window=Window.from_ffmpeg("0.5"))
    for name, timecode, frames in (("shot.mov", "01:00:00:00", 24), ("cut.mov", "01:00:00:12", 12)):
        with av.open(str(tmp_path / name)) as c:
            assert c.streams.video[0].metadata["timecode"] == timecode
            assert any(s.type == "data" for s in c.streams)  # the tmcd track
            assert sum(1 for _ in c.decode(video=0)) == frames
    assert sorted(os.listdir(tmp_path / "cut"))[0] == "f.001013.dpx"  # numbering kept


def test_probe_shows_sequence_facts_and_timecode(tmp_path):
    src = write_sequence(tmp_path / "in", "dpx", "gbrp10le", [1001, 1002, 1005])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = probe_input(
            src, InputConfig(gaps="keep", frame_rate="23.976", timecode="01:00:00:00")
        )
    facts = describe_media(info)
    assert facts["timecode"] == "01:00:00:00"
    assert facts["video"]["avg_rate"] == "24000/1001"
    assert facts["video"]["fmt"]["bit_depth"] == 10
    assert facts["sequence"] == {"pattern": src, "first": 1001, "last": 1005, "frames": 3,
                                 "missing": 2, "gaps": "1003-1004"}  # fmt: skip


def test_existing_output_folder_with_other_files_is_not_replaced(tmp_path):
    src = write_sequence(tmp_path / "in", "dpx", "gbrp10le", range(1, 3))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    with pytest.raises(Exception, match="holds other files"):
        run(PASSTHROUGH, src, tmp_path / "out" / "frame.%06d.dpx")
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"


def test_batch_of_shots_in_gives_a_folder_of_shots_out(tmp_path):
    write_sequence(tmp_path / "shots" / "shot_0101", "dpx", "gbrp10le", range(1001, 1004))
    write_sequence(tmp_path / "shots" / "shot_0102", "tif", "rgb48le", range(1, 3))
    pipe = Pipeline(parse_config(PASSTHROUGH, "g.yaml", []))
    jobs = plan_outputs(expand_inputs([str(tmp_path / "shots")]), tmp_path / "out")
    (tmp_path / "out").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = Batch(pipe, jobs).run()
        again = Batch(pipe, jobs).run()
    assert [f.status for f in first.files] == ["done", "done"]
    assert [f.status for f in again.files] == ["skipped", "skipped"]  # a rerun resumes
    assert sorted(os.listdir(tmp_path / "out")) == ["restore-results.json", "shot_0101",
                                                    "shot_0102"]  # fmt: skip
    assert sorted(os.listdir(tmp_path / "out" / "shot_0101")) == [
        f"frame.{n:06d}.dpx" for n in range(1001, 1004)
    ]
    written = read_frame(tmp_path / "out" / "shot_0102" / "frame.000002.tif").to_ndarray()
    assert np.array_equal(written, ramp(2))
