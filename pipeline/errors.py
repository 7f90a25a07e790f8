"""Exceptions that carry the CLI exit code they map to, so every layer can fail cleanly."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class; ``exit_code`` is what ``run_pipeline.py`` exits with."""

    exit_code = 1


class ConfigError(PipelineError):
    """Bad YAML, unknown key, unknown stage or model, bad CLI usage."""

    exit_code = 2


class InputError(PipelineError):
    """The input is missing, unreadable, not a video, or damaged beyond use."""

    exit_code = 3


class OutputError(PipelineError):
    """The output cannot be written (exists without -y, disk full, bad path)."""

    exit_code = 2


class WorkerError(PipelineError):
    """Workers failed beyond their retries (killed, hung, lost with their node, or none
    could be placed); nothing was kept, so running the same command starts over."""

    exit_code = 5


class ResumableError(PipelineError):
    """The job failed but its finished work is kept: the same command resumes it."""

    exit_code = 4
