"""The findings ledger's guard for the sparsity paper's language-model rows (slow tier; see
tests/findings_guard.py): one sparsity.model job on the default model, in its own file so that it
runs beside the synthetic grids of test_findings_sparsity.py, not after them."""

from findings_guard import guard

paper_ledger, test_verdict_is_the_declared_one, test_readme_lists_every_finding_with_its_verdict = guard(
    "sparsity", prefix="featgeom_core.sparsity.layer_findings"
)
