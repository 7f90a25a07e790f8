"""One job's plan, made once: the input, what the stages see, what is written, how it is cut.

``Pipeline.plan`` (the dry run), ``Pipeline.run`` and batches all build a ``JobPlan``, so
they agree on the output format, the encoder options and the segment plan.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, replace

from pipeline.frames import ALPHA_PIX_FMTS, VideoFormat
from pipeline.media.alpha import has_alpha
from pipeline.media.output_format import pick_output_format
from pipeline.media.probe import MediaInfo
from pipeline.media.sequence import SequenceInfo
from pipeline.media.sequence_output import sequence_output_format
from pipeline.media.window import Window
from pipeline.plan.config import OutputConfig, PipelineConfig
from pipeline.plan.graph import StageGraph
from pipeline.plan.input_config import probe_input
from pipeline.plan.segment_context import add_context
from pipeline.plan.segments import (
    SegmentSpan,
    index_packets,
    plan_segments,
    why_not_segmentable,
)
from pipeline.plan.sequence_segments import plan_sequence_segments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPlan:
    """Everything decided about one input before a frame is decoded."""

    info: MediaInfo  # the input, as probed
    window: Window  # fitted to the input's frame
    view: MediaInfo  # the input as the stages and the encoder see it (cropped, the span)
    graph: StageGraph
    out_fmt: VideoFormat
    options: dict[str, str]  # encoder options
    drop: frozenset[str]  # stream types not carried across
    spans: list[SegmentSpan] | None  # the segment plan; None: chunk mode


def plan_job(
    config: PipelineConfig,
    src: str | os.PathLike,
    graph: StageGraph | None = None,
    window: Window | None = None,
    sequence_out: bool = False,
) -> JobPlan:
    """Probe ``src`` and decide the job (``graph``: one already built from ``config``;
    ``sequence_out``: the output is a frame sequence, of RGB frames)."""
    info = probe_input(src, config.input)
    window = (window or Window()).fitted(info)
    view = window.view(info)  # what the stages see: cropped, frames of the span
    graph = graph or StageGraph.from_config(config)
    out_fmt = output_format(config.output, view, graph, sequence_out)
    _warn_about_float(view.video.fmt, graph, out_fmt)
    if out_fmt.alpha:  # the output keeps the source's alpha plane: frames carry it
        info, view = with_alpha(info), with_alpha(view)
    spans = segment_plan(config, info, graph, window)
    return JobPlan(info, window, view, graph, out_fmt, encoder_options(config.output),
                   dropped_stream_types(config.output), spans)  # fmt: skip


def output_format(
    out: OutputConfig, info: MediaInfo, graph: StageGraph, sequence_out: bool = False
) -> VideoFormat:
    src = info.video.fmt
    if has_alpha(info.video.source_pix_fmt) and src.pix_fmt in ALPHA_PIX_FMTS:
        src = replace(src, alpha=True)  # kept where the output can hold it
    height, width = graph.output_size(src.height, src.width)
    if sequence_out:
        return sequence_output_format(src.with_size(width, height))
    return pick_output_format(src.with_size(width, height), out.codec, out.pix_fmt, out.options)


def _warn_about_float(fmt: VideoFormat, graph: StageGraph, out_fmt: VideoFormat) -> None:
    """Say where float (OpenEXR) frames lose their values outside 0..1."""
    if not fmt.is_float:
        return
    if not graph.is_identity:
        message = ("the stages work in 0..1: OpenEXR values outside it are clipped before "
                   "them (a graph with no stage keeps them)")  # fmt: skip
    elif not out_fmt.is_float:
        message = f"a {out_fmt.pix_fmt} output holds 0..1: OpenEXR values outside it are clipped"
    else:
        return
    warnings.warn(message, stacklevel=3)
    log.info(message)


def with_alpha(info: MediaInfo) -> MediaInfo:
    """``info`` whose frames are decoded with their alpha plane."""
    return replace(info, video=replace(info.video, fmt=replace(info.video.fmt, alpha=True)))


def encoder_options(out: OutputConfig) -> dict[str, str]:
    options = {k: str(v) for k, v in out.options.items()}
    if out.crf is not None:
        options.setdefault("crf", str(out.crf))
    if out.preset is not None:
        options.setdefault("preset", str(out.preset))
    return options


def dropped_stream_types(out: OutputConfig) -> frozenset[str]:
    modes = {"audio": out.audio, "subtitle": out.subtitles}
    return frozenset(kind for kind, mode in modes.items() if mode == "drop")


def segment_plan(
    config: PipelineConfig,
    info: MediaInfo,
    graph: StageGraph,
    window: Window | None = None,
) -> list[SegmentSpan] | None:
    """The segment plan when this job runs in segment mode, else None (chunk mode).

    A trimmed or cropped run (a preview, ``window``) always takes chunks: the driver
    cuts the span frame-exactly and crops the planes before any stage runs, which a
    segment worker's keyframe-aligned cut does not do. A frame sequence is cut by frame
    numbers (``pipeline.plan.sequence_segments``).
    """
    ex = config.execution
    if ex.executor != "ray" or graph.is_identity or ex.mode == "chunk":
        return None
    reason = None
    if window is not None and not window.is_whole:
        reason = "a -ss/-t/-to/--crop preview is cut frame-exactly on the driver"
    elif isinstance(info, SequenceInfo):
        return plan_sequence_segments(info, ex.segment_seconds, graph.temporal_radius)
    else:
        index = index_packets(info)
        reason = why_not_segmentable(index)
    if reason:
        if ex.mode == "segment":
            message = f"cannot cut {info.path} into segments ({reason}); using chunks"
            warnings.warn(message, stacklevel=3)
        log.info("chunk mode: %s", reason)
        return None
    return add_context(index, plan_segments(index, ex.segment_seconds), graph.temporal_radius)
