"""What a finding is, and the registry every analysis declares its findings into.

A finding pairs one claim of a paper (in our words, with where it is and what the paper reports)
with a measurement the lab makes with its own analyses, and a verdict computed from that
measurement by a rule the finding states (its ``tolerance``). Each analysis package declares its
findings in its ``findings.py`` (listed in :data:`FINDING_MODULES`); nothing here knows any analysis.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from featgeom_core.jobs.protocol import JobKind
from featgeom_core.params import Params
from featgeom_core.progress import Progress
from featgeom_core.store import Store

P = TypeVar("P", bound=Params)
R = TypeVar("R")

Paper = Literal["thesis", "sparsity", "hessian", "lib"]
Verdict = Literal["reproduces", "partly", "contradicted", "not run here"]
PAPERS: dict[Paper, str] = {
    "thesis": "Kaunismaa 2024, energy minimisation of MLP features (papers 000, 001)",
    "sparsity": "Deng, Tao, Benton 2023, measuring feature sparsity (paper 002)",
    "hessian": "Sparse eigendecomposition of sample-level Hessians (paper 003)",
    "lib": "Bushnaq et al. 2024, the Local Interaction Basis (paper 004)",
}
VERDICTS: tuple[Verdict, ...] = ("reproduces", "partly", "contradicted", "not run here")
Expected = Verdict | tuple[Verdict, ...]
"""A finding's declared verdict on a model: one verdict, or the verdicts a fragile measurement
lands on from machine to machine (its departure says why)."""
EXPECTED_OR = " or "
"""How a fragile finding's verdicts are joined in its row (``partly or contradicted``)."""
NO_MODEL = "none"
"""The ``model`` of a finding measured on synthetic data or a toy the finding builds itself."""
FINDING_MODULES: tuple[str, ...] = (
    "featgeom_core.probing.findings",
    "featgeom_core.energy.findings",
    "featgeom_core.sparsity.findings",
    "featgeom_core.sparsity.layer_findings",
    "featgeom_core.hessian.findings",
    "featgeom_core.interaction.findings",
)


@dataclass(frozen=True)
class Measurement:
    """What the lab measured for a finding: ``ours`` (the figures, as text a reader compares with
    the paper's), ``value`` (the one number the verdict reads, if any), ``spread`` (over seeds,
    layers or draws), the ``verdict`` and a ``note`` (why, in a sentence)."""

    ours: str
    verdict: Verdict
    note: str = ""
    value: float | None = None
    spread: str = ""


Measure = Callable[[str, Store, Progress], Measurement]
"""(model id or :data:`NO_MODEL`, the store to cache in, progress) -> the measurement."""


@dataclass(frozen=True)
class Finding:
    """One claim and how the lab checks it.

    ``models``: the model ids it is measured on (``(NO_MODEL,)`` for synthetic data and toys);
    ``expected``: the verdict on each default model, which tests guard (a tuple where the verdict
    is fragile: it moves with float rounding between CPUs, and the departure says why); ``view``: the page (and
    query, ``{model}`` filled in) that shows the measurement.
    """

    key: str
    paper: Paper
    claim: str
    where: str
    paper_value: str
    settings: str
    tolerance: str
    measure: Measure
    models: tuple[str, ...]
    expected: dict[str, Expected]
    view: str = ""
    minutes: float = 1.0
    """About how long one measurement takes on a 2-core CPU, for progress."""
    departure: str = ""
    """How the lab's measurement differs from the paper's procedure, where it does (and what is not yet checked)."""


_REGISTRY: dict[str, Finding] = {}


def declare(finding: Finding) -> Finding:
    """Add a finding to the ledger (its key unique); returns it."""
    if finding.key in _REGISTRY and _REGISTRY[finding.key] is not finding:
        raise ValueError(f"finding {finding.key!r} is declared twice")
    unknown = set(finding.expected) - set(finding.models)
    if unknown:
        raise ValueError(f"finding {finding.key!r} expects verdicts on models it is not measured on: {sorted(unknown)}")
    for verdicts in finding.expected.values():
        if not set(expected_verdicts(verdicts)) <= set(VERDICTS):
            raise ValueError(f"finding {finding.key!r} expects an unknown verdict: {verdicts!r}")
    _REGISTRY[finding.key] = finding
    return finding


def expected_verdicts(expected: Expected | str) -> tuple[str, ...]:
    """The verdicts a declaration (or a row's ``expected`` text) allows; () where none is declared."""
    if isinstance(expected, tuple):
        return expected
    return tuple(expected.split(EXPECTED_OR)) if expected else ()


def expected_text(expected: Expected | None) -> str:
    """A declaration as its row shows it: ``partly``, ``partly or contradicted``, or '' (none)."""
    return EXPECTED_OR.join(expected_verdicts(expected)) if expected else ""


def declare_on_toys(paper: Paper, view: str, **fields: Any) -> Finding:
    """Declare a finding measured on synthetic data or toy models (no language model), shown on ``view``."""
    return declare(Finding(paper=paper, models=(NO_MODEL,), view=view, **fields))


def all_findings() -> list[Finding]:
    """Every declared finding, paper by paper in :data:`PAPERS` order, then in declaration order."""
    for module in FINDING_MODULES:
        importlib.import_module(module)
    order = list(PAPERS)
    return sorted(_REGISTRY.values(), key=lambda f: order.index(f.paper))


def within(value: float, target: float, relative: float) -> bool:
    """|value - target| <= relative * |target|."""
    return abs(value - target) <= relative * abs(target)


def share_verdict(holds: Sequence[bool] | np.ndarray) -> Verdict:
    """reproduces when the claim holds in every case (layer, seed, value of a), partly in some, contradicted in none."""
    values = [bool(v) for v in holds]
    return "reproduces" if values and all(values) else ("partly" if any(values) else "contradicted")


def not_run(reason: str) -> Measure:
    """The measure of a finding this lab cannot run (a model or data set it does not have offline)."""

    def measure(model: str, store: Store, report: Progress) -> Measurement:
        return Measurement(ours="-", verdict="not run here", note=reason)

    return measure


def computed(kind: JobKind[P, R], params: P, store: Store, report: Progress, fingerprints: Mapping[str, str] | None = None) -> R:
    """``kind``'s stored result for ``params`` (one its page or a job already made), else computed
    here and stored where the page and later jobs find it. ``fingerprints``: the inputs the kind's
    result is keyed on beside its params (a model job's ``{"model": fingerprint}``); without them
    such a result is never found, and is computed again on every call."""
    cached = kind.cached(params, store, fingerprints)
    if cached is not None:
        return cached
    output = kind.run(params, report)
    for key, arrays, meta in kind.execute_output(params, output):
        store.put(key, arrays, meta)
    return output.result
