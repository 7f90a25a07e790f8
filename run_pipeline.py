#!/usr/bin/env python3
"""Command line: ``run``, ``probe``, ``plan``, ``validate``, ``models``, ``compare``.

Exit codes (stable, for scripts): 0 ok, 1 internal error, 2 usage/config/output error,
3 unreadable input, 4 failed with finished work kept (the same command resumes), 5 workers
failed beyond their retries with nothing kept, 130 interrupted (SIGINT), 143 terminated
(SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from pipeline.errors import ConfigError, PipelineError, ResumableError
from pipeline.run.cli_args import build_parser

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so every ``with`` and ``finally`` cleans up. An
    interrupt because Ray's blocking calls pass only interrupts on (as a plain
    ``KeyboardInterrupt``: ``_terminated`` still tells the two apart)."""


_terminated = threading.Event()


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the cleanup
    _terminated.set()
    raise Terminated


def _window(args: argparse.Namespace) -> Any:
    from pipeline.media.window import Window

    return Window.from_ffmpeg(args.ss, args.t, args.to, args.crop)


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if getattr(args, "executor", None):
        extra.append(f"execution.executor={args.executor}")
    if getattr(args, "address", None):
        extra.append(f"execution.address={args.address}")
    from pipeline.plan.input_config import input_overrides

    return extra + input_overrides(args)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.media.output_path import output_target
    from pipeline.plan.batch_inputs import is_batch
    from pipeline.run.progress import BarReporter, JsonLinesReporter
    from pipeline.run.runner import Pipeline
    from pipeline.show.report import (
        ProgressRecorder,
        ReportInputs,
        check_report_options,
        write_report,
    )

    pipe = Pipeline.from_yaml(args.config, _overrides(args))
    window = _window(args)
    if is_batch(args.input) and (not window.is_whole or args.report or args.reference):
        raise ConfigError("-ss/-t/-to/--crop and --report take one input file, not a batch")
    paths = (args.input[0], args.output)
    check_report_options(args.report, args.reference, paths, args.config, args.work_dir)
    mode = args.progress
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "none"
    reporter = {"bar": BarReporter, "json": JsonLinesReporter}.get(mode)
    on_progress = reporter() if reporter else None
    if is_batch(args.input):
        try:
            return _run_batch(args, pipe, on_progress, mode == "json")
        finally:
            if on_progress is not None:
                on_progress.close()
    recorder = ProgressRecorder(on_progress)
    with contextlib.ExitStack() as stack:
        if args.report:  # checked and reserved with the output, before any work
            read = [p for p in (args.input[0], args.reference) if p]
            report = output_target(args.report, overwrite=args.overwrite, inputs=read)
            report_target = stack.enter_context(report)
        try:
            summary = pipe.run(
                args.input[0],
                args.output,
                overwrite=args.overwrite,
                on_progress=recorder,
                window=window,
                work_dir=args.work_dir,
                restart=args.restart,
                keep_work=args.keep_work,
            )
        finally:
            if on_progress is not None:
                on_progress.close()
        if args.report:
            inputs = ReportInputs(
                args.input[0],
                args.output,
                pipe.config,
                summary.to_dict(),
                recorder.events,
                window,
                args.reference,
            )
            write_report(report_target, inputs)
    if mode == "json":
        print(json.dumps({"event": "summary", **summary.to_dict()}), file=sys.stderr)
    stages = ", ".join(
        f"{k} {summary.frames_out / v:.1f} fps" for k, v in summary.stage_seconds.items() if v > 0
    )
    print(
        f"wrote {summary.output}: {summary.frames_out} frames in {summary.wall_s:.1f} s "
        f"({summary.fps:.1f} fps; {summary.frames_corrupt} corrupt, "
        f"{summary.packets_dropped} packets dropped; "
        f"{summary.workers} worker(s); {summary.retries} retries)"
        + (f"; per stage, per worker: {stages}" if stages else ""),
        file=sys.stderr,
    )
    if summary.segments_reused:
        print(
            f"resumed: reused {summary.segments_reused} of {summary.segments} segments "
            f"({summary.frames_reused} of {summary.frames_out} frames)",
            file=sys.stderr,
        )
    return EXIT_OK


def _run_batch(args: argparse.Namespace, pipe: Any, on_progress: Any, json_events: bool) -> int:
    from pathlib import Path

    from pipeline.plan.batch_inputs import expand_inputs, plan_outputs
    from pipeline.run.batch import Batch
    from pipeline.write_guard import write_error

    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"-o {out_dir}: a batch writes into a folder, and this is a file")
    jobs = plan_outputs(expand_inputs(args.input), out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, out_dir) from None
    batch = Batch(pipe, jobs, overwrite=args.overwrite, restart=args.restart,
                  keep_work=args.keep_work, on_progress=on_progress)  # fmt: skip
    summary = batch.run()
    if json_events:
        print(json.dumps({"event": "batch", **summary.to_dict()}), file=sys.stderr)
    print(summary.table())
    done = sum(f.status in ("done", "skipped") for f in summary.files)
    print(
        f"{done} of {len(summary.files)} files restored in {summary.wall_s:.1f} s; "
        f"table written to {summary.results_path}",
        file=sys.stderr,
    )
    if any(f.exit_code == 4 for f in summary.files):
        print(f"resume with: {_resume_command(None)}", file=sys.stderr)
    return summary.exit_code


def _cmd_probe(args: argparse.Namespace) -> int:
    from pipeline.media.describe import describe_media
    from pipeline.plan.input_config import InputConfig, probe_input

    settings = InputConfig(
        frame_rate=args.rate, start_number=args.start_number, gaps="keep", timecode=args.timecode
    )
    _print_json(describe_media(probe_input(args.input, settings)))
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    from pipeline.run.runner import Pipeline

    _print_json(Pipeline.from_yaml(args.config, _overrides(args)).plan(args.input))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from pipeline.plan.config_loader import load_config

    cfg = load_config(args.config, _overrides(args))
    print(f"{args.config}: ok ({len(cfg.stages)} stage(s))")
    return EXIT_OK


def _cmd_models(_: argparse.Namespace) -> int:
    from models import describe_models

    rows = describe_models()
    header = f"{'name':24} {'task':9} {'params':>9} {'GMACs@256':>10} {'weights':8} metrics"
    print(header)
    for r in rows:
        params = f"{r['params'] / 1e6:.2f}M" if r.get("params") else "-"
        macs = f"{r['gmacs_256']:.1f}" if r.get("gmacs_256") else "-"
        weights = "shipped" if r.get("weights_available") else "-"
        metrics = r.get("metrics_summary", "")
        print(f"{r['name']:24} {r['task']:9} {params:>9} {macs:>10} {weights:8} {metrics}")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from pipeline.show.compare import compare

    result = compare(
        args.videos,
        args.output,
        labels=args.labels.split(",") if args.labels else None,
        layout=args.layout,
        frames=args.frames,
        every=args.every,
        reference=args.reference,
        cell_width=args.width,
        overwrite=args.overwrite,
    )
    if "table" in result:
        print(result["table"])
    print("wrote " + ", ".join(result["written"]), file=sys.stderr)
    return EXIT_OK


def _resume_command(argv: Sequence[str] | None) -> str:
    """The command that was run, minus ``--restart``: running it again resumes the job."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--restart"]
    return shlex.join([sys.executable, sys.argv[0], *args])


COMMANDS = {
    "run": _cmd_run,
    "probe": _cmd_probe,
    "plan": _cmd_plan,
    "validate": _cmd_validate,
    "models": _cmd_models,
    "compare": _cmd_compare,
}


def _work_kept(args: argparse.Namespace) -> bool:
    """Whether an interrupted ``run`` left work that the same command would resume."""
    from pipeline.run.workdir import work_kept

    return args.command == "run" and work_kept(args.output, args.work_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; SIGTERM cleans up like SIGINT while it runs (main thread only)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    _terminated.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return _main(argv)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _main(argv: Sequence[str] | None) -> int:
    debug = False
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        debug = args.debug
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        warnings.simplefilter("default")
        warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
        return COMMANDS[args.command](args)
    except PipelineError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc, ResumableError):
            print(f"resume with: {_resume_command(argv)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated) or _terminated.is_set()
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        if args is not None and _work_kept(args):
            print(f"finished segments are kept; resume with: {_resume_command(argv)}",
                  file=sys.stderr)  # fmt: skip
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except Exception as exc:  # the CLI promises one line, never a traceback
        if debug:
            raise
        print(f"error: internal: {type(exc).__name__}: {exc} (rerun with --debug)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
