"""Progress reports: the one callback type every long computation in the core takes.

A report is ``(fraction, message, metrics)``: how far the work is (0 to 1), one line saying what it
is doing, and optional numbers (a loss, a step, an accuracy) that a page can plot without reading
the message. Reports are also where a running job learns it was cancelled: the job runner's report
raises :class:`~featgeom_core.errors.JobCancelled`, so every long loop reports at least about once
a second (the runner throttles what it forwards, not how often it checks).

:func:`sub_progress` maps a part of the work onto a span of the whole, so nested loops report in
the whole's terms without hand-rescaling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

Metrics = Mapping[str, float]


class Progress(Protocol):
    """``report(fraction, message, metrics=None)``: fraction in [0, 1] of this piece of work, a
    one-line message, and optional named numbers (e.g. ``{"step": 10, "loss": 0.3}``)."""

    def __call__(self, fraction: float, message: str, metrics: Metrics | None = None, /) -> None: ...


def silent(fraction: float, message: str, metrics: Metrics | None = None, /) -> None:
    """A report that goes nowhere (the default of every computation)."""


def sub_progress(report: Progress | None, lo: float, hi: float, prefix: str = "") -> Progress:
    """A report for a part of the work that runs from ``lo`` to ``hi`` of ``report``'s range:
    fraction f of the part is ``lo + (hi - lo) * f`` of the whole; messages get ``prefix``;
    metrics pass through unchanged."""
    parent = report or silent
    span = hi - lo

    def part(fraction: float, message: str, metrics: Metrics | None = None, /) -> None:
        parent(lo + span * min(max(fraction, 0.0), 1.0), f"{prefix}{message}", metrics)

    return part


def steps_progress(report: Progress | None, index: int, count: int, prefix: str = "") -> Progress:
    """The report of step ``index`` (0-based) of ``count`` equal steps: ``sub_progress`` over
    ``[index / count, (index + 1) / count]``."""
    count = max(count, 1)
    return sub_progress(report, index / count, (index + 1) / count, prefix)
