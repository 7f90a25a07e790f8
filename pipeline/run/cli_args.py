"""The command line's arguments: ``run``, ``probe``, ``plan``, ``validate``, ``models``,
``compare`` and their flags, in FFmpeg's vocabulary where it has a word.

Why apart from ``run_pipeline.py``: the flags are the CLI's contract, read in one place;
the script keeps what it does with them (exit codes, signals, progress).
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from pipeline.errors import ConfigError

DESCRIPTION = "Command line: run, probe, plan, validate, models, compare."


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors share our exit path."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run_pipeline.py", description=DESCRIPTION)
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    from pipeline.plan.input_config import add_input_args

    def config_args(sp: argparse.ArgumentParser, required: bool = True) -> None:
        sp.add_argument("-c", "--config", required=required, help="YAML stage graph")
        sp.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set execution.chunk_frames=16",
        )
        sp.add_argument("--executor", choices=["ray", "inline"], help="override execution")
        sp.add_argument("--address", help="Ray cluster to join: 'auto' or ray://host:port")
        add_input_args(sp)

    run = sub.add_parser("run", help="restore a video")
    config_args(run)
    run.add_argument(
        "-i",
        "--input",
        required=True,
        nargs="+",
        help="input video; several files, a folder, a glob or a list file make a batch",
    )
    run.add_argument("-o", "--output", required=True, help="output video (a folder for a batch)")
    run.add_argument("-y", "--overwrite", action="store_true", help="overwrite the output")
    run.add_argument(
        "--work-dir",
        help="where segment mode keeps finished segments (default: .OUTPUT.work beside it)",
    )
    run.add_argument(
        "--restart", action="store_true", help="discard earlier work instead of resuming"
    )
    run.add_argument(
        "--keep-work", action="store_true", help="keep the work directory after success"
    )
    run.add_argument(
        "--progress",
        choices=["auto", "bar", "json", "none"],
        default="auto",
        help="bar on a terminal (auto), JSON lines on stderr, or none",
    )
    window_args(run)
    run.add_argument("--report", metavar="HTML", help="write a self-contained job report")
    run.add_argument("--reference", help="clean video: the report adds PSNR/SSIM/flicker")

    pr = sub.add_parser("probe", help="describe a media file's streams")
    pr.add_argument("input")
    add_input_args(pr)

    pl = sub.add_parser("plan", help="dry run: config, chunk plan, tile grid, memory")
    config_args(pl)
    pl.add_argument("-i", "--input", required=True)

    va = sub.add_parser("validate", help="check a config without touching any video")
    config_args(va)

    sub.add_parser("models", help="list registered networks with measured figures")

    cp = sub.add_parser("compare", help="side-by-side/wipe video or contact sheet, quality")
    cp.add_argument("videos", nargs="+", help="videos to compare, the first sets the timeline")
    cp.add_argument("-o", "--output", required=True, help="out.png (contact sheet) or out.mp4")
    cp.add_argument("-y", "--overwrite", action="store_true", help="overwrite the output")
    cp.add_argument("--labels", help="comma-separated names (default: file names)")
    cp.add_argument("--layout", choices=["side", "wipe"], default="side", help="video layout")
    picks = cp.add_mutually_exclusive_group()
    picks.add_argument("--frames", help="contact sheet frames, e.g. 0,24,48 (default: 4 spread)")
    picks.add_argument("--every", metavar="DURATION", help="contact sheet frame every 2s, ...")
    cp.add_argument("--width", type=int, default=480, help="contact sheet cell width (0: full)")
    cp.add_argument(
        "--reference", help="clean video: per-frame PSNR/SSIM/flicker table (.csv) and plot"
    )
    return p


def window_args(sp: argparse.ArgumentParser) -> None:
    """FFmpeg's trim options and a crop: restore a few seconds of a region first."""
    g = sp.add_argument_group("preview (FFmpeg's words; times count from the first frame)")
    g.add_argument("-ss", dest="ss", metavar="START", help="start at the first frame at/after")
    span = g.add_mutually_exclusive_group()
    span.add_argument("-t", dest="t", metavar="DURATION", help="restore this long")
    span.add_argument("-to", dest="to", metavar="END", help="stop before this time")
    g.add_argument("--crop", metavar="WxH+X+Y", help="restore only this region")
