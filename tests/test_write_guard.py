"""Every file the product writes goes through one guard (``pipeline.write_guard``): a
link is written through, never replaced; what a job reads is never what it writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from torch import nn

from models.checkpoint import read_state_dict, save_weights
from pipeline.tempfiles import write_atomic


def _linked(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """(link, the file it names in another folder, holding b"old")."""
    real = tmp_path / "real" / name
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / name
    link.symlink_to(real)
    return link, real


def test_an_atomic_write_to_a_link_replaces_the_file_it_names(tmp_path: Path) -> None:
    """Regression: the temporary file was renamed over the link (the batch's results
    table, the work directory's files)."""
    link, real = _linked(tmp_path, "restore-results.json")
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert [p.name for p in real.parent.iterdir()] == [real.name]


def test_exported_weights_through_a_link_land_in_the_file_it_names(tmp_path: Path) -> None:
    link, real = _linked(tmp_path, "net.safetensors")
    save_weights(nn.Conv2d(3, 3, 1), link)
    assert link.is_symlink() and set(read_state_dict(real)) == {"weight", "bias"}
    assert [p.name for p in real.parent.iterdir()] == [real.name]


def test_converting_a_checkpoint_onto_itself_is_refused(tmp_path: Path) -> None:
    """``python -m models.convert w.safetensors --out w.safetensors`` would replace the
    file it read; refused, the file untouched."""
    import models
    from models.convert import main

    path = tmp_path / "w.safetensors"
    save_weights(models.create_model("test-tiny", pretrained=False), path, dtype=None)
    before = path.read_bytes()
    os.symlink(path, tmp_path / "link.safetensors")
    for out in (path, tmp_path / "link.safetensors"):
        with pytest.raises(SystemExit):
            main([str(path), "--arch", "test-tiny", "--out", str(out)])
    assert path.read_bytes() == before


def test_exporting_weights_over_the_checkpoint_is_refused(tmp_path: Path) -> None:
    from training.export import main

    ckpt = tmp_path / "net.safetensors"
    ckpt.write_bytes(b"a training checkpoint")
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--name", "net", "--out-dir", str(tmp_path)])
    assert ckpt.read_bytes() == b"a training checkpoint"


@pytest.mark.parametrize("name", ["/dev/stderr", "/proc/self/fd/2", "log.mkv"])
def test_the_runs_own_log_is_never_its_output(tmp_path: Path, name: str) -> None:
    """Regression: ``-o /dev/stderr -y 2>> run.log`` replaced the log with the video (its
    earlier lines gone, the run's later messages written into the unlinked file). Writing
    the video into it instead would mix the run's messages into the video: refused, the
    log kept and told why."""
    import subprocess
    import sys

    from tests.media_factory import make_clip

    clip = make_clip(tmp_path / "in.mkv", width=32, height=32, frames=2)
    log = tmp_path / "log.mkv"
    log.write_text("earlier lines\n")
    out = str(log) if name == "log.mkv" else name
    with open(log, "a") as stderr:
        result = subprocess.run(
            [sys.executable, "run_pipeline.py", "run", "-c", "configs/passthrough.yaml",
             "-i", clip, "-o", out, "-y"],
            stderr=stderr, timeout=120, cwd=Path(__file__).parents[1],
        )  # fmt: skip
    text = log.read_text()
    assert result.returncode == 2 and text.startswith("earlier lines\n")
    assert "standard error" in text and "write it elsewhere" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "log.mkv"]
