"""The ledger job's computation: every selected finding measured, each cached in the store."""

from __future__ import annotations

import time

from featgeom_core import codec
from featgeom_core.findings.declare import NO_MODEL, Finding, all_findings
from featgeom_core.findings.params import LedgerParams
from featgeom_core.findings.result import FindingResult, Ledger
from featgeom_core.jobs.protocol import JobOutput
from featgeom_core.progress import Progress, sub_progress
from featgeom_core.store import Store, result_key


def planned(params: LedgerParams) -> list[tuple[Finding, str]]:
    """(finding, model) pairs the ledger measures, in order."""
    return [
        (finding, model)
        for finding in all_findings()
        if finding.paper in params.papers and (params.keys is None or finding.key in params.keys)
        for model in finding.models
        if model == NO_MODEL or model in params.models
    ]


def finding_key(finding: Finding, model: str) -> str:
    """Store key of one finding's measurement on one model: its declaration (settings, rule,
    expected verdict) is part of it, so changing a finding measures it anew."""
    declared = {
        "settings": finding.settings,
        "tolerance": finding.tolerance,
        "expected": finding.expected.get(model, ""),
        "departure": finding.departure,
    }
    return result_key("finding", {"key": finding.key, "model": model, **declared}, {})


def measure_finding(finding: Finding, model: str, store: Store, report: Progress) -> FindingResult:
    """One finding on one model, from the store when it was measured before."""
    key = finding_key(finding, model)
    cached = store.get_result(key, FindingResult)
    if cached is not None:
        return cached
    started = time.perf_counter()
    measured = finding.measure(model, store, report)
    result = FindingResult(
        key=finding.key,
        paper=finding.paper,
        claim=finding.claim,
        where=finding.where,
        paper_value=finding.paper_value,
        settings=finding.settings,
        tolerance=finding.tolerance,
        model=model,
        ours=measured.ours,
        verdict=measured.verdict,
        note=measured.note,
        value=measured.value,
        spread=measured.spread,
        expected=finding.expected.get(model, ""),
        view=finding.view.format(model=model),
        seconds=round(time.perf_counter() - started, 1),
        departure=finding.departure,
    )
    arrays, meta = codec.encode(result)
    store.put(key, arrays, meta)
    return result


def run_ledger(params: LedgerParams, report: Progress) -> JobOutput[Ledger]:
    """The ``findings.ledger`` job: the selected findings, in order, with progress weighted by each one's expected minutes."""
    store = Store()
    pairs = planned(params)
    total = sum(f.minutes for f, _ in pairs) or 1.0
    done = 0.0
    results = []
    for finding, model in pairs:
        report(done / total, f"{finding.key} on {model}")
        results.append(measure_finding(finding, model, store, sub_progress(report, done / total, (done + finding.minutes) / total)))
        done += finding.minutes
    return JobOutput(Ledger(tuple(results)))
