"""The job report (``run --report report.html``): one self-contained HTML page.

Why one file with everything inline (pictures as data URIs, CSS and JS in the page, a
Content-Security-Policy that forbids any fetch): it can be mailed, attached to a ticket
or opened offline years later, and opening it contacts nobody. It shows the resolved
graph, time per stage, frames/s over the run, the tile grid drawn over a frame,
before/after crops at full resolution under a slider, per-frame quality and flicker
when a clean reference is given, and the run's summary.
"""

from __future__ import annotations

import base64
import html
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from pipeline.errors import ConfigError
from pipeline.media.output_path import OutputTarget
from pipeline.media.probe import MediaInfo, probe
from pipeline.media.sequence import is_sequence_path
from pipeline.media.sequence_output import is_sequence_output
from pipeline.media.window import Window
from pipeline.plan.config import dump_resolved
from pipeline.plan.graph import StageGraph
from pipeline.run.progress import Progress, ProgressCallback
from pipeline.show.alignment import Aligned, aligned_frames
from pipeline.show.compare import draw_label
from pipeline.show.plots import fps_plot, stage_plot
from pipeline.show.quality import QualityTable
from pipeline.write_guard import refuse_clash

#: Largest before/after crop shown at full resolution (width, height).
CROP_SIZE = (640, 400)
#: Width the tile-grid picture is scaled down to (the grid stays readable).
GRID_WIDTH = 960


def check_report_options(
    report: str | None,
    reference: str | None,
    paths: tuple[str, str],
    config: str | None = None,
    work_dir: str | None = None,
) -> None:
    """Report options (and the output's clashes) are checked before hours of work, not
    after (``paths``: the run's input and output): nothing is written over a file the job
    reads or writes (the report's own file is reserved with the output,
    ``output_path.output_target``)."""
    refuse_clash(paths[1], "-o", {"the config": config})
    if reference and not report:
        raise ConfigError("--reference needs --report (or use the compare command)")
    if not report:
        return
    for path in paths:
        if is_sequence_path(path) or is_sequence_output(path):
            raise ConfigError(
                f"--report compares video files; {path} is a frame sequence: leave "
                "--report out (or restore into a video and run compare on it)"
            )
    if "-" in (*paths, report) or any(Path(p).exists() and not Path(p).is_file() for p in paths):
        raise ConfigError(
            "--report reads the input and output again: give regular files (not '-', a FIFO "
            "or a device)"
        )
    # Even with -y: the report is written after the job, over what it read or wrote.
    named = {"the input": paths[0], "the output": paths[1], "the config": config}
    named |= {"the --reference video": reference, "the work directory": work_dir}
    refuse_clash(report, "--report", named)
    refuse_clash(paths[1], "-o", {"the --reference video": reference})
    if reference:
        probe(reference)  # a video at all (exit 3), before the job, not after it


class ProgressRecorder:
    """A progress callback that keeps every event (for frames/s over the run) and passes
    it on to another callback."""

    def __init__(self, inner: ProgressCallback | None = None) -> None:
        self.inner = inner
        self.events: list[Progress] = []

    def __call__(self, progress: Progress) -> None:
        self.events.append(progress)
        if self.inner is not None:
            self.inner(progress)


def fps_series(events: Sequence[Progress]) -> tuple[list[float], list[float]]:
    """(elapsed seconds, frames/s since the previous event) for each event."""
    times, rates = [], []
    last_t, last_n = 0.0, 0
    for e in events:
        if e.elapsed_s > last_t:
            times.append(e.elapsed_s)
            rates.append((e.frames - last_n) / (e.elapsed_s - last_t))
            last_t, last_n = e.elapsed_s, e.frames
    return times, rates


@dataclass
class ReportInputs:
    """What a finished run knows that the report shows."""

    src: str
    dst: str
    config: Any  # PipelineConfig
    summary: dict[str, Any]
    events: list[Progress] = field(default_factory=list)
    window: Window = field(default_factory=Window)
    reference: str | None = None


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _encode(rgb: np.ndarray, ext: str = ".png") -> str:
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"cannot encode a {ext} picture")
    return _data_uri(data.tobytes(), "image/jpeg" if ext == ".jpg" else "image/png")


def _img(uri: str, alt: str, css: str = "") -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}" class="{css}">'


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    head = f"<thead><tr>{head}</tr></thead>" if head else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def draw_tile_grid(frame: np.ndarray, grid: Any) -> np.ndarray:
    """``frame`` with each tile of ``grid`` outlined; overlaps show as brighter bands."""
    height, width = frame.shape[:2]
    th, tw = grid.tile_shape
    shade = np.zeros((height, width), np.uint8)  # tiles over each pixel (at most 4)
    colours = [(255, 196, 0), (0, 200, 255), (255, 64, 160), (120, 255, 80)]
    out = frame.copy()
    for r, y in enumerate(grid.rows.starts):
        for c, x in enumerate(grid.cols.starts):
            shade[y : y + th, x : x + tw] += 1
            colour = colours[(r % 2) * 2 + c % 2]
            x1, y1 = min(x + tw, width) - 1, min(y + th, height) - 1
            cv2.rectangle(out, (x, y), (x1, y1), colour, max(1, width // 480))
    overlap = shade > 1
    out[overlap] = (out[overlap].astype(np.uint16) * 3 + 2 * 255) // 5  # 60% + 40% white
    if width > GRID_WIDTH:
        out = cv2.resize(out, (GRID_WIDTH, round(height * GRID_WIDTH / width)), cv2.INTER_AREA)
    return out


def busiest_crop(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the ``CROP_SIZE`` region where restoration changed the most."""
    height, width = after.shape[:2]
    w, h = min(CROP_SIZE[0], width), min(CROP_SIZE[1], height)
    # Integers all the way (no float copy of an 8K frame): the change summed over the
    # channels, then over every w x h window (a box filter anchored at the window's
    # corner), best window wins.
    change = cv2.absdiff(before, after).sum(axis=2, dtype=np.uint16)
    sums = cv2.boxFilter(change, cv2.CV_32F, (w, h), anchor=(0, 0), normalize=False)
    valid = sums[: height - h + 1, : width - w + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(x), int(y), w, h


def _middle_pair(inputs: ReportInputs, infos: tuple[MediaInfo, MediaInfo]) -> Aligned | None:
    """The output frame in the middle of the run, with the input frame it came from
    (both found by seeking, so a long film is not decoded up to its middle)."""
    src, dst = infos
    frames, rate = dst.video.frame_count or 0, dst.video.avg_rate
    middle = Fraction(frames // 2) / rate if frames and rate else Fraction(0)
    window = inputs.window
    at_output = Window(start=middle)
    at_input = replace(window, start=window.start + middle)
    # One frame at a time: a batch would convert frames it never shows (8K: GBs).
    return next(aligned_frames([dst, src], [at_output, at_input], batch=1), None)


def _slider(before: np.ndarray, after: np.ndarray) -> str:
    """Before/after at full resolution: the after picture is revealed right of a slider."""
    h, w = after.shape[:2]
    return f"""
<div class="scroll"><div class="ba" style="width:{w}px;height:{h}px">
  {_img(_encode(before), "before", "full")}
  {_img(_encode(after), "after", "full after")}
  <span class="tag left">before</span><span class="tag right">after</span>
</div></div>
<input class="ba-slider" type="range" min="0" max="100" value="50" aria-label="before/after">
"""


def _graph_section(inputs: ReportInputs, view: MediaInfo) -> tuple[str, StageGraph]:
    graph = StageGraph.from_config(inputs.config)
    stages = graph.describe(view.video.fmt.height, view.video.fmt.width)
    flow = " &rarr; ".join(
        ["source"]
        + [f"{html.escape(s['id'])} <small>({html.escape(s['type'])})</small>" for s in stages]
    )
    rows = [
        [s["id"], s["type"], ", ".join(s["inputs"]), s["input_size"], s["output_size"],
         s.get("model", ""), s.get("tiles", {}).get("grid", "")]
        for s in stages
    ]  # fmt: skip
    resolved = yaml.safe_dump(dump_resolved(inputs.config), sort_keys=False)
    body = (
        f"<p class='flow'>{flow}</p>"
        + _table(rows, ["stage", "type", "inputs", "in", "out", "model", "tiles (rows, cols)"])
        + f"<details><summary>resolved config</summary><pre>{html.escape(resolved)}</pre></details>"
    )
    return body, graph


def _time_section(inputs: ReportInputs) -> str:
    seconds = inputs.summary.get("stage_seconds") or {}
    frames = inputs.summary.get("frames_out") or 0
    parts = []
    if seconds:
        rows = [[k, v, frames / v if v > 0 else 0.0] for k, v in seconds.items()]
        parts.append(_table(rows, ["stage", "seconds (all workers)", "frames/s per worker"]))
        parts.append(_img(_data_uri(stage_plot(seconds), "image/png"), "time per stage", "plot"))
    times, rates = fps_series(inputs.events)
    if times:
        parts.append(_img(_data_uri(fps_plot(times, rates), "image/png"), "frames/s", "plot"))
    return "".join(parts) or "<p>No stage ran.</p>"


def _tiles_section(graph: StageGraph, view: MediaInfo, frame: np.ndarray | None) -> str:
    if frame is None:
        return "<p>No frame to draw on.</p>"
    parts = []
    for node, row in zip(
        graph.nodes, graph.describe(view.video.height, view.video.width), strict=True
    ):
        tile_grid = getattr(node.stage, "tile_grid", None)
        if tile_grid is None:
            continue
        w, h = (int(v) for v in row["input_size"].split("x"))
        if (h, w) != frame.shape[:2]:
            continue  # a stage after a resize: its grid is on another frame size
        grid = tile_grid(h, w)
        th, tw = grid.tile_shape
        caption = (
            f"{node.id}: {grid.tiles_per_frame} tiles of {tw}x{th}, "
            f"overlap {grid.overlap} (brighter bands)"
        )
        picture = _img(_encode(draw_tile_grid(frame, grid), ".jpg"), caption, "wide")
        parts.append(f"<figure>{picture}<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "".join(parts) or "<p>No tiled stage.</p>"


def _quality_section(inputs: ReportInputs, infos: tuple[MediaInfo, MediaInfo]) -> str:
    if not inputs.reference:
        return "<p>Give <code>--reference clean.mp4</code> to measure PSNR, SSIM and flicker.</p>"
    ref = probe(inputs.reference)
    table = QualityTable(["restored", "input"])
    for instant in aligned_frames([infos[1], infos[0], ref], [None, inputs.window, inputs.window]):
        table.add(instant)
    means = table.means()
    rows = [[k, m["psnr"], m["ssim"], m["flicker"]] for k, m in means.items()]
    return _table(rows, ["video", "PSNR dB", "SSIM", "flicker (vs reference's)"]) + _img(
        _data_uri(table.plot(), "image/png"), "quality per frame", "plot"
    )


def build_report(inputs: ReportInputs) -> str:
    """The report's HTML."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the run has said what probing these files says
        src_info, dst_info = probe(inputs.src), probe(inputs.dst)
    view = inputs.window.fitted(src_info).view(src_info)
    graph_html, graph = _graph_section(inputs, view)
    pair = _middle_pair(inputs, (src_info, dst_info))
    before_after = "<p>No frames.</p>"
    tiles = _tiles_section(graph, view, pair.frames[1] if pair else None)
    if pair is not None:
        after, before = pair.frames
        if before.shape != after.shape:  # a resizing stage: show input pixels enlarged
            before = cv2.resize(before, after.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        x, y, w, h = busiest_crop(before, after)
        before_after = (
            f"<p>The frame in the middle of the output, the {w}x{h} region at "
            f"({x}, {y}) where restoration changed the most, at full resolution.</p>"
            + _slider(before[y : y + h, x : x + w], after[y : y + h, x : x + w])
            + "<p>Whole frame, after:</p>"
            + _img(_encode(draw_label(after, "after"), ".jpg"), "whole frame after", "wide")
        )
    summary_rows = [[k, v] for k, v in inputs.summary.items() if k != "stage_seconds"]
    window = inputs.window
    span = [
        ["input", inputs.src],
        ["span", f"{float(window.start):g} s to {float(window.end):g} s" if window.end is not None
         else f"{float(window.start):g} s to the end"],
        ["crop", "none" if window.crop is None else
         f"{window.crop.width}x{window.crop.height}+{window.crop.x}+{window.crop.y}"],
    ]  # fmt: skip
    sections = [
        ("Summary", _table(span + summary_rows)),
        ("Graph", graph_html),
        ("Time", _time_section(inputs)),
        ("Before / after", before_after),
        ("Tile grid", tiles),
        ("Quality", _quality_section(inputs, (src_info, dst_info))),
    ]
    body = "".join(f"<section><h2>{t}</h2>{content}</section>" for t, content in sections)
    title = html.escape(f"Restoration report: {Path(inputs.dst).name}")
    return _PAGE.format(title=title, body=body, css=_CSS, script=_SCRIPT)


def write_report(target: OutputTarget, inputs: ReportInputs) -> None:
    """Write the report into ``target``, reserved before the job ran
    (``pipeline.media.output_path.prepare_output``: an unwritable folder fails before hours of
    work, not after them)."""
    target.write(build_report(inputs).encode("utf-8"))


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:22px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
pre{background:#f6f6f6;padding:8px;overflow:auto} .flow{font-family:monospace}
img.plot{max-width:100%} img.wide{max-width:100%;display:block}
.scroll{overflow:auto;max-width:100%}
.ba{position:relative;max-width:none} .ba img{position:absolute;top:0;left:0;max-width:none}
.ba img.after{clip-path:inset(0 0 0 50%)} .ba-slider{width:100%;max-width:640px}
.tag{position:absolute;top:4px;background:#000a;color:#fff;padding:1px 6px;font-size:12px}
.tag.left{left:4px} .tag.right{right:4px}
"""

# The slider moves the clip edge of the 'after' picture; the load check marks the page
# (data-check on <html>: "ok N images", or what failed) for automated viewers.
_SCRIPT = """
(function () {
  var problems = [];
  window.addEventListener("error", function (e) { problems.push(String(e.message)); });
  document.querySelectorAll(".ba-slider").forEach(function (slider) {
    var after = slider.previousElementSibling.querySelector("img.after");
    slider.addEventListener("input", function () {
      after.style.clipPath = "inset(0 0 0 " + slider.value + "%)";
    });
  });
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
    document.documentElement.setAttribute("data-check", problems.length
      ? "errors: " + problems.join("; ")
      : broken.length ? "broken images: " + broken.length : "ok " + images.length + " images");
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<h1>{title}</h1>
{body}
<script>{script}</script>
</body>
</html>
"""
