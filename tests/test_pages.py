"""AppTest runs of the pages: no exceptions, the expected elements, bad input as st.error."""

from __future__ import annotations

import html
import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO_ROOT
from featgeom_core.probing.quality import CONSTRUCTION_WARNING
from ui.report import RECORD
from ui.report_html import report_html

APP = str(REPO_ROOT / "app.py")
HARNESS = str(REPO_ROOT / "tests" / "harness" / "single_page.py")


def app(script: str = APP, **query: str) -> AppTest:
    at = AppTest.from_file(script, default_timeout=300)
    for key, value in query.items():
        at.query_params[key] = value
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_home_page_on_the_tiny_native_model() -> None:
    at = app(model="tiny-native")
    at.run()
    assert_clean(at)
    assert [m.label for m in at.metric] == ["Model", "Feature set", "Device"]
    assert at.metric[0].value == "tiny-native"
    assert not at.error


@pytest.mark.parametrize("model,layers,n_layers", [("tiny-native", "0,1", 2), ("minilm", "0,5", 2)])
def test_geometry_page_draws_heatmaps_tables_and_downloads(model: str, layers: str, n_layers: int) -> None:
    at = app(model=model, layers=layers, features="athlete_sport")
    at.run()
    at.switch_page("pages/geometry.py").run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 2 * 3  # the shown layer's {cosine, rbf} x {real, permuted, shuffled}
    assert at.get("button_group")[0].proto.options  # one option per chosen layer
    assert len(at.get("button_group")[0].proto.options) == n_layers
    assert len(at.dataframe) == 3  # probe quality, accuracy per feature, real against controls
    quality = at.dataframe[0].value
    assert {"chance", "always the commonest answer", "beats chance"} <= set(quality.columns) and len(quality) == n_layers
    if model == "tiny-native":  # random weights: the probes cannot beat chance, and the page says what that means
        assert set(quality["beats chance"]) == {"no"}
        assert any(CONSTRUCTION_WARNING in w.value for w in at.warning)
        record = at.session_state[RECORD]  # the exported report opens with the same warning
        assert any(CONSTRUCTION_WARNING in w for w in record.warnings) and html.escape(CONSTRUCTION_WARNING) in report_html(record)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[:3] == ["PSMs (CSV)", "Directions (NPZ)", "Settings (JSON)"]
    assert "Report (HTML)" in labels  # the page runs inside app.py's frame, as in a browser (ui.errors.leave_pages_directory_mode)
    assert at.query_params["layers"] == [layers] or at.query_params["layers"] == layers


def test_url_reproduces_the_view() -> None:
    at = app(model="tiny-native", layers="0,1", features="art_type", hook="resid_post", dedup="1", threshold="0.8", layer="1")
    at.run()
    assert_clean(at)
    assert at.multiselect(key="layers").value == [0, 1]
    assert at.selectbox(key="feature_set_name").value == "art_type"
    assert at.radio(key="hook").value == "resid_post"
    at.switch_page("pages/geometry.py").run()
    assert_clean(at)
    assert at.toggle(key="dedup").value is True
    assert at.slider(key="threshold").value == pytest.approx(0.8)
    assert len(at.get("plotly_chart")) == 6
    assert "layer 1" in at.get("plotly_chart")[0].proto.spec


def test_unknown_model_shows_an_error_not_a_traceback() -> None:
    at = app(model="no-such-model")
    at.run()
    assert_clean(at)
    assert any("unknown model" in e.value for e in at.error)
    at.switch_page("pages/geometry.py").run()
    assert_clean(at)


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="csv_upload").set_value((name, content, "text/csv"))
    return at.run()


@pytest.mark.parametrize(
    "content,message",
    [
        (b"words,label\nhi,a\n", "missing the column"),
        (b"text,label\n" + b"hi,a\n" * 8, "only one class"),
        (b"text,label\nhi,a\n,b\nho,a\nhu,b\n", "empty text"),
    ],
)
def test_bad_csv_upload_shows_an_error_and_keeps_the_current_view(content: bytes, message: str) -> None:
    at = app(HARNESS, page="pages/geometry.py", model="tiny-native", layers="0", features="art_type")
    at.run()
    charts_before = len(at.get("plotly_chart"))
    _upload(at, "bad.csv", content)
    assert_clean(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.selectbox(key="feature_set_name").value == "art_type"
    assert len(at.get("plotly_chart")) == charts_before == 6


def test_good_csv_upload_becomes_the_feature_set() -> None:
    at = app(HARNESS, page="pages/geometry.py", model="tiny-native", layers="0")
    at.run()
    rows = "".join(f"sample {i} {'red' if i % 3 else 'blue'},{['x', 'y', 'z'][i % 3]}\n" for i in range(60))
    _upload(at, "mine.csv", f"text,label\n{rows}".encode())
    assert_clean(at)
    assert at.selectbox(key="feature_set_name").value == "upload:mine.csv"
    assert not at.error
    assert len(at.get("plotly_chart")) == 6
    assert "mine.csv" in at.caption[0].value


def test_jobs_page_lists_jobs_and_deletes_one(local_backend: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from featgeom_core import jobs

    done = jobs.submit("diagnostic.echo", {"value": "for the jobs page"})
    assert jobs.wait(done, timeout_s=120).status == "done"
    # The other worker's jobs share the session's store, and one running there would make the page
    # poll: the page is shown this test's job alone, so whether it polls is decided by that job.
    every = jobs.list_jobs
    monkeypatch.setattr(jobs, "list_jobs", lambda *args, **kwargs: [r for r in every(*args, **kwargs) if r.job_id == done])
    at = app(HARNESS, page="pages/jobs.py", model="tiny-native")
    at.run()
    assert_clean(at)
    assert "Backend: local" in at.caption[0].value
    table = at.dataframe[0].value
    assert done in list(table["job"]) and "done" in list(table["status"])
    assert "jobs_refresh" in [b.key for b in at.button]  # nothing active: no polling, a Refresh button instead
    at.selectbox(key="jobs_selected").set_value(done).run()
    at.button(key="jobs_delete").click().run()
    assert_clean(at)
    assert done not in [r.job_id for r in jobs.list_jobs()]


def test_geometry_page_runs_uncached_layers_as_a_background_job(local_backend: None) -> None:
    from featgeom_core import jobs

    at = app(HARNESS, page="pages/home.py", model="tiny-native", layers="0", features="us_timezone")
    at.run()
    at.toggle(key="background").set_value(True)
    at.query_params["page"] = "pages/geometry.py"
    at.run()
    assert_clean(at)
    assert any("background job" in info.value for info in at.info), [i.value for i in at.info]
    pending = [r for r in jobs.list_jobs() if r.kind == "feature_geometry" and r.params["feature_set"] == "us_timezone"]
    assert len(pending) == 1
    assert jobs.wait(pending[0].job_id, timeout_s=240).status == "done"
    at.run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 6


def _settle_energy_fit(at) -> None:
    """Wait for the Energy page's fit job (the newest energy.fit record), then rerun the page."""
    from featgeom_core import jobs

    newest = max((r for r in jobs.list_jobs() if r.kind == "energy.fit"), key=lambda r: r.created)
    assert jobs.wait(newest.job_id, timeout_s=120).status == "done"
    at.run()
    assert_clean(at)


def _settle_controls(at) -> None:
    """Wait for the newest energy.sweep (the Energy page's controls), then rerun the page."""
    from featgeom_core import jobs

    newest = max((r for r in jobs.list_jobs() if r.kind == "energy.sweep"), key=lambda r: r.created)
    assert jobs.wait(newest.job_id, timeout_s=120).status == "done"
    at.run()
    assert_clean(at)


def test_energy_page_fits_the_selected_layer_as_a_job(local_backend: None) -> None:
    at = app(HARNESS, page="pages/energy.py", model="tiny-native", layers="0", features="world_country")
    at.run()
    assert_clean(at)
    _settle_energy_fit(at)
    assert not at.error, [e.value for e in at.error]
    _settle_controls(at)
    assert len(at.get("plotly_chart")) == 9  # target, abstract, reference, scatter, weights, trace, re-optimised, two control strips
    assert any("each control seed × 5 noise draws, the real target × 12" in c.value for c in at.caption)
    at.selectbox(key="energy_kernel").set_value("log").run()
    at.number_input(key="energy_dim").set_value(2).run()
    _settle_energy_fit(at)
    assert "error per pair" in at.get("plotly_chart")[1].proto.spec
    assert "job " in at.caption[-1].value or any("job " in c.value for c in at.caption)
    at.number_input(key="energy_lambda_x").set_value(100.0).run()  # the fit is kept; the controls' sweep runs at the new λ_x
    assert_clean(at)
    assert len(at.get("plotly_chart")) >= 7
    _settle_controls(at)
    assert len(at.get("plotly_chart")) == 9
    table = at.dataframe[0].value
    assert {"real", "permuted", "shuffled labels", "reading"} <= set(table.columns)


def test_perturbation_page_sweeps_several_layers_in_one_job_and_plots_them(local_backend: None) -> None:
    from featgeom_core import jobs
    from featgeom_core.energy.jobs import ENERGY_SWEEP

    at = app(HARNESS, page="pages/perturbation.py", model="tiny-native", layers="0,1", features="art_type")
    at.run()
    assert_clean(at)
    assert at.multiselect(key="energy_layers").value == [0, 1]
    at.multiselect(key="pert_kernels").set_value(["riesz"])
    at.multiselect(key="pert_dims").set_value([1, 2])
    at.multiselect(key="pert_ld").set_value([100.0])
    at.number_input(key="pert_real_draws").set_value(5)
    at.button(key="pert_run").click().run()
    assert_clean(at)
    record = jobs.wait(at.session_state["pert_job"], timeout_s=300)
    assert record.status == "done", record.error
    assert record.params["real_draws"] == 5 and record.params["repeats"] == 3
    at.run()
    assert_clean(at)
    # per similarity a curve plot and a by-layer plot, the error by layer, and per similarity the target beside the best (riesz) fit
    charts = at.get("plotly_chart")
    assert len(charts) == 2 + 2 + 1 + 2 * 2
    traces = json.loads(charts[0].proto.spec)["data"]
    assert {"real", "permuted", "shuffled labels"} <= {t.get("name") for t in traces}
    assert sum(t.get("fill") == "toself" for t in traces) == 2  # a band for each control
    assert any("How to read this" in info.value for info in at.info)
    summary, best, whole = (frame.value for frame in at.dataframe)
    assert len(summary) == 2 * 2 and {"real", "permuted", "shuffled labels", "real − shuffled labels", "reading"} <= set(summary.columns)
    targets = 1 + 5 + 5  # real, 5 permuted seeds, 5 label-shuffle seeds
    assert len(best) == 2 * targets * 2 and set(best["layer"]) == {0, 1}  # layers x targets x sims (one kernel)
    assert len(whole) == 2 * targets * 2 * 2 * 1 * 1 * 4  # layers x targets x sims x dims x λ_d x λ_x x σ
    assert set(whole["replicate"]) == set(range(5))
    draws = {(r["target"], len(r["distances"])) for r in ENERGY_SWEEP.load(record.job_id).rows}
    assert draws == {("real", 5), ("permuted", 3), ("shuffled_labels", 3)}  # the widget's draws reach the real target only


def test_the_sidebar_shows_only_on_pages_that_read_it_and_keeps_its_choices() -> None:
    at = app(model="tiny-native", layers="0", features="art_type")
    at.run()
    assert "Model and data" in [h.value for h in at.sidebar.header]
    for page in ("pages/interaction_graph.py", "pages/hessian_features.py", "pages/findings.py", "pages/jobs.py"):
        at.switch_page(page).run()
        assert_clean(at)
        assert "Model and data" not in [h.value for h in at.sidebar.header], page
    at.switch_page("pages/geometry.py").run()
    assert_clean(at)
    assert "Model and data" in [h.value for h in at.sidebar.header]
    assert at.session_state["model_id"] == "tiny-native" and at.session_state["layers"] == [0]  # the choices outlived those pages
    assert at.session_state["feature_set_name"] == "art_type"


def test_perturbation_page_takes_the_de_duplication_from_its_link() -> None:
    """A finding's link on text_features asks for the Feature geometry page's de-duplication; the
    page's targets follow it and its own link keeps it."""

    def features_fitted(at) -> int:
        (found,) = [int(m.group(1)) for c in at.caption if (m := re.search(r"N = (\d+) features", c.value))]
        return found

    link = {"page": "pages/perturbation.py", "model": "tiny-native", "layers": "0", "features": "text_features"}
    plain = app(HARNESS, **link)
    plain.run()
    assert_clean(plain)
    at = app(HARNESS, **link, dedup="1", threshold="0.2")
    at.run()
    assert_clean(at)
    assert at.session_state["dedup"] is True and at.session_state["threshold"] == 0.2
    assert at.query_params["dedup"] == "1" and at.query_params["threshold"] == "0.2"
    assert features_fitted(at) < features_fitted(plain)
