"""Bad input: real clips mutated (flipped bytes, truncation, dropped packets, damaged
headers) into a few hundred cases, each run in-process through a no-stage pipeline.

Every case must either complete (damage concealed or dropped and counted, timestamps
increasing, as many frames written as decoded) or raise a ``PipelineError`` with exit
code 2 or 3 and leave nothing but the input in its folder; within a time bound. Anything
else (another exception type, a hang, a partial file) is a bug. A few cases also go
through the CLI to check the exit code and that no traceback reaches the user.
"""

from __future__ import annotations

import collections
import errno
import itertools
import math
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InputError, OutputError, PipelineError
from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_factory import make_clip, make_text_file_as_mp4

REPO = Path(__file__).resolve().parent.parent
CASES_PER_SEED = 52  # x 4 seeds = 208 cases
CASE_TIMEOUT_S = 20.0
PASSTHROUGH = """
version: 1
stages: []
output: {codec: libx264, crf: 20, preset: ultrafast}
execution: {executor: inline, chunk_frames: 5}
"""
SEEDS = {
    "h264_aac.mp4": {"codec": "libx264", "audio": "aac"},
    "ffv1_opus.mkv": {"codec": "ffv1", "audio": "opus", "subtitles": True},
    "vp9.webm": {"codec": "libvpx-vp9"},
    "mpeg4.avi": {"codec": "mpeg4", "audio": "pcm"},
}


def passthrough() -> Pipeline:
    return Pipeline(parse_config(PASSTHROUGH, "fuzz.yaml"))


def drop_packets(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """Remux ``src`` without a random tenth of its packets (a lossy network, say)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.size and packet.dts is not None and rng.random() >= 0.1:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def mutate(seed: Path, dst: Path, case: int) -> str:
    """Write mutation ``case`` of ``seed`` to ``dst``; returns the kind of damage."""
    rng = np.random.default_rng(case)
    data = bytearray(seed.read_bytes())
    kind = ("flip", "truncate", "header", "cut", "drop")[case % 5]
    if kind == "flip":  # scattered bit rot
        for pos in rng.integers(64, len(data), size=int(rng.integers(1, 40))):
            data[pos] ^= int(rng.integers(1, 256))
    elif kind == "truncate":  # interrupted download
        data = data[: int(len(data) * rng.uniform(0.02, 0.98))]
    elif kind == "header":  # container headers and indexes (mp4 keeps its index at the end)
        for _ in range(int(rng.integers(1, 8))):
            tail = rng.random() < 0.4
            pos = int(rng.integers(len(data) * 9 // 10, len(data)) if tail else rng.integers(400))
            data[pos] = int(rng.integers(0, 256))
    elif kind == "cut":  # a span of bytes missing mid-file
        start = int(rng.integers(len(data) // 10, len(data)))
        del data[start : start + int(rng.integers(20, 3000))]
    else:
        drop_packets(seed, dst, rng)
        return kind
    dst.write_bytes(bytes(data))
    return kind


def run_bounded(src: Path, dst: Path) -> tuple[str, object]:
    """Run the pipeline in a thread; ("ok", summary) / ("error", exc) / ("hang", None)."""
    result: list[tuple[str, object]] = []

    def target() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result.append(("ok", passthrough().run(src, dst)))
        except BaseException as exc:  # classified by the caller
            result.append(("error", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(CASE_TIMEOUT_S)
    return result[0] if result else ("hang", None)


def decodable_times(src: Path) -> list[float]:
    """Presentation times (s) of every frame a plain PyAV loop gets out of ``src``: damaged
    packets skipped, reading stopped at the first read error (the reference)."""
    times: list[float] = []
    with av.open(str(src), metadata_errors="replace") as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"  # as the pipeline decodes: threading changes concealment
        packets = c.demux(stream)
        while True:
            try:
                packet = next(packets)
            except (StopIteration, av.FFmpegError):
                break
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            times += [float(f.time) if f.pts is not None else math.nan for f in frames]
    return times


def check_output(src: Path, dst: Path, summary) -> str | None:
    """None if ``dst`` holds the frames of ``src`` that decode, at their times (relative to
    the first; the muxer may shift all), with strictly increasing pts; else a complaint."""
    if not dst.is_file():
        return "no output after success"
    with av.open(str(dst), metadata_errors="replace") as c:
        out = [float(f.time) for f in c.decode(video=0)]
    reference = decodable_times(src)
    if not (len(out) == summary.frames_out == summary.frames_in == len(reference)):
        return f"{len(out)} frames written, summary {summary.frames_out}, input {len(reference)}"
    if any(b <= a for a, b in itertools.pairwise(out)):
        return "pts not strictly increasing"
    if summary.pts_repaired == 0 and out:
        moved = [(o - out[0]) - (r - reference[0]) for o, r in zip(out, reference, strict=True)]
        if max(map(abs, moved)) > 0.0015:
            return f"frame times moved by up to {max(map(abs, moved)):.4f} s"
    return None


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    return {
        name: Path(make_clip(folder / name, frames=15, matrix="bt709", **kw))
        for name, kw in SEEDS.items()
    }


def test_mutated_clips_complete_or_fail_cleanly(seeds: dict[str, Path], tmp_path: Path):
    outcomes: collections.Counter[str] = collections.Counter()
    bugs: list[str] = []
    case = 0
    for name, seed in seeds.items():
        for _ in range(CASES_PER_SEED):
            case += 1
            folder = tmp_path / f"case{case}"
            folder.mkdir()
            src = folder / name
            kind = mutate(seed, src, case)
            dst = folder / "out.mkv"
            status, value = run_bounded(src, dst)
            label = f"case {case} ({name}, {kind})"
            if status == "hang":
                bugs.append(f"{label}: still running after {CASE_TIMEOUT_S} s")
                continue
            leftovers = sorted(p.name for p in folder.iterdir() if p != src)
            if status == "ok":
                problem = check_output(src, dst, value)
                if problem:
                    bugs.append(f"{label}: {problem}")
                if leftovers != ["out.mkv"]:
                    bugs.append(f"{label}: succeeded but left {leftovers}")
                damaged = value.frames_corrupt or value.packets_dropped
                outcomes["ok, damage counted" if damaged else "ok"] += 1
            elif isinstance(value, PipelineError) and value.exit_code in (2, 3):
                outcomes[f"{type(value).__name__} (exit {value.exit_code})"] += 1
                if leftovers:
                    bugs.append(f"{label}: failed but left {leftovers}")
            else:
                bugs.append(f"{label}: {type(value).__name__}: {value}")
    print("\nfuzz outcomes:", dict(outcomes))
    assert case >= 200
    assert not bugs, "\n".join(bugs)


@pytest.mark.parametrize("case", [1, 2, 3, 8, 13, 22])
def test_cli_on_mutated_clips_never_shows_a_traceback(seeds, tmp_path: Path, case: int):
    name = list(seeds)[case % len(seeds)]
    src = tmp_path / name
    mutate(seeds[name], src, case)
    dst = tmp_path / "out.mkv"
    result = subprocess.run(
        [sys.executable, str(REPO / "run_pipeline.py"), "run", "-c", str(REPO / "configs" /
         "passthrough.yaml"), "-i", str(src), "-o", str(dst)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert result.returncode in (0, 2, 3), result.stderr
    assert "Traceback" not in result.stderr
    assert dst.is_file() == (result.returncode == 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({name, dst.name} & {
        p.name for p in tmp_path.iterdir()})  # fmt: skip


def zero_frame_video(path: Path) -> Path:
    """A Matroska file with audio packets and a video stream that has none."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 480), np.int16), "s16", "mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(audio.encode(frame))
    return path


def absurd_y4m(path: Path, width: int, height: int) -> Path:
    """A YUV4MPEG stream whose header claims ``width`` x ``height``, with one tiny frame."""
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F24:1 Ip A1:1 C420jpeg\n".encode() +
                     b"FRAME\n" + bytes(64))  # fmt: skip
    return path


def patched(path: Path, old: bytes, new: bytes) -> Path:
    """``path`` with the bytes ``old`` (which must occur) replaced by ``new``."""
    data = path.read_bytes()
    assert old in data and len(old) == len(new)
    path.write_bytes(data.replace(old, new))
    return path


def unknown_codec_mkv(path: Path, track: str = "video") -> Path:
    """A valid clip whose video (or audio) codec id no decoder knows."""
    make_clip(path, codec="ffv1", frames=3, audio="opus")
    old = b"V_FFV1" if track == "video" else b"A_OPUS"
    return patched(path, old, old[:2] + b"XQZ9")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: Path(make_text_file_as_mp4(d / "notes.mp4")), "not a readable media"),
        (lambda d: zero_frame_video(d / "empty.mkv"), "video stream"),
        (lambda d: absurd_y4m(d / "vast.y4m", 100000, 100000), "not a readable media"),
        (lambda d: absurd_y4m(d / "zero.y4m", 0, 0), "not a readable media"),
        (lambda d: unknown_codec_mkv(d / "alien.mkv"), "unsupported video codec"),
        (lambda d: d / "missing" / "clip.mp4", "not found"),
        (lambda d: d, "directory"),
    ],
    ids=["text", "zero-frames", "vast", "zero-size", "unknown-codec", "missing", "dir"],
)
def test_unusable_inputs_are_input_errors(tmp_path: Path, make, match: str):
    src = make(tmp_path)
    with pytest.raises(InputError, match=match) as info:
        passthrough().run(src, tmp_path / "out.mkv")
    assert info.value.exit_code == 3
    assert not (tmp_path / "out.mkv").exists()


def enospc(*args: object) -> None:
    """ENOSPC as FFmpeg reports it (``av.error.OSError``)."""
    raise av.error.OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "out.mkv")


@pytest.mark.parametrize("where", ["mux", "trailer", "rename"])
def test_full_disk_is_an_output_error_and_leaves_nothing(seeds, tmp_path, monkeypatch, where):
    """The disk fills part-way through the packets, while writing the trailer (index,
    cues), or when the finished file is moved into place: exit 2, nothing left."""
    from pipeline.media import output_path

    calls = collections.Counter()
    real_mux = av.container.OutputContainer.mux
    real_close = av.container.OutputContainer.close

    def mux(self, packets):
        calls["mux"] += 1
        if calls["mux"] > 3:
            enospc()
        return real_mux(self, packets)

    def close(self):
        calls["close"] += 1
        if calls["close"] == 1:  # the trailer; the cleanup's second close goes through
            enospc()
        return real_close(self)

    if where == "mux":
        monkeypatch.setattr(av.container.OutputContainer, "mux", mux)
    elif where == "trailer":
        monkeypatch.setattr(av.container.OutputContainer, "close", close)
    else:
        monkeypatch.setattr(output_path.os, "replace", enospc)
    with pytest.raises(OutputError, match="No space left") as info:
        passthrough().run(seeds["h264_aac.mp4"], tmp_path / "out.mkv")
    assert info.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_audio_in_an_unknown_codec_is_dropped_with_a_warning(tmp_path: Path):
    """Regression (fuzz): an audio stream without a decoder crashed probe and the writer."""
    src = unknown_codec_mkv(tmp_path / "alien_audio.mkv", track="audio")
    with pytest.warns(UserWarning, match="dropped"):
        summary = passthrough().run(src, tmp_path / "out.mkv")
    assert summary.frames_out == 3
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_undecodable_metadata_is_replaced_not_fatal(tmp_path: Path):
    """Regression (fuzz): tags that are not UTF-8 raised UnicodeDecodeError from PyAV."""
    src = make_clip(tmp_path / "tags.mkv", codec="ffv1", frames=3, metadata={"title": "Storm"})
    patched(Path(src), b"Storm", b"St\xe6\xc7m")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = passthrough().run(src, tmp_path / "out.mkv")
    assert summary.frames_out == 3
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert c.metadata["title"] == "St\ufffd\ufffdm"
