"""The findings ledger's guard for the sparsity paper (slow tier; see tests/findings_guard.py), and
what the grid behind its findings holds beyond their verdicts (here, so that the grid is computed
once, on the worker that measures the paper)."""

import pytest
from findings_guard import guard

paper_ledger, test_verdict_is_the_declared_one, test_readme_lists_every_finding_with_its_verdict = guard(
    "sparsity", exclude="featgeom_core.sparsity.layer_findings"
)


@pytest.fixture(scope="module")
def ledger_grid() -> list[dict]:
    """The validation job's grid at the paper's settings, seed 0, as the findings ledger reads it
    (computed once per session, then shared with the ledger's sparsity findings)."""
    from featgeom_core.progress import silent
    from featgeom_core.sparsity.findings import grids
    from featgeom_core.store import Store

    return grids(Store(), silent)[0]


@pytest.mark.slow
def test_the_sparsity_papers_validation_at_its_settings(ledger_grid: list[dict]) -> None:
    """d = 256, n = 16,384, dictionary 8d, sigma = 0.1 (section 3.1 and Appendix D)."""
    grid = ledger_grid
    rows = {r["a"]: r for r in grid if r["dataset"] == "sparse_linear"}
    controls = {r["dataset"]: r for r in grid if r["dataset"] != "sparse_linear"}
    for a in (2.0, 5.0, 10.0):
        row = rows[a]
        assert row["s_p"] == pytest.approx(row["planted_s1"], rel=0.25), a  # S1 of the planted coefficients
        assert row["explained_variance"] > 0.95
    for a in (5.0, 10.0):
        assert rows[a]["s_p"] == pytest.approx(a / 2, rel=0.25)  # the paper's a/2, where it approximates the planted S1
    lnorm = [rows[a]["normalized_loss"] for a in (2.0, 5.0, 10.0, 20.0)]
    assert lnorm == sorted(lnorm)  # monotone in a
    assert controls["gaussian"]["normalized_loss"] > lnorm[-1] and controls["rademacher"]["normalized_loss"] > lnorm[-1]
    assert controls["heavy_tailed"]["normalized_loss"] > rows[10.0]["normalized_loss"]
    # N0 fails to separate the heavy-tailed control (the paper's Figure 4): it calls it sparser than a = 10 data
    assert controls["heavy_tailed"]["n0"] < rows[10.0]["n0"]
