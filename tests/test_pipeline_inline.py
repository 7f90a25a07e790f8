"""End-to-end runs on the inline executor: the invariants of DESIGN.md, checked via PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import OutputError, PipelineError
from pipeline.plan.config_loader import parse_config
from pipeline.run.runner import Pipeline
from tests.media_factory import make_clip


def video_facts(path: str | Path) -> dict:
    """pts list, size, pix_fmt, colour tags and per-type stream counts of a file."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames = list(c.decode(vs))
        counts: dict[str, int] = {}
        for s in c.streams:
            counts[s.type] = counts.get(s.type, 0) + 1
        return {
            "pts": [f.pts for f in frames],
            "time_base": vs.time_base,
            "size": (vs.codec_context.width, vs.codec_context.height),
            "pix_fmt": vs.codec_context.pix_fmt,
            "colorspace": vs.codec_context.colorspace,
            "color_range": vs.codec_context.color_range,
            "primaries": vs.codec_context.color_primaries,
            "trc": vs.codec_context.color_trc,
            "streams": counts,
            "luma": [f.to_ndarray(format="gray").astype(np.float64) for f in frames],
        }


def packets(path: str | Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [bytes(p) for p in c.demux(streams) if p.size]


def pipeline(yaml_text: str, *overrides: str) -> Pipeline:
    return Pipeline(parse_config(yaml_text, "test.yaml", overrides))


PASSTHROUGH = """
version: 1
stages: []
output: {codec: libx264, crf: 12, preset: ultrafast}
execution: {executor: inline, chunk_frames: 7}
"""

TINY_GRAPH = """
version: 1
stages:
  - {id: smooth, type: restore, model: test-tiny, tile: {size: 32, overlap: 8, batch: 3}}
  - {id: sharpen, type: unsharp, amount: 0.3}
output: {codec: libx264, crf: 12, preset: ultrafast}
execution: {executor: inline, chunk_frames: 6}
"""


def test_passthrough_keeps_timestamps_audio_and_colour(vfr_audio_clip: str, tmp_path: Path):
    out = tmp_path / "out.mp4"
    summary = pipeline(PASSTHROUGH).run(vfr_audio_clip, out)
    src, dst = video_facts(vfr_audio_clip), video_facts(out)
    assert summary.frames_in == summary.frames_out == len(src["pts"]) == 20
    assert [p * dst["time_base"] for p in dst["pts"]] == [p * src["time_base"] for p in src["pts"]]
    assert len(set(np.diff(src["pts"]))) > 1, "fixture should be VFR"
    assert dst["streams"] == src["streams"] == {"video": 1, "audio": 1}
    assert packets(out, "audio") == packets(vfr_audio_clip, "audio")
    for tag in ("colorspace", "color_range", "primaries", "trc"):
        assert dst[tag] == src[tag]
    err = np.mean([np.abs(a - b).mean() for a, b in zip(src["luma"], dst["luma"], strict=True)])
    assert err < 1.5


def test_graph_with_network_and_classic_stage(vfr_audio_clip: str, tmp_path: Path):
    out = tmp_path / "out.mp4"
    summary = pipeline(TINY_GRAPH).run(vfr_audio_clip, out)
    src, dst = video_facts(vfr_audio_clip), video_facts(out)
    assert [p * dst["time_base"] for p in dst["pts"]] == [p * src["time_base"] for p in src["pts"]]
    assert set(summary.stage_seconds) == {"smooth", "sharpen"}
    diff = np.mean([np.abs(a - b).mean() for a, b in zip(src["luma"], dst["luma"], strict=True)])
    assert 0.05 < diff < 20, "the stages should change pixels, gently"


def test_ten_bit_in_gives_ten_bit_out(tmp_path: Path):
    clip = make_clip(tmp_path / "ten.mkv", frames=6, pix_fmt="yuv420p10le", matrix="bt709")
    out = tmp_path / "out.mkv"
    pipeline(TINY_GRAPH).run(clip, out)
    assert video_facts(out)["pix_fmt"] == "yuv420p10le"


def test_odd_size_survives(tmp_path: Path):
    clip = make_clip(tmp_path / "odd.mkv", width=63, height=47, frames=5, pix_fmt="yuv444p")
    out = tmp_path / "out.mkv"
    pipeline(TINY_GRAPH).run(clip, out)
    facts = video_facts(out)
    assert facts["size"] == (63, 47)
    assert len(facts["pts"]) == 5


def test_subtitles_are_copied_in_matroska(tmp_path: Path):
    clip = make_clip(tmp_path / "subs.mkv", frames=8, subtitles=True, audio=True)
    out = tmp_path / "out.mkv"
    pipeline(PASSTHROUGH).run(clip, out)
    assert video_facts(out)["streams"] == {"video": 1, "audio": 1, "subtitle": 1}
    assert packets(out, "subtitle") == packets(clip, "subtitle")


@pytest.mark.parametrize("drop", ["audio", "subtitles"])
def test_streams_can_be_dropped_on_request(drop: str, tmp_path: Path):
    clip = make_clip(tmp_path / "subs.mkv", frames=4, subtitles=True, audio=True)
    out = tmp_path / "out.mkv"
    pipeline(PASSTHROUGH, f"output.{drop}=drop").run(clip, out)
    kept = {"audio": {"video": 1, "subtitle": 1}, "subtitles": {"video": 1, "audio": 1}}[drop]
    assert video_facts(out)["streams"] == kept


def test_resize_changes_output_size(vfr_audio_clip: str, tmp_path: Path):
    out = tmp_path / "half.mp4"
    yaml_text = PASSTHROUGH.replace("stages: []", "stages: [{id: half, type: resize, scale: 0.5}]")
    pipeline(yaml_text).run(vfr_audio_clip, out)
    assert video_facts(out)["size"] == (48, 32)


def test_existing_output_needs_overwrite(vfr_audio_clip: str, tmp_path: Path):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        pipeline(PASSTHROUGH).run(vfr_audio_clip, out)
    assert out.read_bytes() == b"keep me"
    pipeline(PASSTHROUGH).run(vfr_audio_clip, out, overwrite=True)
    assert len(video_facts(out)["pts"]) == 20


def test_output_that_is_the_input_is_refused_even_with_overwrite(
    vfr_audio_clip: str, tmp_path: Path
):
    """Regression: ``-o`` naming the input with ``-y`` replaced the user's original."""
    src = tmp_path / "src.mp4"
    src.write_bytes(Path(vfr_audio_clip).read_bytes())
    (tmp_path / "link.mp4").symlink_to(src)
    original = src.read_bytes()
    for dst in (src, tmp_path / "sub" / ".." / "src.mp4", tmp_path / "link.mp4"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="is the input"):
            pipeline(PASSTHROUGH).run(src, dst, overwrite=True)
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.mp4", "src.mp4", "sub"]


def test_failure_leaves_nothing_under_the_output_name(vfr_audio_clip: str, tmp_path: Path):
    out = tmp_path / "failed.mp4"
    yaml_text = PASSTHROUGH.replace(
        "stages: []", "stages: [{id: boom, type: test-explode, after_frames: 10}]"
    )
    with pytest.raises(RuntimeError, match="exploded"):
        pipeline(yaml_text).run(vfr_audio_clip, out)
    assert list(tmp_path.iterdir()) == []


def test_progress_reaches_the_total(vfr_audio_clip: str, tmp_path: Path):
    events = []
    pipeline(PASSTHROUGH).run(vfr_audio_clip, tmp_path / "p.mp4", on_progress=events.append)
    assert [e.frames for e in events] == [7, 14, 20]
    assert events[-1].total == 20 and events[-1].eta_s == 0


class FaultyExecutor:
    """The real executor, with ``fault`` applied to the chunks it yields: the runner's
    own guards (order, count, end of input) must notice."""

    def __init__(self, inner, fault) -> None:
        self.inner, self.fault = inner, fault
        self.stats = inner.stats

    def map(self, chunks):
        return self.fault(self.inner.map(chunks))

    def close(self) -> None:
        self.inner.close()


def with_fault(monkeypatch: pytest.MonkeyPatch, fault) -> None:
    real = Pipeline._executor
    monkeypatch.setattr(
        Pipeline, "_executor", lambda self, *a, **k: FaultyExecutor(real(self, *a, **k), fault)
    )


def test_frame_count_mismatch_is_an_error(vfr_audio_clip: str, tmp_path: Path, monkeypatch):
    def drop_last(chunks):
        items = list(chunks)  # the whole input is decoded, one chunk is never returned
        yield from items[:-1]

    with_fault(monkeypatch, drop_last)
    with pytest.raises(PipelineError, match="mismatch: 20 in, 14 out"):
        pipeline(PASSTHROUGH).run(vfr_audio_clip, tmp_path / "m.mp4")
    assert list(tmp_path.iterdir()) == []


def test_executor_stopping_early_is_an_error(vfr_audio_clip: str, tmp_path: Path, monkeypatch):
    """Regression: the Ray executor once ended after a retry with chunks still undecoded,
    and the frame count check passed because it compared against frames decoded so far."""

    def first_two(chunks):
        for chunk in chunks:
            yield chunk
            if chunk.index == 1:
                return

    with_fault(monkeypatch, first_two)
    with pytest.raises(PipelineError, match="before the input ended"):
        pipeline(PASSTHROUGH).run(vfr_audio_clip, tmp_path / "e.mp4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "fault, expected",
    [
        (
            lambda chunks: (c for pair in zip(chunks, chunks, strict=False) for c in pair[::-1]),
            "chunk 1 arrived, expected 0",
        ),
        (
            lambda chunks: (c for chunk in chunks for c in (chunk, chunk)),
            "chunk 0 arrived, expected 1",
        ),
    ],
    ids=["swapped", "duplicated"],
)
def test_chunks_out_of_order_are_an_error(
    vfr_audio_clip: str, tmp_path: Path, monkeypatch, fault, expected: str
):
    with_fault(monkeypatch, fault)
    with pytest.raises(PipelineError, match=expected):
        pipeline(PASSTHROUGH).run(vfr_audio_clip, tmp_path / "o.mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_muxer_shifting_every_timestamp_is_reported(tmp_path: Path):
    """MP4 with AAC into Matroska: the copied audio starts below zero, so the muxer
    shifts the whole file; the run must say so rather than change pts silently."""
    clip = make_clip(tmp_path / "in.mp4", frames=6, audio=True)
    src_first = video_facts(clip)
    with pytest.warns(UserWarning, match="shifted every timestamp by"):
        pipeline(PASSTHROUGH).run(clip, tmp_path / "out.mkv")
    out_first = video_facts(tmp_path / "out.mkv")
    shift = (
        out_first["pts"][0] * out_first["time_base"] - src_first["pts"][0] * src_first["time_base"]
    )
    assert shift != 0


def test_no_shift_warning_when_timestamps_are_kept(vfr_audio_clip: str, tmp_path: Path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        pipeline(PASSTHROUGH).run(vfr_audio_clip, tmp_path / "same.mp4")


def test_a_super_resolution_file_doubles_the_frames(vfr_audio_clip: str, tmp_path: Path):
    """A 2x network given as a file (no card) still changes the frame size: its scale
    comes from the architecture the file records."""
    from models.checkpoint import save_weights
    from models.mirnet_v2 import MIRNetV2

    net = MIRNetV2(n_feat=8, rrg_groups=(1,), n_mrb=1, scale=2)
    weights = tmp_path / "x2.safetensors"
    save_weights(net, weights, arch="mirnet_v2", config=net.config)
    out = tmp_path / "double.mp4"
    tile = "{size: 32, overlap: 8}"
    stage = f"stages: [{{id: sr, type: restore, model: '{weights}', tile: {tile}}}]"
    facts_in = video_facts(vfr_audio_clip)
    pipeline(PASSTHROUGH.replace("stages: []", stage)).run(vfr_audio_clip, out)
    facts = video_facts(out)
    assert facts["size"] == (2 * facts_in["size"][0], 2 * facts_in["size"][1])
    assert facts["pts"] == facts_in["pts"]
