"""The findings ledger's guard for the thesis paper (slow tier; see tests/findings_guard.py)."""

from findings_guard import guard

paper_ledger, test_verdict_is_the_declared_one, test_readme_lists_every_finding_with_its_verdict = guard("thesis")
