"""The findings ledger as a job: ``findings.ledger`` (every selected paper's findings, measured)."""

from __future__ import annotations

from featgeom_core.findings.params import LedgerParams
from featgeom_core.findings.result import Ledger
from featgeom_core.findings.run import run_ledger
from featgeom_core.jobs.protocol import JobKind, register

LEDGER = register(
    JobKind(
        "findings.ledger",
        "each paper's headline claims measured by the lab, with verdicts",
        LedgerParams,
        run_ledger,
        Ledger,
        page="pages/findings.py",
        example={"papers": ["lib"], "models": ["minilm"], "keys": ["lib.cifar10"]},
    )
)
