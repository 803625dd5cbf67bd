"""The slow tier's guard of the findings ledger, one paper per test file (``test_findings_<paper>.py``),
so that parallel workers measure the papers side by side: every verdict on the default model is
the declared one, at the rule the ledger states, and README's generated block lists it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from featgeom_core.findings import Ledger, all_findings
from featgeom_core.findings.declare import expected_verdicts
from featgeom_core.findings.params import LedgerParams
from featgeom_core.findings.readme import README_BEGIN, README_END
from featgeom_core.findings.run import planned, run_ledger
from featgeom_core.interaction.findings import reference_dir
from featgeom_core.progress import silent

REPO = Path(__file__).resolve().parents[1]
GUARDED_MODELS = ["minilm"]
"""The default model; findings on synthetic data and toys are guarded whatever the model."""


def needs_the_peer(finding: Any) -> bool:
    """A finding measured on the peer's checkpoint, which is not on this machine (README has its row from where it is)."""
    return finding.verdict == "not run here" and "the peer's checkpoint is not at" in finding.note


def guard(paper: str, prefix: str = "", exclude: str = "") -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """(the ``paper_ledger`` fixture, the verdict test, the README test) for one paper's findings: those
    measured by a module whose name starts with ``prefix`` and not with ``exclude`` (a paper's findings
    on language models can then run in their own file, on the other worker)."""
    keys = [
        f.key
        for f in all_findings()
        if f.paper == paper and f.measure.__module__.startswith(prefix) and not (exclude and f.measure.__module__.startswith(exclude))
    ]
    params = LedgerParams(papers=[paper], models=GUARDED_MODELS, keys=keys)
    pairs = [(f.key, model) for f, model in planned(params)]

    @pytest.fixture(scope="module")
    def paper_ledger() -> Ledger:
        """The paper's findings on the default model (cold, in the session's cache)."""
        return run_ledger(params, silent).result

    @pytest.mark.parametrize("key,model", pairs, ids=[f"{k}-{m}" for k, m in pairs])
    def test_verdict_is_the_declared_one(key: str, model: str, paper_ledger: Ledger) -> None:
        (found,) = [f for f in paper_ledger.findings if f.key == key and f.model == model]
        if needs_the_peer(found):
            pytest.skip(f"the peer's checkpoint is not at {reference_dir()}")
        assert found.as_expected, (found.verdict, found.expected, found.ours, found.note)

    def test_readme_lists_every_finding_with_its_verdict(paper_ledger: Ledger) -> None:
        """README's generated block lists every finding of the paper with the verdict the ledger computes now."""
        text = (REPO / "README.md").read_text()
        block = text[text.index(README_BEGIN) : text.index(README_END)]
        for finding in paper_ledger.findings:
            if needs_the_peer(finding):
                continue  # measured where the peer's checkpoint is (README's row); not on this machine
            row = [line for line in block.splitlines() if f"`{finding.key}`" in line and f"| {finding.model} |" in line]
            assert row, f"README's findings block lacks {finding.key} on {finding.model}: run scripts/findings_readme.py"
            # a fragile finding's row may come from a machine that landed on another of its declared verdicts
            shown = [finding.verdict] if len(expected_verdicts(finding.expected)) < 2 else expected_verdicts(finding.expected)
            assert any(f"**{verdict}**" in row[0] for verdict in shown), (finding.key, finding.model, finding.verdict, row[0])
        assert not re.search(r"\bTODO\b", block)

    return paper_ledger, test_verdict_is_the_declared_one, test_readme_lists_every_finding_with_its_verdict
