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
