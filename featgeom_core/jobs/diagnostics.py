"""Backend checks as job kinds: ``diagnostic.echo`` (submit-to-result overhead) and
``diagnostic.spin`` (one core of pure-Python work, for parallel speed-up and fault tests)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from featgeom_core.jobs.protocol import JobKind, JobOutput, register
from featgeom_core.params import Params
from featgeom_core.progress import Progress


class EchoParams(Params):
    """Anything JSON-able, echoed back."""

    value: Any = Field(None, description="any JSON value; returned as the result")


@dataclass(frozen=True)
class EchoResult:
    """The echoed value."""

    echo: Any

    def summary(self) -> dict[str, Any]:
        return {"echo": self.echo}


def run_echo(params: EchoParams, report: Progress) -> JobOutput[EchoResult]:
    """The trivial job: returns its value."""
    return JobOutput(EchoResult(params.value))


class SpinParams(Params):
    """Busy work holding one core."""

    iterations: int = Field(..., ge=1, le=10**12, description="number of sin() evaluations (pure Python, one core)")
    steps: int = Field(20, ge=1, le=1_000_000, description="progress reports (and cancellation checks) over the run")
    tag: str = Field("", max_length=200, description="free text, to tell otherwise equal runs apart")


@dataclass(frozen=True)
class SpinResult:
    """``total``: the sum computed; ``seconds``: wall time on the worker."""

    total: float
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {"total": self.total, "seconds": round(self.seconds, 3)}


def run_spin(params: SpinParams, report: Progress) -> JobOutput[SpinResult]:
    """CPU-bound busy work, reporting progress ``steps`` times."""
    per_step = max(1, params.iterations // params.steps)
    total = 0.0
    start = time.perf_counter()
    for step in range(params.steps):
        for i in range(per_step):
            total += math.sin(i)
        report((step + 1) / params.steps, f"step {step + 1}/{params.steps}")
    return JobOutput(SpinResult(total, time.perf_counter() - start))


register(JobKind("diagnostic.echo", "trivial job: returns its params", EchoParams, run_echo, EchoResult, example={"value": "hello"}))
register(
    JobKind(
        "diagnostic.spin", "CPU-bound busy work on one core", SpinParams, run_spin, SpinResult, example={"iterations": 10_000, "steps": 4}
    )
)
