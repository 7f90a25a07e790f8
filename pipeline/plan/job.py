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
    sequence_out: str | None = None,
) -> JobPlan:
    """Probe ``src`` and decide the job (``graph``: one already built from ``config``;
    ``sequence_out``: the image codec of a frame sequence output, of RGB frames)."""
    info = probe_input(src, config.input)
    window = (window or Window()).fitted(info)
    view = window.view(info)  # what the stages see: cropped, frames of the span
    graph = graph or StageGraph.from_config(config)
    out_fmt = output_format(config.output, view, graph, sequence_out)
    _warn_about_float(view.video.fmt, graph, out_fmt)
    if out_fmt.alpha:  # the output keeps the source's alpha plane: frames carry it
        carrier = alpha_transport(view, config.output, sequence_out).pix_fmt
        info, view = with_alpha(info, carrier), with_alpha(view, carrier)
    spans = segment_plan(config, info, graph, window)
    return JobPlan(info, window, view, graph, out_fmt, encoder_options(config.output),
                   dropped_stream_types(config.output), spans)  # fmt: skip


def output_format(
    out: OutputConfig, info: MediaInfo, graph: StageGraph, sequence_out: str | None = None
) -> VideoFormat:
    """What is written: a sequence of ``sequence_out`` images, else ``out.codec`` video."""
    src = alpha_transport(info, out, sequence_out)  # alpha kept where the output can hold it
    height, width = graph.output_size(src.height, src.width)
    if sequence_out:
        return sequence_output_format(src.with_size(width, height), sequence_out)
    return pick_output_format(src.with_size(width, height), out.codec, out.pix_fmt, out.options)


def alpha_transport(info: MediaInfo, out: OutputConfig, sequence_out: str | None) -> VideoFormat:
    """The frames' transport format, with ``alpha`` set where they can carry the source's
    alpha plane. FFmpeg has no 4:2:0 12-bit layout with alpha, so those frames carry it as
    4:4:4 12-bit, but only where asked for (``output.pix_fmt``) or going to RGB anyway (a
    sequence): the default output keeps the source's 4:2:0, and says alpha is lost."""
    fmt = info.video.fmt
    if not has_alpha(info.video.source_pix_fmt):
        return fmt
    if fmt.pix_fmt in ALPHA_PIX_FMTS:
        return replace(fmt, alpha=True)
    full = fmt.pix_fmt.replace("420", "444")
    if full in ALPHA_PIX_FMTS and (sequence_out or out.pix_fmt in ALPHA_PIX_FMTS):
        return replace(fmt, pix_fmt=full, alpha=True)
    return fmt


def _warn_about_float(fmt: VideoFormat, graph: StageGraph, out_fmt: VideoFormat) -> None:
    """Say where float (OpenEXR) frames lose their values outside 0..1."""
    if not fmt.is_float:
        return
    if not graph.is_identity:
        message = ("the stages work in 0..1: OpenEXR values outside it are clipped before "
                   "them, NaN made 0 (a graph with no stage keeps them)")  # fmt: skip
    elif not out_fmt.is_float:
        message = (f"a {out_fmt.pix_fmt} output holds 0..1: OpenEXR values outside it are "
                   "clipped, NaN made 0")  # fmt: skip
    else:
        return
    warnings.warn(message, stacklevel=3)
    log.info(message)


def with_alpha(info: MediaInfo, pix_fmt: str) -> MediaInfo:
    """``info`` whose frames are decoded as ``pix_fmt`` with their alpha plane."""
    fmt = replace(info.video.fmt, pix_fmt=pix_fmt, alpha=True)
    return replace(info, video=replace(info.video, fmt=fmt))


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
