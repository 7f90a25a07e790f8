"""A real two-node Ray cluster on this machine (two raylets): a job survives the loss of
its worker node, and a job whose driver is SIGKILLed resumes, redoing only the rest."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.media.probe import probe
from pipeline.plan.config_loader import parse_config
from pipeline.plan.graph import StageGraph
from pipeline.run.executors import RayExecutor
from pipeline.run.runner import Pipeline
from pipeline.run.workdir import MANIFEST
from tests.media_factory import make_clip

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parent.parent
GRAPH = """
version: 1
stages:
  - {id: slow, type: test-sleep, seconds: 0.25}
  - {id: smooth, type: restore, model: test-tiny, tile: {size: 32, overlap: 8}}
output: {codec: ffv1}
execution: {executor: ray, chunk_frames: 4, num_workers: 2, device: cpu, segment_seconds: 0.3}
"""
#: Notice a dead node within about a second and a half.
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 300,
    "health_check_timeout_ms": 300,
    "health_check_failure_threshold": 3,
}


def decoded(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return [f.pts for f in frames], [f.to_ndarray() for f in frames]


def assert_same(got: Path, want: tuple[list[int], list[np.ndarray]]) -> None:
    pts, frames = decoded(got)
    assert pts == want[0]
    for a, b in zip(frames, want[1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def cluster():
    """Head (1 CPU) plus a worker node (1 CPU): one restore worker on each."""
    import ray
    from ray.cluster_utils import Cluster

    had_session = ray.is_initialized()
    ray.shutdown()
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "_system_config": FAST_HEALTH_CHECKS},
    )
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, logging_level="ERROR")
    yield c
    ray.shutdown()
    c.shutdown()
    if had_session:  # give the session-wide instance back to the tests after these
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("cluster")
    return make_clip(d / "in.mp4", width=64, height=48, frames=40, vfr=True, audio=True,
                     options={"g": "7", "bf": "3"})  # fmt: skip


@pytest.fixture(scope="module")
def reference(clip: str, tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted single-process run."""
    out = tmp_path_factory.mktemp("ref") / "ref.mkv"
    text = GRAPH.replace("seconds: 0.25", "seconds: 0")
    Pipeline(parse_config(text, "g.yaml", ["execution.executor=inline"])).run(clip, out)
    return decoded(out)


def test_default_is_one_cpu_worker_per_node(cluster, clip):
    """Not one worker asking for every CPU of the cluster, which no single node has."""
    info = probe(clip)
    graph = StageGraph.from_config(parse_config(GRAPH, "g.yaml"))
    executor = RayExecutor(graph, info.video.fmt, device="cpu")
    try:
        assert executor.stats.workers == 2
    finally:
        executor.close()


def test_job_survives_sigkill_of_its_worker_node(cluster, clip, reference, tmp_path):
    worker_node = cluster.list_all_nodes()[1]
    killed = []

    def kill_worker_node_once(progress) -> None:
        if not killed:  # the first segment is done: the other node holds work
            cluster.remove_node(worker_node, allow_graceful=False)  # SIGKILL
            killed.append(progress.frames)

    out = tmp_path / "out.mkv"
    t0 = time.monotonic()
    summary = Pipeline(parse_config(GRAPH, "g.yaml")).run(
        clip, out, on_progress=kill_worker_node_once
    )
    assert killed and killed[0] < summary.frames_out
    assert summary.retries >= 1 and summary.frames_out == 40
    assert time.monotonic() - t0 < 120, "no wait for a replacement that cannot be placed"
    assert_same(out, reference)


def test_sigkilled_driver_resumes_and_redoes_less(cluster, clip, reference, tmp_path):
    out, work = tmp_path / "out.mkv", tmp_path / "work"
    config = tmp_path / "g.yaml"
    config.write_text(GRAPH.replace("num_workers: 2", "num_workers: 1"))
    driver = "import sys, tests.nets, run_pipeline; sys.exit(run_pipeline.main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", driver, "run", "-c", str(config), "-i", clip, "-o", str(out),
           "--address", cluster.address, "--work-dir", str(work)]  # fmt: skip
    job = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            try:
                if json.loads((work / MANIFEST).read_text())["done"]:
                    break  # at least one segment is safely kept
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait(10)
    assert not out.exists()
    summary = Pipeline(parse_config(config.read_text(), "g.yaml")).run(clip, out, work_dir=work)
    assert 1 <= summary.segments_reused < summary.segments
    assert_same(out, reference)
