"""The temporal stage in every execution mode: chunks and segments carry their neighbours,
so output frame k is the same whichever chunk or segment computed it (issue 23)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import ResumableError
from pipeline.frames import Chunk
from pipeline.media.context import with_context
from pipeline.media.probe import probe
from pipeline.media.window import Window
from pipeline.plan.config_loader import parse_config
from pipeline.plan.graph import StageGraph
from pipeline.plan.job import segment_plan
from pipeline.plan.segments import index_packets
from pipeline.run.batch import Batch
from pipeline.run.runner import Pipeline
from tests.media_factory import decoded, make_clip

FRAMES = 14

#: A temporal stage alone; a per-frame stage before it (it must run on the context too);
#: two temporal stages with a per-frame one between (context needs add up: 1 + 1).
GRAPHS = {
    "temporal": "  - {id: fuse, type: temporal, radius: 2}\n",
    "restore-temporal": (
        "  - {id: sharpen, type: unsharp, amount: 0.8}\n  - {id: fuse, type: temporal, radius: 2}\n"
    ),
    "temporal-chain": (
        "  - {id: fuse1, type: temporal, radius: 1}\n"
        "  - {id: clean, type: median, kernel: 3}\n"
        "  - {id: fuse2, type: temporal, radius: 1, consensus: false}\n"
    ),
}


def config_text(graph: str, executor: str = "inline", chunk_frames: int = 64) -> str:
    return (
        f"version: 1\nstages:\n{graph}output: {{codec: ffv1}}\n"
        f"execution: {{executor: {executor}, chunk_frames: {chunk_frames}, num_workers: 2, "
        "device: cpu, segment_seconds: 0.1}\n"
    )


def run(text: str, src: str, out: Path, **kw: object) -> tuple[list[int], list[np.ndarray]]:
    Pipeline(parse_config(text, "t.yaml")).run(src, out, **kw)  # type: ignore[arg-type]
    return decoded(out)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Short GOPs with B-frames, so that segment mode cuts several segments."""
    d = tmp_path_factory.mktemp("tmodes")
    options = {"g": "4", "bf": "2", "x264-params": "keyint=4:min-keyint=2"}
    return make_clip(d / "in.mp4", frames=FRAMES, options=options)


@pytest.fixture(scope="module")
def references(clip: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """Each graph inline, the whole clip in one chunk."""
    d = tmp_path_factory.mktemp("tref")
    return {name: run(config_text(g), clip, d / f"{name}.mkv") for name, g in GRAPHS.items()}


def times(path: str | Path) -> list[float]:
    with av.open(str(path)) as c:
        return [round(float(f.time), 2) for f in c.decode(video=0)]


def assert_same(got: tuple, want: tuple) -> None:
    assert got[0] == want[0]
    assert len(got[1]) == len(want[1])
    for k, (a, b) in enumerate(zip(got[1], want[1], strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {k}")


def test_with_context_gives_each_chunk_its_neighbours() -> None:
    def chunk(index: int, first: int, n: int, own: bool = True) -> Chunk:
        rows = np.arange(first, first + n, dtype=np.uint8)[:, None, None]
        planes = (rows, rows.copy(), rows.copy())
        return Chunk(index, first, list(range(first, first + n)) if own else [], 1, None, planes)  # type: ignore[arg-type]

    stream = [chunk(0, 0, 2, own=False), chunk(0, 2, 3), chunk(1, 5, 1), chunk(2, 6, 3),
              chunk(3, 9, 2, own=False)]  # fmt: skip
    out = list(with_context(stream, 2))
    assert [c.index for c in out] == [0, 1, 2]
    assert [(c.context_before, c.context_after) for c in out] == [(2, 2), (2, 2), (2, 2)]
    assert [list(c.planes[0][:, 0, 0]) for c in out] == [
        [0, 1, 2, 3, 4, 5, 6],
        [3, 4, 5, 6, 7],
        [4, 5, 6, 7, 8, 9, 10],
    ]
    ends = list(with_context([chunk(0, 0, 1), chunk(1, 1, 1)], 3))
    assert [(c.context_before, c.context_after) for c in ends] == [(0, 1), (1, 0)]


@pytest.mark.parametrize("name", list(GRAPHS))
@pytest.mark.parametrize("chunk_frames", [1, 2, 3, 7])
def test_inline_chunks_equal_one_chunk(clip, references, tmp_path, name, chunk_frames):
    got = run(config_text(GRAPHS[name], chunk_frames=chunk_frames), clip, tmp_path / "o.mkv")
    assert_same(got, references[name])
    assert times(tmp_path / "o.mkv") == times(clip)  # frame count and every time unchanged


def test_the_stage_changes_the_frames(clip, references):
    """The comparisons above would pass for a stage that did nothing."""
    source = decoded(Path(clip))[1]
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in
             zip(references["temporal"][1], source, strict=True)]  # fmt: skip
    assert max(diffs) > 0.5


def test_a_preview_takes_its_context_from_inside_the_window(clip, references, tmp_path):
    window = Window.from_ffmpeg(ss=str(4 / 24), t=str(8 / 24))
    pts, frames = run(config_text(GRAPHS["temporal"], chunk_frames=3), clip,
                      tmp_path / "p.mkv", window=window)  # fmt: skip
    assert len(pts) == 8 and pts[0] == 0  # the span, shifted to start at 0
    full = references["temporal"][1][4:12]
    # Away from the window's edges (radius 2) a preview equals the full run.
    for a, b in zip(frames[2:-2], full[2:-2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_cropped_preview_keeps_every_frame(clip, tmp_path):
    window = Window.from_ffmpeg(ss=str(2 / 24), crop="32x24+16+8")
    text = config_text(GRAPHS["restore-temporal"], chunk_frames=4)
    assert len(run(text, clip, tmp_path / "c.mkv", window=window)[0]) == FRAMES - 2
    video = probe(tmp_path / "c.mkv").video
    assert (video.width, video.height) == (32, 24)


def test_plan_shows_the_context_per_chunk(clip):
    plan = Pipeline(parse_config(config_text(GRAPHS["temporal-chain"], chunk_frames=4),
                                 "t.yaml")).plan(clip)  # fmt: skip
    assert plan["chunks"]["context_frames"] == 2
    assert plan["memory_estimate_bytes"]["per_chunk_in"] > 0
    assert probe(clip).video.frame_count == FRAMES


@pytest.mark.ray
@pytest.mark.parametrize("chunk_frames", [1, 5])
def test_ray_chunk_mode_equals_inline(ray_cluster, clip, references, tmp_path, chunk_frames):
    text = config_text(GRAPHS["restore-temporal"], "ray", chunk_frames).replace(
        "segment_seconds: 0.1", "mode: chunk"
    )
    assert_same(run(text, clip, tmp_path / "o.mkv"), references["restore-temporal"])


def test_segments_carry_their_neighbours_frames(clip):
    info = probe(clip)
    index = index_packets(info)
    spans = segment_plan(parse_config(config_text(GRAPHS["temporal-chain"], "ray"), "t.yaml"),
                         info, StageGraph.from_config(parse_config(config_text(
                             GRAPHS["temporal-chain"]), "t.yaml")))  # fmt: skip
    assert spans is not None and len(spans) >= 3
    frames = sorted(p for p in index.pts if p is not None)
    for s in spans:
        k0, k1 = frames.index(s.frame_pts[0]), frames.index(s.frame_pts[-1])
        assert s.context_before == tuple(frames[max(0, k0 - 2) : k0])
        assert s.context_after == tuple(frames[k1 + 1 : k1 + 3])
        assert index.keyframe[s.first_packet]
        shown = set(index.pts[s.first_packet : s.end_packet])
        assert set(s.context_before) | set(s.frame_pts) | set(s.context_after) <= shown


@pytest.mark.ray
@pytest.mark.parametrize(
    ("name", "chunk_frames", "shared"),
    [("restore-temporal", 1, False), ("temporal-chain", 3, False), ("temporal", 2, True)],
)
def test_segment_mode_equals_inline(
    ray_cluster, clip, references, tmp_path, name, chunk_frames, shared
):
    """``shared``: workers read their packets, context included, from the input file."""
    text = config_text(GRAPHS[name], "ray", chunk_frames)
    overrides = [f"execution.shared_storage={str(shared).lower()}"]
    out = tmp_path / "o.mkv"
    summary = Pipeline(parse_config(text, "t.yaml", overrides)).run(clip, out)
    assert summary.mode == "segment" and summary.segments >= 3
    assert_same(decoded(out), references[name])


@pytest.mark.ray
def test_segment_mode_resumes_with_a_temporal_graph(ray_cluster, clip, references, tmp_path):
    """Segment 1 hangs the first time; the same call reuses segment 0 and matches inline."""
    marker = tmp_path / "hang"
    marker.write_text("")
    hang = f"  - {{id: h, type: test-hang-after, marker: '{marker}', after_frames: 6}}\n"
    text = config_text(hang + GRAPHS["restore-temporal"], "ray", 4)
    overrides = ["execution.num_workers=1", "execution.max_retries=0",
                 "execution.chunk_timeout_s=15"]  # fmt: skip
    out, work = tmp_path / "o.mkv", tmp_path / "work"
    pipe = Pipeline(parse_config(text, "t.yaml", overrides))
    with pytest.raises(ResumableError):
        pipe.run(clip, out, work_dir=work)
    marker.unlink()
    summary = pipe.run(clip, out, work_dir=work)
    assert summary.segments_reused >= 1
    assert_same(decoded(out), references["restore-temporal"])


@pytest.mark.ray
def test_a_batch_queue_of_segments_equals_inline(ray_cluster, clip, references, tmp_path):
    pipe = Pipeline(parse_config(config_text(GRAPHS["temporal-chain"], "ray", 2), "t.yaml"))
    jobs = [(Path(clip), tmp_path / "a.mkv"), (Path(clip), tmp_path / "b.mkv")]
    summary = Batch(pipe, jobs).run()
    assert [f.mode for f in summary.files] == ["segment", "segment"]
    for _, out in jobs:
        assert_same(decoded(out), references["temporal-chain"])
