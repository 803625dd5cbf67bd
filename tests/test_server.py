"""The README's start command, served for real beside a Dask scheduler and two workers (compose's own
commands, as processes on loopback): health endpoint, Dockerfile, and every page in headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO_ROOT

START_COMMAND = ["bash", "scripts/run.sh"]
SERVER_CACHE: list[Path] = []
"""The served app's cache directory (a test puts finished jobs there for the app to open)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The lab deployment as processes on loopback: compose.yaml's scheduler and two workers (their
    own commands, waited for by their own health checks) and the README's start command for the app,
    pointed at that scheduler. Every job the browser tests start is computed on those workers."""
    from test_deploy import (
        COMPOSE,
        Processes,
        _services,
        start_scheduler,
        start_worker,
        swap,
        wait_until,
    )

    processes = Processes(tmp_path_factory.mktemp("deployment"))
    services = _services(COMPOSE)
    try:
        scheduler = start_scheduler(services, processes, services)
        for i in (1, 2):
            start_worker(f"worker-{i}", services, processes, services, scheduler)
        address = swap([services["app"]["environment"]["FEATGEOM_SCHEDULER"]], inside={"scheduler:8786": scheduler})[0]
        port = _free_port()
        SERVER_CACHE[:] = [tmp_path_factory.mktemp("server-cache")]
        app = processes.start(
            "app",
            START_COMMAND,
            FEATGEOM_PORT=str(port),
            FEATGEOM_SCHEDULER=address,
            FEATGEOM_CACHE_DIR=str(SERVER_CACHE[0]),
        )
        url = f"http://127.0.0.1:{port}"

        def app_healthy() -> bool:
            if app.poll() is not None:
                raise RuntimeError(f"the app exited: {processes.logs()}")
            try:
                return _get(f"{url}/_stcore/health") == b"ok"
            except OSError:
                return False

        wait_until(app_healthy, "the app's health", processes, timeout=180, poll=0.5)
        yield url
    finally:
        processes.stop()


def test_start_command_serves_the_health_endpoint(app_url: str) -> None:
    assert _get(f"{app_url}/_stcore/health") == b"ok"


def test_readme_and_dockerfile_use_the_same_commands() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "bash scripts/run.sh" in readme and "bash scripts/test.sh" in readme
    assert 'CMD ["bash", "scripts/run.sh"]' in dockerfile
    assert "bash scripts/setup.sh" in dockerfile and "/_stcore/health" in dockerfile and "EXPOSE 8501" in dockerfile
    assert "bash scripts/test.sh" in (REPO_ROOT / ".ci" / "run").read_text()


def test_app_py_imported_by_a_spawned_dask_worker_draws_nothing() -> None:
    """Dask's local workers are spawned processes that run app.py as __mp_main__; drawing the app
    there once failed the workers' start ('Nanny failed to start')."""
    result = subprocess.run(
        [os.sys.executable, "-c", "import runpy; runpy.run_path('app.py', run_name='__mp_main__')"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(os.sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield instance
        instance.close()


def _assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').all_inner_texts()


def test_geometry_page_in_a_real_browser(app_url: str, browser, output_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    page.goto(f"{app_url}/geometry?model=minilm&features=athlete_sport&layers=0,5", timeout=60_000)
    page.wait_for_selector(".js-plotly-plot .heatmaplayer", timeout=240_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(output_dir / "geometry_page.png"), full_page=True)
    _assert_no_exception(page)
    assert page.locator(".js-plotly-plot").count() == 6  # the selected layer's heatmaps
    page.get_by_role("radio", name="layer 5").click()
    page.wait_for_function("[...document.querySelectorAll('.gtitle')].some(t => t.textContent.includes('layer 5'))", timeout=60_000)
    _assert_no_exception(page)
    assert page.get_by_text("Held-out probe accuracy").count() == 1
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("Layers").count() >= 1
    assert "layers=0%2C5" in page.url or "layers=0,5" in page.url


def test_bad_upload_in_a_real_browser_shows_an_error(app_url: str, browser, output_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("words,label\nhello,a\n")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/geometry?model=tiny-native&features=art_type&layers=0", timeout=60_000)
    page.wait_for_selector(".js-plotly-plot .heatmaplayer", timeout=240_000)
    page.locator('[data-testid="stSidebar"]').get_by_text("Upload a CSV feature set").click()
    page.locator('input[type="file"]').set_input_files(str(bad))
    page.get_by_text("missing the column").first.wait_for(timeout=60_000)
    page.wait_for_selector(".js-plotly-plot .heatmaplayer", timeout=60_000)
    page.screenshot(path=str(output_dir / "bad_upload.png"), full_page=True)
    _assert_no_exception(page)
    assert page.locator(".js-plotly-plot").count() == 6  # the view is undisturbed


def test_jobs_page_in_a_real_browser(app_url: str, browser, output_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{app_url}/jobs?model=tiny-native", timeout=60_000)
    page.get_by_text("Backend: tcp://127.0.0.1").wait_for(timeout=120_000)  # the deployment's scheduler, not a local cluster
    page.screenshot(path=str(output_dir / "jobs_page.png"))
    _assert_no_exception(page)


def _settle(page, timeout_ms: int = 240_000) -> None:
    """Wait until the app has drawn the page and its script has stopped running."""
    page.get_by_text("Copy link to this view").first.wait_for(timeout=timeout_ms)  # two while a page link swaps the page
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(1000)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def _copied_link(page) -> str:
    page.get_by_text("Copy link to this view").first.click()
    page.wait_for_timeout(300)  # opening it reruns its fragment, which redraws the link from the URL as it is now
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)
    code = page.locator('[data-testid="stCode"]').last
    code.wait_for(timeout=30_000)
    link = code.inner_text().strip()
    page.keyboard.press("Escape")
    return link


TINY = "model=tiny-native&features=art_type&layers=0"
SHARED_VIEWS = [  # page path, a view with settings away from the defaults, the settings the link must carry
    ("", TINY, ["model=tiny-native"]),
    ("geometry", f"{TINY}&dedup=1&threshold=0.9", ["dedup=1", "threshold=0.9"]),
    ("energy", f"{TINY}&energy_kernel=riesz&energy_dim=2&ctl_perm_seeds=2", ["energy_kernel=riesz", "energy_dim=2", "ctl_perm_seeds=2"]),
    ("perturbation", f"{TINY}&pert_kernels=riesz&pert_repeats=2", ["pert_kernels=riesz", "pert_repeats=2"]),
    ("sparsity_validation", f"{TINY}&method=fista&a=1,5", ["method=fista", "a=1,5"]),
    ("sparsity_layers", f"{TINY}&method=fista&tokens=3000", ["method=fista", "tokens=3000"]),
    ("dictionary_explorer", TINY, ["features=art_type"]),
    ("interaction_graph", f"{TINY}&net=digits&tolerance=0.05", ["net=digits", "tolerance=0.05"]),
    ("hessian_features", f"{TINY}&hmodel=tms&k=3&steps=50", ["hmodel=tms", "k=3", "steps=50"]),
    ("jobs", f"{TINY}&jobs_status_filter=done", ["jobs_status_filter=done"]),
    (
        "feature",
        "kind=probe&model=tiny-native&layer=1&index=2&features=art_type&hook=resid_post",
        ["kind=probe", "layer=1", "index=2", "features=art_type", "hook=resid_post"],
    ),
]


@pytest.mark.parametrize("path,query,carried", SHARED_VIEWS, ids=[v[0] or "home" for v in SHARED_VIEWS])
def test_each_pages_copied_link_reproduces_its_view_in_a_fresh_context(
    app_url: str, browser, path: str, query: str, carried: list[str]
) -> None:
    """The view's link (from 'Copy link to this view') carries its settings, and opened in a fresh
    browser context (no cookies, no session) it shows the same view: the same settings again."""
    first = browser.new_context(viewport={"width": 1400, "height": 900})
    page = first.new_page()
    page.goto(f"{app_url}/{path}?{query}", timeout=60_000)
    _settle(page)
    _assert_no_exception(page)
    link = _copied_link(page)
    first.close()
    from urllib.parse import unquote

    assert link.startswith(f"{app_url.replace('127.0.0.1', 'localhost')}/{path}") or link.startswith(f"{app_url}/{path}"), link
    assert all(setting in unquote(link) for setting in carried), (link, carried)
    fresh = browser.new_context(viewport={"width": 1400, "height": 900})
    page = fresh.new_page()
    page.goto(link, timeout=60_000)
    _settle(page)
    _assert_no_exception(page)
    again = _copied_link(page)
    fresh.close()
    # every setting comes back as it was; a view may add settings its first visit had not drawn yet
    # (the energy page draws its re-optimisation settings once its fit job is done)
    assert set(unquote(link).split("?", 1)[1].split("&")) <= set(unquote(again).split("?", 1)[1].split("&")), (link, again)


NODE_PIXEL = """([index, k, j]) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[index];
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    return [box.left + xa._offset + xa.l2p(k), box.top + ya._offset + ya.l2p(-j)];
}"""
"""Where node (k, j) of the index-th Plotly graph is drawn, in page pixels (Plotly's own axes)."""


SELECTED_POINTS = """(index) => [...document.querySelectorAll('.js-plotly-plot')[index].data]
    .some(trace => Array.isArray(trace.selectedpoints) && trace.selectedpoints.length > 0)"""
"""Whether the index-th Plotly graph shows a selection."""


def test_a_clicked_graph_node_opens_its_panel_and_its_link_reopens_it(app_url: str, browser, output_dir: Path) -> None:
    from urllib.parse import unquote

    context = browser.new_context(accept_downloads=True, viewport={"width": 1600, "height": 1300})
    page = context.new_page()
    page.goto(f"{app_url}/interaction_graph?{TINY}&net=digits&tolerance=0.05", timeout=60_000)
    page.get_by_role("button", name="Build as a job").wait_for(timeout=120_000)
    page.wait_for_function("!document.querySelector('[data-testid=stStatusWidget]')", timeout=120_000)
    page.wait_for_timeout(1000)  # the link's settings adopted before the click
    try:
        page.get_by_role("button", name="Build as a job").click()
        page.get_by_text("Click a node for its panel").wait_for(timeout=300_000)
    finally:
        page.screenshot(path=str(output_dir / "graph_built.png"), full_page=True)
    _settle(page)

    def click_node(k: int, j: int, graph: int = 0) -> str:
        page.locator(".js-plotly-plot").nth(graph).scroll_into_view_if_needed()
        x, y = page.evaluate(NODE_PIXEL, [graph, k, j])
        page.mouse.click(x, y)
        heading = page.locator("h3").filter(has_text=f"direction {j}").first
        heading.wait_for(timeout=120_000)
        _settle(page)
        return heading.inner_text()

    def selected(graph: int) -> bool:
        return page.evaluate(SELECTED_POINTS, graph)

    click_node(1, 2, graph=1)  # PCA's graph, then LIB's: the first click's selection goes
    assert selected(1) and not selected(0)
    click_node(1, 3)
    assert selected(0) and not selected(1), "the other graph still shows its old node as selected"
    page.screenshot(path=str(output_dir / "graph_node_panel.png"), full_page=True)
    _assert_no_exception(page)
    page.get_by_role("button", name="Pin to the subgraph").click()
    _settle(page)
    heading = click_node(2, 0)
    report = _downloaded_report(page, output_dir / "graph_report.html")  # the click reran only a fragment: its link too
    assert "node=lib:2:0" in unquote(report.read_text()), "the exported report's link lacks the clicked node"
    page.get_by_role("button", name="Pin to the subgraph").click()
    _settle(page)
    members = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Group pinned nodes")
    for ref in ("lib:1:3", "lib:2:0"):
        members.click()
        page.keyboard.type(ref)
        page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.get_by_label("Supernode name").fill("pair")
    page.get_by_label("Supernode name").press("Enter")
    _settle(page)
    page.get_by_role("button", name="Group", exact=True).click()
    page.get_by_role("button", name="Ungroup pair").wait_for(timeout=60_000)
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Keep edges").get_by_role("slider")
    for _ in range(5):  # one press per rerun: a rerun can take the focus, and a press during it is lost
        slider.focus()
        page.keyboard.press("ArrowLeft")
        _settle(page)
    _assert_no_exception(page)
    shown = '[data-testid="stSliderThumbValue"]'
    value = page.locator('[data-testid="stSlider"]').filter(has_text="Keep edges").locator(shown).inner_text()
    kept = f"keep_edges={float(value):g}"  # each press reruns; a press during a rerun may be lost
    assert kept != "keep_edges=1", "the threshold did not move"

    link = _copied_link(page)
    for setting in ("pins=lib:1:3,lib:2:0", "groups=pair~lib:1:3|lib:2:0", kept, "node=lib:2:0"):
        assert setting in unquote(link), (setting, unquote(link))
    context.close()
    fresh = browser.new_context(viewport={"width": 1600, "height": 1300})
    again = fresh.new_page()
    again.goto(link, timeout=60_000)
    again.locator("h3").filter(has_text="direction 0").first.wait_for(timeout=120_000)
    _settle(again)
    _assert_no_exception(again)
    assert again.locator("h3").filter(has_text="direction 0").first.inner_text() == heading
    again.get_by_role("button", name="Ungroup pair").wait_for(timeout=30_000)
    assert kept in unquote(again.url)
    moved = again.locator('[data-testid="stSlider"]').filter(has_text="Keep edges").locator(shown).inner_text()
    assert f"keep_edges={float(moved):g}" == kept
    fresh.close()


def test_feature_pages_open_from_a_dictionary_atom_and_a_graph_node_and_read_typed_text(app_url: str, browser, output_dir: Path) -> None:
    from featgeom_core.interaction.jobs import LIB_GRAPH
    from featgeom_core.jobs import manager
    from featgeom_core.sparsity.jobs import SPARSITY_MODEL
    from featgeom_core.store import Store

    store = Store(SERVER_CACHE[0])  # finished jobs the app finds, as if run from their pages
    sparsity_params = {"model": "tiny-native", "layers": [1], "tokens": 512, "calibrate": False, "max_tokens_per_text": 32}
    sparsity = manager.run_here(SPARSITY_MODEL.name, SPARSITY_MODEL.validate(sparsity_params), store)
    graph = manager.run_here(LIB_GRAPH.name, LIB_GRAPH.validate(LIB_GRAPH.example), store)
    assert sparsity.status == "done" and graph.status == "done", (sparsity.error, graph.error)
    context = browser.new_context(viewport={"width": 1500, "height": 1200})
    page = context.new_page()
    page.goto(f"{app_url}/dictionary_explorer?model=tiny-native&job={sparsity.job_id}&set=layer+1", timeout=60_000)
    _settle(page)
    page.get_by_role("link", name="Open its feature page").click()
    page.locator("h1").filter(has_text="dictionary atom").first.wait_for(timeout=120_000)
    _settle(page)
    assert "kind=atom" in page.url and f"job={sparsity.job_id}" in page.url
    contexts = page.locator("span[title]").count()
    assert contexts > 0, "no token of a top context is drawn with its activation"
    page.get_by_role("textbox", name="Your text").fill("the museum shows a painting of the sea at night")
    page.get_by_role("button", name="Read the feature on this text").click()
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=120_000)
    _settle(page)
    page.screenshot(path=str(output_dir / "feature_atom.png"), full_page=True)
    _assert_no_exception(page)
    assert page.locator("span[title]").count() > contexts  # the typed text's tokens, shaded by their codes

    page.goto(f"{app_url}/interaction_graph?job={graph.job_id}", timeout=60_000)
    page.get_by_text("Click a node for its panel").wait_for(timeout=120_000)
    _settle(page)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = page.evaluate(NODE_PIXEL, [0, 1, 3])
    page.mouse.click(x, y)
    page.locator("h3").filter(has_text="direction 3").first.wait_for(timeout=120_000)
    _settle(page)
    page.get_by_role("link", name="Open its feature page").click()
    page.locator("h1").filter(has_text="LIB direction 3").first.wait_for(timeout=120_000)
    _settle(page)
    page.screenshot(path=str(output_dir / "feature_lib.png"), full_page=True)
    _assert_no_exception(page)
    assert "kind=lib" in page.url and "index=3" in page.url and page.locator(".js-plotly-plot").count() >= 1  # the digits that move it
    context.close()


def _downloaded_report(page, path: Path) -> Path:
    """The view's HTML report from 'Export this view', saved at ``path`` (the page's context accepts downloads)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _attempt in range(3):  # a rerun landing as the popover opens can swallow the click: open it and click again
        page.get_by_text("Export this view").click()
        button = page.get_by_role("button", name="Report (HTML)")
        button.wait_for(timeout=30_000)
        try:
            with page.expect_download(timeout=60_000) as download:
                button.click()
            download.value.save_as(path)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    assert path.is_file(), "no report downloaded in 3 tries"
    page.keyboard.press("Escape")
    return path


def test_an_exported_report_opens_offline_with_the_same_numbers(app_url: str, browser, tmp_path: Path) -> None:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{app_url}/energy?{TINY}&energy_dim=2", timeout=60_000)
    page.wait_for_selector(".js-plotly-plot .heatmaplayer", timeout=240_000)
    _settle(page)
    # the controls' re-optimisation chart comes last (its sweep job finishes after the fit): every figure is drawn once it is
    page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot .gtitle')].some(t => t.textContent.includes('after re-optimisation (σ'))",
        timeout=240_000,
    )
    _settle(page)
    titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
    error_title = next(t for t in titles if "error per pair" in t)
    report = _downloaded_report(page, tmp_path / "report.html")
    context.close()
    offline = browser.new_context(offline=True)
    opened = offline.new_page()
    opened.goto(report.as_uri())
    opened.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    assert opened.locator(".js-plotly-plot").count() == len(titles)
    assert error_title in opened.locator(".js-plotly-plot .gtitle").all_text_contents()
    body = opened.locator("body").inner_text()
    assert "energy_dim" in body and "model fingerprint" in body and "featgeom 0." in body
    offline.close()


def test_the_token_gate_in_a_real_browser(browser, tmp_path: Path) -> None:
    """A deployment with an access token: a session sees only the gate, a wrong token is refused,
    the right one opens the app; a second browser context must give it again."""
    port = _free_port()
    env = dict(os.environ, FEATGEOM_PORT=str(port), FEATGEOM_CACHE_DIR=str(tmp_path / "cache"), FEATGEOM_ACCESS_TOKEN="lab-token-42")
    with open(tmp_path / "app.log", "wb") as log:
        process = subprocess.Popen(START_COMMAND, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        while True:
            try:
                if _get(f"{url}/_stcore/health") == b"ok":
                    break
            except OSError:
                pass
            assert process.poll() is None and time.time() < deadline, (tmp_path / "app.log").read_text()[-2000:]
            time.sleep(0.5)
        for attempt in ("wrong", "lab-token-42"):
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{url}/geometry?{TINY}", timeout=60_000)
            field = page.locator('input[type="password"][aria-label="Access token"]')
            field.wait_for(timeout=60_000)
            assert page.get_by_text("Model and data").count() == 0  # nothing of the app before the token
            field.fill(attempt)
            page.get_by_role("button", name="Enter").click()
            if attempt == "wrong":
                page.get_by_text("not this deployment's access token").wait_for(timeout=30_000)
                assert page.get_by_text("Model and data").count() == 0
            else:
                page.get_by_text("Model and data").wait_for(timeout=120_000)
                _assert_no_exception(page)
            context.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


SMALL_SWEEP = (
    "pert_kernels=riesz&pert_sims=cosine&pert_dims=1&pert_ld=10&pert_lx=10&pert_sigmas=0.1&pert_restarts=2&pert_repeats=1"
    "&ctl_perm_seeds=1&ctl_label_seeds=1"
)
ANALYSES = [  # page, its settings (small), the button that submits the job (None: reads the previous one's result), figures drawn
    ("perturbation", f"{TINY}&{SMALL_SWEEP}", "Run the sweep as a job", 3),
    ("sparsity_validation", f"{TINY}&ablation=d%20%3D%2064&a=2&controls=gaussian&method=greedy", "Run as a job", 2),
    ("sparsity_layers", f"{TINY}&tokens=512&dict=2", "Run as a job", 4),
    ("dictionary_explorer", TINY, None, 1),  # the sparsity_layers case's result, opened by default
    ("hessian_features", f"{TINY}&hmodel=xor&k=3&steps=60", "Learn the features as a job", 4),
    ("interaction_graph", f"{TINY}&net=digits&tolerance=0.01", "Build as a job", 4),
]


@pytest.mark.parametrize("path,query,button,figures", ANALYSES, ids=[a[0] for a in ANALYSES])
def test_an_analysis_runs_on_the_deployments_workers_from_its_page(
    app_url: str, browser, path: str, query: str, button: str | None, figures: int
) -> None:
    """A job-backed analysis started from its page in Chromium is computed on the deployment's
    workers (no disk shared with the app) and drawn. (Geometry and Energy run in the tests above.)"""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{app_url}/{path}?{query}", timeout=60_000)
    _settle(page)
    if button is not None:
        page.get_by_role("button", name=button).click()
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {figures}", timeout=300_000)
    _settle(page)
    _assert_no_exception(page)
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, page.locator(
        '[data-testid="stAlertContentError"]'
    ).all_inner_texts()
    context.close()


def test_sessions_at_once_on_every_page_without_errors_or_crosstalk(app_url: str, browser) -> None:
    """The short load run (the full one, 8 and 32 sessions on warm results: benchmarks/bench_load.py):
    sessions open every page at the same moment, each with its own layer, and each page settles
    with no error and keeps its own session's setting."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from load import SMALL_MODEL_QUERY, browse_at_once, every_page

    sessions = int(os.environ.get("FEATGEOM_LOAD_SESSIONS", "2"))
    paths = every_page()
    report = browse_at_once(browser, app_url, sessions, paths, SMALL_MODEL_QUERY, timeout_s=240)
    print("\n".join(report.lines()))
    assert report.errors == [] and report.crosstalk == []
    assert sorted(report.seconds) == sorted(paths) and all(len(v) == sessions for v in report.seconds.values())
