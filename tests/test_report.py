"""``run --report``: one self-contained page, checked as text and rendered in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.run.progress import Progress
from pipeline.show.report import busiest_crop, draw_tile_grid, fps_series
from pipeline.stages.tiling import plan_tiles
from tests.media_factory import make_clip
from tests.test_cli import cli

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real job: the shipped derainer on 0.25-0.5 s of a clip, cropped, with a reference."""
    d = tmp_path_factory.mktemp("report")
    src = make_clip(d / "in.mp4", width=128, height=96, frames=24, content="noise")
    page = d / "report.html"
    result = cli(
        "run", "-c", "configs/sample.yaml", "-i", src, "-o", str(d / "out.mp4"),
        "--executor", "inline", "--set", "stages.derain.tile.size=80",
        "--set", "stages.derain.tile.overlap=16",
        "-ss", "0.25", "-t", "0.25", "--crop", "112x88+8+8",
        "--report", str(page), "--reference", src,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return page


def test_report_is_self_contained_and_complete(report: Path) -> None:
    text = report.read_text()
    sources = re.findall(r'<img src="([^"]*)"', text)
    # Stage time, frames/s, before + after, whole frame, tile grid, quality plot.
    assert len(sources) == 7
    assert all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources)
    assert "http://" not in text and "https://" not in text
    for heading in ("Summary", "Graph", "Time", "Before / after", "Tile grid", "Quality"):
        assert f"<h2>{heading}</h2>" in text
    assert "0.25 s to 0.5 s" in text and "112x88+8+8" in text
    assert "<td>frames_out</td><td>6</td>" in text
    # The restored crop against the untouched input as reference: finite PSNR for the
    # restored video, infinite for the input itself.
    assert re.search(r"<td>restored</td><td>\d+\.\d+</td>", text)
    assert "<td>input</td><td>inf</td>" in text
    # 112x88 in tiles of at most 80: 2 x 2, each shrunk to just cover it with the overlap
    assert "derain: 4 tiles of 72x56" in text


def test_report_needs_files_and_checks_before_running(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", frames=2)
    out = tmp_path / "out.mp4"
    args = ("run", "-c", "configs/passthrough.yaml", "-i", src, "-o", str(out))
    result = cli(*args, "--reference", src)
    assert result.returncode == 2 and "--reference needs --report" in result.stderr
    (tmp_path / "r.html").write_text("old")
    result = cli(*args, "--report", str(tmp_path / "r.html"))
    assert result.returncode == 2 and "exists" in result.stderr
    assert not out.exists()  # refused before any work


def test_fps_series_is_the_rate_between_events() -> None:
    events = [Progress(8, 24, 1.0, 8.0, 2.0), Progress(16, 24, 3.0, 5.3, 1.5)]
    assert fps_series(events) == ([1.0, 3.0], [8.0, 4.0])


def test_busiest_crop_finds_where_restoration_changed_most() -> None:
    before = np.zeros((600, 900, 3), np.uint8)
    after = before.copy()
    after[450:500, 800:850] = 200
    x, y, w, h = busiest_crop(before, after)
    assert (w, h) == (640, 400)
    assert x <= 800 and x + w >= 850 and y <= 450 and y + h >= 500


def test_tile_grid_outlines_every_tile() -> None:
    frame = np.zeros((96, 128, 3), np.uint8)
    grid = plan_tiles(96, 128, 64, 16)
    drawn = draw_tile_grid(frame, grid)
    for y in grid.rows.starts:
        for x in grid.cols.starts:
            assert drawn[y, x].max() > 0  # each tile's corner is outlined
    assert drawn[50, 60].min() > 0  # the overlap band is brightened


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (make test installs it where apt-get works)",
)
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    url = report.as_uri()
    dom = subprocess.run(
        [str(CHROMIUM), *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page's own load check: every image decoded, no script error.
    assert 'data-check="ok 7 images"' in dom.stdout, dom.stdout[:300]
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln]
    assert not console, console  # CSP refusals and script errors are console messages

    shot = tmp_path / "report.png"
    result = subprocess.run(
        [str(CHROMIUM), *flags, f"--screenshot={shot}", "--window-size=1280,2000", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and shot.stat().st_size > 50_000, result.stderr[-2000:]
    if os.environ.get("REPORT_SCREENSHOT"):  # for a person to look at
        shutil.copyfile(shot, os.environ["REPORT_SCREENSHOT"])


def _run_main(*args: str) -> int:
    """``run_pipeline.py run`` in this process (the checks under test come before any work)."""
    import run_pipeline

    return run_pipeline.main(["run", "-c", str(REPO / "configs/passthrough.yaml"), *args])


@pytest.mark.parametrize(
    "clash", ["input", "input-spelled", "input-hard-link", "output", "reference"]
)
def test_the_report_never_replaces_a_file_the_job_reads_or_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, clash: str
) -> None:
    """Regression: ``--report in.mp4`` replaced the input video with HTML (exit 0); the
    report was never checked against the input, the output or the reference."""
    src = Path(make_clip(tmp_path / "in.mp4", frames=2))
    ref = tmp_path / "ref.mp4"
    ref.write_bytes(src.read_bytes())
    before = src.read_bytes()
    monkeypatch.chdir(tmp_path)
    report = {"input": str(src), "input-spelled": "./sub/../in.mp4", "output": "out.mp4",
              "input-hard-link": "linked.mp4", "reference": str(ref)}[clash]  # fmt: skip
    (tmp_path / "sub").mkdir()
    os.link(src, tmp_path / "linked.mp4")
    code = _run_main("-i", str(src), "-o", "out.mp4", "-y", "--report", report,
                     "--reference", str(ref))  # fmt: skip
    assert code == 2, capsys.readouterr().err
    assert "--report" in capsys.readouterr().err
    assert src.read_bytes() == before and ref.read_bytes() == before
    assert not (tmp_path / "out.mp4").exists()


def test_the_output_never_replaces_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = Path(make_clip(tmp_path / "in.mp4", frames=2))
    ref = tmp_path / "ref.mp4"
    ref.write_bytes(src.read_bytes())
    code = _run_main("-i", str(src), "-o", str(ref), "-y", "--report",
                     str(tmp_path / "r.html"), "--reference", str(ref))  # fmt: skip
    assert code == 2 and "reference" in capsys.readouterr().err
    assert ref.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "ref.mp4"]


def test_an_unwritable_report_folder_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Regression: the report was written only after the job had published its output
    (exit 1 "internal"). sysfs refuses new files even to root."""
    src = make_clip(tmp_path / "in.mp4", frames=2)
    code = _run_main("-i", src, "-o", str(tmp_path / "out.mp4"), "--report", "/sys/r.html")
    assert code == 2 and "/sys" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_a_reference_that_is_not_a_video_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Regression: ``--reference notes.txt`` was found unreadable after the job (exit 3
    with the output already published)."""
    src = make_clip(tmp_path / "in.mp4", frames=2)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video\n")
    code = _run_main("-i", src, "-o", str(tmp_path / "out.mp4"),
                     "--report", str(tmp_path / "r.html"), "--reference", str(notes))  # fmt: skip
    assert code == 3 and "notes.txt" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "notes.txt"]


def test_a_full_disk_leaves_no_partial_report(
    tmp_path: Path, capsys: pytest.CaptureFixture, small_disk
) -> None:
    """Regression: a full disk left ``.r.html.partial`` beside the report (exit 1)."""
    src = make_clip(tmp_path / "in.mp4", frames=2)
    disk = small_disk("4k")
    code = _run_main("-i", src, "-o", str(tmp_path / "out.mp4"), "--report", str(disk / "r.html"))
    assert code == 2 and "disk full" in capsys.readouterr().err
    assert list(disk.iterdir()) == []


@pytest.mark.parametrize("flag", ["-o", "--report"])
def test_nothing_is_written_over_the_config(tmp_path: Path, capsys, flag: str) -> None:
    """What a job reads is never what it writes: the config file included."""
    import run_pipeline

    src = make_clip(tmp_path / "in.mp4", frames=2)
    config = tmp_path / "job.yaml"
    config.write_text((REPO / "configs/passthrough.yaml").read_text())
    argv = ["run", "-c", str(config), "-i", src, "-o", str(tmp_path / "out.mp4"), "-y",
            "--report", str(tmp_path / "r.html")]  # fmt: skip
    argv[argv.index(flag) + 1] = str(config)
    assert run_pipeline.main(argv) == 2
    assert "config" in capsys.readouterr().err
    assert config.read_text() == (REPO / "configs/passthrough.yaml").read_text()


def test_the_busiest_crop_is_found_without_float_copies_of_whole_frames() -> None:
    """Regression: ``--report`` on 8K frames peaked at 5.2 GB (1.4 GB without it): whole
    frames were converted to float for a 640x400 crop."""
    import tracemalloc

    before = np.zeros((2000, 3000, 3), np.uint8)
    after = before.copy()
    after[1500:1600, 2800:2900] = 200
    tracemalloc.start()
    x, y, w, h = busiest_crop(before, after)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert x <= 2800 and x + w >= 2900 and y <= 1500 and y + h >= 1600
    assert peak < 3 * before.nbytes, f"{peak / before.nbytes:.1f} frames' worth"


def test_the_middle_pair_converts_only_the_frames_it_shows(tmp_path: Path, monkeypatch) -> None:
    """Regression: finding the middle frame converted a batch of four whole frames per
    video to RGB floats (most of the report's time and memory on large frames)."""
    from pipeline.media import colour
    from pipeline.media.probe import probe
    from pipeline.plan.config_loader import load_config
    from pipeline.show import alignment
    from pipeline.show.report import ReportInputs, _middle_pair

    src = make_clip(tmp_path / "in.mp4", frames=24)
    converted = []
    real = colour.yuv_to_rgb

    def counting(planes, fmt):
        converted.append(planes[0].shape[0])
        return real(planes, fmt)

    monkeypatch.setattr(alignment, "yuv_to_rgb", counting)
    inputs = ReportInputs(src, src, load_config(REPO / "configs/passthrough.yaml"), {})
    assert _middle_pair(inputs, (probe(src), probe(src))) is not None
    assert sum(converted) <= 3, converted  # the frame, and the next one of the other video


def test_a_report_on_an_output_that_cannot_be_read_back_is_refused_first(
    tmp_path: Path, capsys
) -> None:
    """The report reads the output again: ``-o /dev/null`` (or a FIFO) failed only after
    the job (exit 3)."""
    src = make_clip(tmp_path / "in.mp4", frames=2)
    code = _run_main("-i", src, "-o", "/dev/null", "-y", "--report", str(tmp_path / "r.html"))
    assert code == 2 and "--report" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
