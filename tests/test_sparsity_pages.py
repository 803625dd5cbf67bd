"""The sparsity pages in AppTest: a validation grid and a layer sweep run as jobs from their pages
and draw; the dictionary explorer opens the sweep, shows an atom and decomposes a token."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from conftest import open_page
from featgeom_core import jobs


def page(path: str, **query: str) -> AppTest:
    return open_page(path, **{"model": "tiny-native", **query})


def settle(at: AppTest, key: str) -> AppTest:
    record = jobs.wait(at.session_state[key], timeout_s=300)
    assert record.status == "done", record.error
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.slow
def test_validation_page_runs_a_grid_and_reads_its_settings_from_the_url(local_backend: None) -> None:
    at = page("pages/sparsity_validation.py", ablation="d = 64", a="2", controls="gaussian", method="greedy")
    assert at.selectbox(key="sv_ablation").value == "d = 64"
    assert at.multiselect(key="sv_a").value == [2.0] and at.multiselect(key="sv_controls").value == ["gaussian"]
    at.button(key="sv_run").click().run()
    settle(at, "sv_job")
    assert len(at.get("plotly_chart")) == 4 + 2  # four metrics against a, two strips against the controls
    table = at.dataframe[0].value
    assert list(table["dataset"]) == ["sparse_linear", "gaussian"] and set(table["d"]) == {64}
    assert at.query_params["job"] == at.session_state["sv_job"] or at.query_params["job"] == [at.session_state["sv_job"]]


@pytest.mark.slow
def test_layer_sweep_runs_from_its_page_and_the_explorer_reads_it(local_backend: None) -> None:
    at = page("pages/sparsity_layers.py", layers="0,1")
    at.number_input(key="sl_tokens").set_value(512)
    at.number_input(key="sl_multiple").set_value(2.0)
    at.toggle(key="sl_calibrate").set_value(False)
    at.button(key="sl_run").click().run()
    settle(at, "sl_job")
    assert len(at.get("plotly_chart")) == 4  # L_norm, S1, explained variance, N0 by layer
    table = at.dataframe[0].value
    assert list(table["set"]) == ["embeddings", "layer 0", "layer 1"]
    job_id = at.session_state["sl_job"]

    explorer = page("pages/dictionary_explorer.py", job=job_id, set="layer 1")
    assert explorer.selectbox(key="dx_job").value == job_id
    assert "atom" in explorer.selectbox(key="dx_atom").format_func(explorer.selectbox(key="dx_atom").value)
    assert explorer.get("plotly_chart"), "no histogram of the atom's coefficients"
    result = jobs.load_result(job_id)
    token = next(s for s in result.token_strings if s.isalpha() and len(s) > 3)
    explorer.text_input(key="dx_token").set_value(token).run()
    assert not explorer.exception, [e.value for e in explorer.exception]
    assert len(explorer.get("plotly_chart")) == 2  # the atom's histogram and the token's decomposition


def test_the_layer_page_says_when_its_calibration_is_stored_and_counts_it_out() -> None:
    """Before the click the page says how long; a calibration an earlier job stored is read, not run."""
    from featgeom_core.models import shared_model
    from featgeom_core.sparsity.jobs import SPARSITY_SYNTHETIC
    from featgeom_core.sparsity.params import ModelSparsityParams
    from featgeom_core.sparsity.run import calibration_grid
    from featgeom_core.store import Store

    def how_long(at: AppTest) -> str:
        (caption,) = [c.value for c in at.caption if "on a 2-core CPU" in c.value]
        return caption

    at = page("pages/sparsity_layers.py", layers="0,1")
    at.number_input(key="sl_tokens").set_value(512).run()
    at.number_input(key="sl_multiple").set_value(2.0).run()
    before = how_long(at)
    assert "is stored" not in before
    params = ModelSparsityParams(model="tiny-native", layers=[0, 1], tokens=512, coding={"dictionary_multiple": 2.0})
    grid = calibration_grid(shared_model("tiny-native").d_model, params)
    Store().put(*SPARSITY_SYNTHETIC.entry(grid, SPARSITY_SYNTHETIC.run(grid, lambda *_: None).result))
    after = how_long(at.run())
    assert "The calibration at this width is stored from an earlier job" in after
