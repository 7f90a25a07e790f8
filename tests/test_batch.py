"""Batches: inputs from files, folders, globs and list files; one failing file does not
stop the others; a results table (also JSON); re-running skips finished files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import run_pipeline
from pipeline.errors import ConfigError, InputError
from pipeline.plan.batch_inputs import expand_inputs, is_batch, plan_outputs
from pipeline.plan.config_loader import parse_config
from pipeline.run.batch import Batch
from pipeline.run.batch_results import RESULTS_NAME
from pipeline.run.runner import Pipeline
from tests.media_factory import decoded, make_clip
from tests.test_segments import GRAPH


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("batch")
    make_clip(d / "long.mkv", width=64, height=48, frames=36, options={"g": "6"})
    make_clip(d / "short.mkv", width=48, height=32, frames=8, vfr=True, options={"g": "4"})
    (d / "broken.mkv").write_bytes(b"not a video at all" * 10)
    (d / "notes.md").write_text("not an input")
    return d


def test_inputs_from_folder_glob_list_and_files(folder: Path, tmp_path: Path):
    names = lambda paths: [p.name for p in paths]  # noqa: E731
    assert names(expand_inputs([str(folder)])) == ["broken.mkv", "long.mkv", "short.mkv"]
    assert names(expand_inputs([str(folder / "s*.mkv")])) == ["short.mkv"]
    listing = tmp_path / "todo.txt"
    listing.write_text(f"# wanted\n{folder / 'short.mkv'}\n\n{folder / 'long.mkv'}\n")
    assert names(expand_inputs([str(listing)])) == ["short.mkv", "long.mkv"]
    both = [str(folder / "long.mkv"), str(folder / "long.mkv"), str(folder / "short.mkv")]
    assert names(expand_inputs(both)) == ["long.mkv", "short.mkv"]  # each once
    assert is_batch([str(folder)]) and is_batch(both) and is_batch([str(listing)])
    assert not is_batch([str(folder / "long.mkv")]) and not is_batch(["-"])
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([str(folder / "missing.mkv")])
    other = tmp_path / "other"
    other.mkdir()
    (other / "long.mkv").write_bytes(b"")
    with pytest.raises(ConfigError, match="both be written"):
        plan_outputs([folder / "long.mkv", other / "long.mkv"], tmp_path / "out")


def test_inline_batch_through_the_cli(folder: Path, tmp_path: Path, capfd):
    config = tmp_path / "g.yaml"
    config.write_text(GRAPH.replace("executor: ray", "executor: inline"))
    out = tmp_path / "out"
    argv = ["run", "-c", str(config), "-i", str(folder / "long.mkv"), str(folder / "short.mkv"),
            "-o", str(out), "--progress", "json"]  # fmt: skip
    assert run_pipeline.main(argv) == 0
    captured = capfd.readouterr()
    assert "short.mkv" in captured.out and "done" in captured.out
    events = [json.loads(ln) for ln in captured.err.splitlines() if ln.startswith("{")]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["files_done"] == progress[-1]["files_total"] == 2
    assert progress[-1]["frames"] == 44
    assert len(decoded(out / "long.mkv")[0]) == 36 and len(decoded(out / "short.mkv")[0]) == 8


@pytest.mark.ray
def test_shared_queue_batch_survives_a_broken_file_and_skips_finished_ones(
    ray_cluster, folder: Path, tmp_path: Path
):
    pipe = Pipeline(parse_config(GRAPH, "g.yaml"))
    out = tmp_path / "out"
    out.mkdir()
    jobs = plan_outputs(expand_inputs([str(folder)]), out)
    summary = Batch(pipe, jobs).run()
    status = {Path(f.input).name: f for f in summary.files}
    assert status["broken.mkv"].status == "failed" and status["broken.mkv"].exit_code == 3
    assert status["long.mkv"].status == status["short.mkv"].status == "done"
    assert status["long.mkv"].mode == "segment" and status["long.mkv"].frames == 36
    assert summary.exit_code == 3  # the worst file's
    # Round robin: the short file (2 segments) is not queued behind the long one (6).
    assert status["short.mkv"].seconds < status["long.mkv"].seconds
    table = json.loads((out / RESULTS_NAME).read_text())
    assert {Path(f["input"]).name: f["status"] for f in table["files"]} == {
        "broken.mkv": "failed", "long.mkv": "done", "short.mkv": "done"}  # fmt: skip
    for name in ("long.mkv", "short.mkv"):  # the same frames as a single-file run
        single = tmp_path / f"single_{name}"
        pipe.run(folder / name, single)
        (pts_b, frames_b), (pts_s, frames_s) = decoded(out / name), decoded(single)
        assert pts_b == pts_s
        for a, b in zip(frames_b, frames_s, strict=True):
            np.testing.assert_array_equal(a, b)
    assert not list(out.glob(".*.work")), "work directories are removed after success"
    again = Batch(pipe, jobs).run()
    status = {Path(f.input).name: f.status for f in again.files}
    assert status == {"broken.mkv": "failed", "long.mkv": "skipped", "short.mkv": "skipped"}


@pytest.mark.ray
def test_shared_queue_outputs_are_checked_and_published_like_a_single_run(
    ray_cluster, folder: Path, tmp_path: Path
):
    """An existing output without -y fails that file before any work (exit 2, the file
    untouched); the others publish through run-owned temporary names, and a killed run's
    leftover temporary file is swept: only outputs and the table remain."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "short.mkv").write_bytes(b"keep me")
    owned = "from pipeline.tempfiles import owned_name; print(owned_name('.long.', '.partial.mkv'))"
    dead = subprocess.run([sys.executable, "-c", owned], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    (out / dead.stdout.strip()).write_bytes(b"half a file")  # its owner has exited
    jobs = plan_outputs([folder / "long.mkv", folder / "short.mkv"], out)
    summary = Batch(Pipeline(parse_config(GRAPH, "g.yaml")), jobs).run()
    status = {Path(f.input).name: f for f in summary.files}
    assert status["long.mkv"].status == "done" and status["long.mkv"].mode == "segment"
    assert status["short.mkv"].exit_code == 2 and "exists" in (status["short.mkv"].error or "")
    assert (out / "short.mkv").read_bytes() == b"keep me"
    assert sorted(p.name for p in out.iterdir()) == ["long.mkv", RESULTS_NAME, "short.mkv"]
    assert len(decoded(out / "long.mkv")[0]) == 36


def test_a_batch_output_is_never_one_of_its_inputs(folder: Path, tmp_path: Path):
    """Regression: an output that is another input of the batch (here through a link)
    was replaced, with -y, before that input was read."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "long.mkv").write_bytes((folder / "long.mkv").read_bytes())
    (tmp_path / "other.mkv").symlink_to(out / "long.mkv")
    with pytest.raises(ConfigError, match="input"):
        plan_outputs([folder / "long.mkv", tmp_path / "other.mkv"], out)
    with pytest.raises(ConfigError, match="input"):  # -i folder -o folder
        plan_outputs([folder / "long.mkv"], folder)


@pytest.mark.ray
def test_a_full_disk_in_a_batch_keeps_the_work_and_exits_4(
    ray_cluster, folder: Path, tmp_path: Path, monkeypatch
):
    """Regression: a full disk while keeping a segment failed the file as an unreadable
    input (3), with its finished segments kept and no resume. Simulated where the work
    directory writes, after long.mkv's first segment."""
    import errno

    from pipeline.run import workdir

    real = workdir.write_atomic

    def full_after_segment_0(path: Path, data: bytes) -> None:
        if path.parent.name == ".long.mkv.work" and path.name.startswith("segment_000001"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(workdir, "write_atomic", full_after_segment_0)
    out = tmp_path / "out"
    jobs = plan_outputs([folder / "long.mkv", folder / "short.mkv"], out)
    out.mkdir()
    summary = Batch(Pipeline(parse_config(GRAPH, "g.yaml")), jobs).run()
    status = {Path(f.input).name: f for f in summary.files}
    assert status["short.mkv"].status == "done"
    assert status["long.mkv"].exit_code == 4 and "disk full" in (status["long.mkv"].error or "")
    assert summary.exit_code == 4


def test_an_output_folder_that_cannot_be_made_is_an_output_error(folder: Path, capfd):
    """Regression: "internal: PermissionError" (exit 1). sysfs refuses even root."""
    config = Path(__file__).resolve().parent.parent / "configs/passthrough.yaml"
    argv = ["run", "-c", str(config), "-i", str(folder / "long.mkv"), str(folder / "short.mkv"),
            "-o", "/sys/newdir"]  # fmt: skip
    assert run_pipeline.main(argv) == 2
    assert "/sys/newdir" in capfd.readouterr().err
