"""What each finding cost when README's ledger was last measured from a cold cache: the Findings
page's estimate before a first measurement, and the ledger job's progress. Written by
``scripts/findings_readme.py`` from the ledger it measures (each finding's stored ``seconds`` are
those of its first, cold measurement), so no figure here is kept by hand."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from featgeom_core.findings.result import Ledger

COSTS_FILE = Path(__file__).with_name("costs.json")
"""{finding key: {model: minutes}}, from the last ledger README was generated from."""


@lru_cache(maxsize=1)
def measured_minutes() -> dict[tuple[str, str], float]:
    """(finding key, model) -> minutes that finding took on that model, cold; empty without the file."""
    if not COSTS_FILE.exists():
        return {}
    table = json.loads(COSTS_FILE.read_text())
    return {(key, model): float(minutes) for key, by_model in table.items() for model, minutes in by_model.items()}


def costs_table(ledger: Ledger) -> dict[str, dict[str, float]]:
    """The ledger's findings' cold costs, {key: {model: minutes}} (to 0.01 min)."""
    table: dict[str, dict[str, float]] = {}
    for finding in ledger.findings:
        table.setdefault(finding.key, {})[finding.model] = round(finding.seconds / 60, 2)
    return table


def costs_text(ledger: Ledger) -> str:
    """:func:`costs_table` as the file's text (sorted, one finding per line)."""
    table = costs_table(ledger)
    lines = [f"  {json.dumps(key)}: {json.dumps(table[key], sort_keys=True)}" for key in sorted(table)]
    return "{\n" + ",\n".join(lines) + "\n}\n"
