"""The ledger job's computation: every selected finding measured, each cached in the store."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any

from featgeom_core import codec
from featgeom_core.config import torch_threads
from featgeom_core.findings.costs import measured_minutes
from featgeom_core.findings.declare import NO_MODEL, Finding, all_findings, expected_text
from featgeom_core.findings.params import LedgerParams
from featgeom_core.findings.result import FindingResult, Ledger
from featgeom_core.jobs.protocol import JobOutput
from featgeom_core.progress import Progress, sub_progress
from featgeom_core.store import Store, canonical_json, result_key

MEASURE_THREADS = 1
"""torch's intra-op threads while a finding is measured, on every machine: README's numbers and the
slow tier's guard (one thread per test worker) must be the same computation. The thread count
moves activations by about 1e-7, and some verdicts follow: on MiniLM the RBF energy rows
(``thesis.energy_rbf_no_separation``) were partly with two threads and contradicted with one, as a
joint fit landed in another of its equally good minima and re-optimisation from there ended elsewhere
(the real target's draws now start from all of its minima; a control seed's still from its best)."""


def planned(params: LedgerParams) -> list[tuple[Finding, str]]:
    """(finding, model) pairs the ledger measures, in order."""
    return [
        (finding, model)
        for finding in all_findings()
        if finding.paper in params.papers and (params.keys is None or finding.key in params.keys)
        for model in finding.models
        if model == NO_MODEL or model in params.models
    ]


def cost_minutes(finding: Finding, model: str) -> float:
    """How long ``finding`` takes on ``model`` from a cold cache, in the ledger's order: what README's
    last ledger measured (:mod:`featgeom_core.findings.costs`), else the finding's declared minutes."""
    return measured_minutes().get((finding.key, model), finding.minutes)


def estimated_minutes(params: LedgerParams) -> float:
    """About how long the ledger of ``params`` takes from a cold cache on a 2-core CPU, in minutes."""
    return sum(cost_minutes(finding, model) for finding, model in planned(params))


def _declared(finding: Finding, model: str) -> dict[str, Any]:
    """The fields of a finding's row that its declaration gives (not measured)."""
    return {
        "key": finding.key,
        "paper": finding.paper,
        "claim": finding.claim,
        "where": finding.where,
        "paper_value": finding.paper_value,
        "settings": finding.settings,
        "tolerance": finding.tolerance,
        "model": model,
        "expected": expected_text(finding.expected.get(model)),
        "view": finding.view.format(model=model),
        "departure": finding.departure,
    }


def declarations_digest(params: LedgerParams) -> str:
    """A digest of every planned finding's declaration: part of the ledger's store key, so a ledger
    measured under other declarations is stored beside it, never read in its place."""
    declared = [_declared(finding, model) for finding, model in planned(params)]
    return hashlib.sha256(canonical_json(declared).encode()).hexdigest()[:16]


def stale(ledger: Ledger, params: LedgerParams) -> list[str]:
    """The findings of ``params`` that ``ledger`` lacks or measured under another declaration (any
    declared field changed since: claim, paper value, settings, rule, expected verdict, view,
    departure): what a re-measure redoes. A ledger job's id hangs on its params only, so a stored one
    can predate today's declarations."""
    measured = {(f.key, f.model): f for f in ledger.findings}
    out = []
    for finding, model in planned(params):
        found = measured.get((finding.key, model))
        declared = _declared(finding, model)
        if found is None or any(getattr(found, name) != value for name, value in declared.items()):
            out.append(f"{finding.key} on {model}")
    return out


def finding_key(finding: Finding, model: str) -> str:
    """Store key of one finding's measurement on one model: its declaration (settings, rule,
    expected verdict) is part of it, so changing a finding measures it anew."""
    declared = {
        "settings": finding.settings,
        "tolerance": finding.tolerance,
        "expected": expected_text(finding.expected.get(model)),
        "departure": finding.departure,
    }
    return result_key("finding", {"key": finding.key, "model": model, **declared}, {})


def measure_finding(finding: Finding, model: str, store: Store, report: Progress) -> FindingResult:
    """One finding on one model, from the store when it was measured before. The declared fields are
    always the declaration's now (a reworded claim does not need a new measurement)."""
    key = finding_key(finding, model)
    cached = store.get_result(key, FindingResult)
    if cached is not None:
        return replace(cached, **_declared(finding, model))
    started = time.perf_counter()
    with torch_threads(MEASURE_THREADS):
        measured = finding.measure(model, store, report)
    result = FindingResult(
        **_declared(finding, model),
        ours=measured.ours,
        verdict=measured.verdict,
        note=measured.note,
        value=measured.value,
        spread=measured.spread,
        seconds=round(time.perf_counter() - started, 1),
    )
    arrays, meta = codec.encode(result)
    store.put(key, arrays, meta)
    return result


def run_ledger(params: LedgerParams, report: Progress) -> JobOutput[Ledger]:
    """The ``findings.ledger`` job: the selected findings, in order, with progress weighted by each one's expected minutes."""
    store = Store()
    pairs = planned(params)
    total = estimated_minutes(params) or 1.0
    done = 0.0
    results = []
    for finding, model in pairs:
        report(done / total, f"{finding.key} on {model}")
        share = cost_minutes(finding, model)
        results.append(measure_finding(finding, model, store, sub_progress(report, done / total, (done + share) / total)))
        done += share
    return JobOutput(Ledger(tuple(results)), fingerprints={"declarations": declarations_digest(params)})
