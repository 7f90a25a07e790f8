"""Shared fixtures: small generated clips and a Ray instance that lives for the session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests import nets  # noqa: F401  (registers the test network and stages)
from tests.media_factory import make_clip


@pytest.fixture
def one_thread():
    """Small tensors: extra threads only add contention (5x slower on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def vfr_audio_clip(clip_dir: Path) -> str:
    """VFR H.264 with AAC audio and BT.709 tags: the everyday hard case."""
    return make_clip(
        clip_dir / "vfr_audio.mp4",
        width=96,
        height=64,
        frames=20,
        vfr=True,
        audio=True,
        matrix="bt709",
        range="tv",
        primaries="bt709",
        transfer="bt709",
    )


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for every Ray test (starting one costs seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A factory for folders on a tiny tmpfs (a full disk, for real): ``small_disk(size)``.
    Needs root (the tests run as root in the dev container); skips elsewhere."""
    import subprocess

    mounted: list[Path] = []

    def make(size: str = "64k") -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
        )
        if result.returncode != 0:
            pytest.skip("a small tmpfs cannot be mounted here (needs root)")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)
