"""The findings ledger: declarations that hold together, the ledger job's caching and staleness, the
Findings page. Every verdict on the default model is guarded per paper in ``test_findings_<paper>.py``
(slow tier, tests/findings_guard.py): a change that turns a verdict into another fails there."""

from __future__ import annotations

from dataclasses import replace

import pytest

from featgeom_core import codec
from featgeom_core.findings import PAPERS, VERDICTS, FindingResult, Ledger, all_findings
from featgeom_core.findings.declare import NO_MODEL, Finding, Measurement, declare, expected_text, expected_verdicts, share_verdict
from featgeom_core.findings.params import DEFAULT_LEDGER_MODELS, LedgerParams
from featgeom_core.findings.run import measure_finding, planned, run_ledger
from featgeom_core.progress import silent
from ui.links import BY_PATH


def test_every_finding_is_declared_whole() -> None:
    findings = all_findings()
    assert len({f.key for f in findings}) == len(findings)
    assert {f.paper for f in findings} == set(PAPERS)
    for finding in findings:
        assert finding.key.split(".")[0] in ("thesis", "sparsity", "hessian", "lib"), finding.key
        assert finding.claim and finding.where and finding.paper_value, finding.key
        assert set(finding.expected) == set(finding.models), finding.key
        assert all(set(expected_verdicts(v)) <= set(VERDICTS) for v in finding.expected.values()), finding.key
        fragile = [v for v in finding.expected.values() if isinstance(v, tuple)]
        assert not fragile or "fragile" in finding.departure, f"{finding.key}: a fragile verdict's departure says why"
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


def test_a_fragile_finding_allows_each_of_its_verdicts_and_no_other() -> None:
    finding = all_findings()[0]
    with pytest.raises(ValueError, match="unknown verdict"):
        declare(Finding(**{**finding.__dict__, "key": "test.unknown_verdict", "expected": {m: "fine" for m in finding.models}}))
    row = {"key": "k", "paper": "lib", "claim": "c", "where": "w", "paper_value": "v", "settings": "s", "tolerance": "t", "model": "none"}
    assert expected_text(("partly", "contradicted")) == "partly or contradicted" and expected_text("partly") == "partly"
    for verdict, as_expected in (("partly", True), ("contradicted", True), ("reproduces", False)):
        result = FindingResult(**row, ours="-", verdict=verdict, expected=expected_text(("partly", "contradicted")))
        assert result.as_expected is as_expected, verdict
    shown = Ledger((result,)).markdown("lib")
    assert "**reproduces** (fragile: partly or contradicted, by machine)" in shown, shown


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
    # a reworded claim, paper value or view is the declaration's at once, from the same measurement
    reworded = replace(finding, claim="c2", paper_value="p2", where="w2", view="pages/findings.py")
    third = measure_finding(reworded, NO_MODEL, store, silent)
    assert calls == [NO_MODEL] and (third.claim, third.paper_value, third.where, third.view) == ("c2", "p2", "w2", "pages/findings.py")
    assert third.ours == first.ours


def test_findings_not_run_here_say_why(store) -> None:
    result = run_ledger(LedgerParams(papers=["lib"], models=["minilm"], keys=["lib.cifar10"]), silent).result
    (only,) = result.findings
    assert only.verdict == "not run here" and "CIFAR-10" in only.note and only.as_expected


def test_the_plan_measures_model_findings_on_the_chosen_models_only() -> None:
    pairs = planned(LedgerParams(models=["minilm"]))
    assert {model for _, model in pairs} == {"minilm", NO_MODEL}
    assert planned(LedgerParams(papers=["sparsity"])) and all(f.paper == "sparsity" for f, _ in planned(LedgerParams(papers=["sparsity"])))


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


def test_findings_page_shows_which_verdicts_a_fragile_finding_lands_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import open_page
    from featgeom_core.findings import run as ledger_run
    from featgeom_core.findings.jobs import LEDGER
    from featgeom_core.jobs import manager

    (cifar,) = [f for f in all_findings() if f.key == "lib.cifar10"]
    fragile = replace(cifar, expected={NO_MODEL: ("not run here", "partly")}, departure="fragile: a stand-in")
    monkeypatch.setattr(ledger_run, "all_findings", lambda: [fragile])
    record = manager.run_here(LEDGER.name, LedgerParams(models=["minilm"]).normalised())  # its own job
    assert record.status == "done", record.error
    at = open_page("pages/findings.py", model="tiny-native", findings_on="minilm")
    assert not at.error
    (shown,) = [frame.value for frame in at.dataframe]
    assert list(shown["fragile"]) == ["not run here or partly"], shown


def test_a_stored_ledger_older_than_the_declarations_is_stale(store) -> None:
    from featgeom_core.findings.run import stale

    params = LedgerParams(papers=["lib"], models=["minilm"], keys=["lib.cifar10"])
    current = run_ledger(params, silent).result
    assert stale(current, params) == []
    (only,) = current.findings
    for field, value in (("tolerance", "an older rule"), ("paper_value", "an older value"), ("view", "pages/jobs.py")):
        older = Ledger((replace(only, **{field: value}),))
        assert stale(older, params) == ["lib.cifar10 on none"], field
    assert stale(Ledger(()), params) == ["lib.cifar10 on none"]


def test_a_model_jobs_stored_result_is_found_by_its_fingerprints_and_not_run_again(store) -> None:
    """A model job keys its result on the model's fingerprint beside its params: the ledger finds
    what the page (or its own first row) stored only when it asks with that fingerprint."""
    from featgeom_core.energy.jobs import ENERGY_FIT
    from featgeom_core.findings.declare import computed

    params = ENERGY_FIT.parse(ENERGY_FIT.example)
    result = ENERGY_FIT.run(params, silent).result
    store.put(*ENERGY_FIT.entry(params, result, {"model": "abc"}))
    runs: list[object] = []

    def counting(p, report):
        runs.append(p)
        return ENERGY_FIT.run(p, report)

    kind = replace(ENERGY_FIT, run=counting)  # the same kind (name, key), its runs counted
    found = computed(kind, params, store, silent, {"model": "abc"})
    assert runs == [] and found.joint.objective == result.joint.objective
    computed(kind, params, store, silent)  # without the fingerprint: not found, so run
    assert len(runs) == 1


def test_the_estimate_before_a_first_ledger_is_what_the_last_cold_ledger_took(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The costs file is written from a ledger's measured seconds and read back per (finding, model);
    a finding without a measured cost falls back to its declared minutes."""
    from featgeom_core.findings import costs, run

    params = LedgerParams(papers=["hessian"])
    pairs = planned(params)
    measured = [
        FindingResult(**run._declared(finding, model), ours="-", verdict="reproduces", seconds=30.0 * (k + 1))
        for k, (finding, model) in enumerate(pairs[:-1])
    ]
    path = tmp_path / "costs.json"
    path.write_text(costs.costs_text(Ledger(tuple(measured))))
    monkeypatch.setattr(costs, "COSTS_FILE", path)
    costs.measured_minutes.cache_clear()
    try:
        expected = sum(0.5 * (k + 1) for k in range(len(pairs) - 1)) + pairs[-1][0].minutes
        assert run.estimated_minutes(params) == pytest.approx(expected)
    finally:
        costs.measured_minutes.cache_clear()
