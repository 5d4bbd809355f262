"""The main job (``netstruct run``) and its self-contained HTML report."""

from .job import JobOptions, run_job

__all__ = ["JobOptions", "run_job"]
