"""The findings ledger: each paper's headline claims beside what the lab measures, with a verdict."""

from featgeom_core.findings.declare import PAPERS, VERDICTS, Finding, Measurement, all_findings, declare
from featgeom_core.findings.result import FindingResult, Ledger

__all__ = ["PAPERS", "VERDICTS", "Finding", "FindingResult", "Ledger", "Measurement", "all_findings", "declare"]
