"""The findings ledger's result types (frozen dataclasses, stored by :mod:`featgeom_core.codec`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from featgeom_core.findings.declare import expected_verdicts


@dataclass(frozen=True)
class FindingResult:
    """One finding measured on one model (``model`` is ``none`` for synthetic data and toys): the
    claim as declared beside what the lab measured, the verdict, and whether it is the one tests expect."""

    key: str
    paper: str
    claim: str
    where: str
    paper_value: str
    settings: str
    tolerance: str
    model: str
    ours: str
    verdict: str
    note: str = ""
    value: float | None = None
    spread: str = ""
    expected: str = ""
    view: str = ""
    seconds: float = 0.0
    departure: str = ""

    @property
    def fragile(self) -> bool:
        """Whether the declaration allows several verdicts (one that float rounding moves between machines)."""
        return len(expected_verdicts(self.expected)) > 1

    @property
    def as_expected(self) -> bool:
        """Whether the verdict is one declared for this model (True where none is declared)."""
        return not self.expected or self.verdict in expected_verdicts(self.expected)


@dataclass(frozen=True)
class Ledger:
    """Every finding measured, in the ledger's order."""

    findings: tuple[FindingResult, ...]

    def summary(self) -> dict[str, Any]:
        """Verdict counts, and the findings whose verdict is not the expected one."""
        return {
            "findings": len(self.findings),
            "verdicts": dict(Counter(f.verdict for f in self.findings)),
            "unexpected": [f"{f.key} on {f.model}: {f.verdict} (expected {f.expected})" for f in self.findings if not f.as_expected],
        }

    def select(self, paper: str | None = None, model: str | None = None, verdict: str | None = None) -> list[FindingResult]:
        """The findings of one paper / model / verdict (None: any)."""
        return [
            f
            for f in self.findings
            if (paper is None or f.paper == paper) and (model is None or f.model == model) and (verdict is None or f.verdict == verdict)
        ]

    def markdown(self, paper: str) -> str:
        """One paper's findings as a markdown table (the README's reproduction sections)."""
        rows = [
            "| finding | claim | where | paper | model | ours | verdict |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for f in self.select(paper):
            ours = f.ours + (f" ({f.spread})" if f.spread else "")
            fragile = f" (fragile: {f.expected}, by machine)" if f.fragile else ""
            departure = f" Departure: {f.departure}" if f.departure else ""
            verdict = f"**{f.verdict}**{fragile}" + (f": {f.note}" if f.note else "") + departure
            cells = (f"`{f.key}`", _cell(f.claim), _cell(f.where), _cell(f.paper_value), f.model, _cell(ours), _cell(verdict))
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
