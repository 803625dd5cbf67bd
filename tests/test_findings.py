"""The findings ledger: declarations that hold together, the ledger job's caching, and (slow tier)
every verdict on the default model guarded: a change that turns a finding's verdict into another
fails here, at the tolerance the ledger states."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from featgeom_core import codec
from featgeom_core.findings import PAPERS, VERDICTS, Ledger, all_findings
from featgeom_core.findings.declare import NO_MODEL, Finding, Measurement, declare, share_verdict
from featgeom_core.findings.params import DEFAULT_LEDGER_MODELS, LedgerParams
from featgeom_core.findings.readme import README_BEGIN, README_END, readme_section
from featgeom_core.findings.run import measure_finding, planned, run_ledger
from featgeom_core.interaction.findings import reference_dir
from featgeom_core.progress import silent
from ui.links import BY_PATH

REPO = Path(__file__).resolve().parents[1]
GUARDED_MODELS = ["minilm"]
"""The default model; findings on synthetic data and toys are guarded whatever the model."""


def test_every_finding_is_declared_whole() -> None:
    findings = all_findings()
    assert len({f.key for f in findings}) == len(findings)
    assert {f.paper for f in findings} == set(PAPERS)
    for finding in findings:
        assert finding.key.split(".")[0] in ("thesis", "sparsity", "hessian", "lib"), finding.key
        assert finding.claim and finding.where and finding.paper_value, finding.key
        assert set(finding.expected) == set(finding.models), finding.key
        assert all(v in VERDICTS for v in finding.expected.values()), finding.key
        assert finding.models == (NO_MODEL,) or set(finding.models) <= set(DEFAULT_LEDGER_MODELS), finding.key
        if finding.view:
            assert finding.view.partition("?")[0] in BY_PATH, finding.view
        if "not run here" not in finding.expected.values():
            assert finding.settings != "-" and finding.tolerance != "-", finding.key


def test_share_verdict_reads_every_some_none() -> None:
    assert share_verdict([True, True]) == "reproduces"
    assert share_verdict([True, False]) == "partly"
    assert share_verdict([False, False]) == "contradicted"
    assert share_verdict([]) == "contradicted"


def test_a_finding_is_declared_once() -> None:
    finding = all_findings()[0]
    with pytest.raises(ValueError, match="declared twice"):
        declare(Finding(**{**finding.__dict__, "claim": "another"}))


def test_the_ledger_measures_once_then_reads_the_store(store) -> None:
    calls = []

    def measure(model: str, store, report) -> Measurement:
        calls.append(model)
        return Measurement(ours="3 of 3", verdict="partly", value=3.0, note="a note")

    finding = Finding(
        key="test.counted",
        paper="hessian",
        claim="c",
        where="w",
        paper_value="p",
        settings="s",
        tolerance="t",
        measure=measure,
        models=(NO_MODEL,),
        expected={NO_MODEL: "reproduces"},
    )
    first = measure_finding(finding, NO_MODEL, store, silent)
    second = measure_finding(finding, NO_MODEL, store, silent)
    assert calls == [NO_MODEL] and first == second
    assert not first.as_expected and first.verdict == "partly"
    ledger = Ledger((first,))
    assert ledger.summary()["unexpected"] == ["test.counted on none: partly (expected reproduces)"]
    arrays, meta = codec.encode(ledger)
    assert codec.decode(Ledger, arrays, meta) == ledger
    assert "| c |" in ledger.markdown("hessian") and "**partly**" in ledger.markdown("hessian")


def test_findings_not_run_here_say_why(store) -> None:
    result = run_ledger(LedgerParams(papers=["lib"], models=["minilm"], keys=["lib.cifar10"]), silent).result
    (only,) = result.findings
    assert only.verdict == "not run here" and "CIFAR-10" in only.note and only.as_expected


def test_the_plan_measures_model_findings_on_the_chosen_models_only() -> None:
    pairs = planned(LedgerParams(models=["minilm"]))
    assert {model for _, model in pairs} == {"minilm", NO_MODEL}
    assert planned(LedgerParams(papers=["sparsity"])) and all(f.paper == "sparsity" for f, _ in planned(LedgerParams(papers=["sparsity"])))


# -- slow tier: every verdict on the default model, computed by the product ------------------------


def peer_checkpoint_here() -> bool:
    return (reference_dir() / "model_epoch_60000.pt").is_file()


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    """The ledger on the default model (cold, in the session's cache), every paper."""
    return run_ledger(LedgerParams(models=GUARDED_MODELS), silent).result


GUARDED = [(f.key, model) for f, model in planned(LedgerParams(models=GUARDED_MODELS))]


@pytest.mark.parametrize("key,model", GUARDED, ids=[f"{k}-{m}" for k, m in GUARDED])
def test_verdict_is_the_declared_one(key: str, model: str, ledger: Ledger) -> None:
    if key.startswith("lib.edge_counts") and not peer_checkpoint_here():
        pytest.skip(f"the peer's checkpoint is not at {reference_dir()}")
    (found,) = [f for f in ledger.findings if f.key == key and f.model == model]
    assert found.verdict == found.expected, (found.ours, found.note)


def test_readme_reproduction_sections_come_from_the_ledger(ledger: Ledger) -> None:
    """README's generated block lists every finding with the verdict the ledger computes now."""
    text = (REPO / "README.md").read_text()
    block = text[text.index(README_BEGIN) : text.index(README_END)]
    for finding in ledger.findings:
        if finding.key.startswith("lib.edge_counts") and not peer_checkpoint_here():
            continue  # measured where the peer's checkpoint is (README's row); not on this machine
        row = [line for line in block.splitlines() if f"`{finding.key}`" in line and f"| {finding.model} |" in line]
        assert row, f"README's findings block lacks {finding.key} on {finding.model}: run scripts/findings_readme.py"
        assert f"**{finding.verdict}**" in row[0], (finding.key, finding.model, finding.verdict, row[0])
    assert readme_section(ledger).count("\n|") >= len(ledger.findings)
    assert not re.search(r"\bTODO\b", block)


def test_findings_page_offers_the_run_then_shows_the_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import open_page
    from featgeom_core.findings import run as ledger_run
    from featgeom_core.findings.jobs import LEDGER
    from featgeom_core.jobs import manager

    at = open_page("pages/findings.py", model="tiny-native")
    assert any("not measured yet" in info.value for info in at.info)
    assert [b.label for b in at.button if b.label == "Measure the findings"]
    # a measured ledger (two quick findings stand in for the real ones): shown per paper, filtered by the URL
    quick = [f for f in all_findings() if f.key in ("lib.cifar10", "hessian.language_model_features")]
    monkeypatch.setattr(ledger_run, "all_findings", lambda: quick)
    record = manager.run_here(LEDGER.name, LedgerParams().normalised())
    assert record.status == "done", record.error
    at = open_page("pages/findings.py", model="tiny-native")
    assert not at.error
    assert any("2 not run here" in caption.value for caption in at.caption)
    assert len(at.dataframe) == 2 and "CIFAR-10" in at.dataframe[1].value.to_string()
    at = open_page("pages/findings.py", model="tiny-native", findings_verdicts="reproduces")
    assert len(at.dataframe) == 0


def test_a_stored_ledger_older_than_the_declarations_is_stale(store) -> None:
    from featgeom_core.findings.run import stale

    params = LedgerParams(papers=["lib"], models=["minilm"], keys=["lib.cifar10"])
    current = run_ledger(params, silent).result
    assert stale(current, params) == []
    (only,) = current.findings
    older = Ledger((replace(only, tolerance="an older rule"),))
    assert stale(older, params) == ["lib.cifar10 on none"]
    assert stale(Ledger(()), params) == ["lib.cifar10 on none"]
