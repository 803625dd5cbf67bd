"""Cold and warm first view of the Feature geometry page in a real browser.

Starts the app with the README's start command on an empty cache, opens
/geometry for a model x feature set x layers (default: minilm x world_country, the default set, x layers 0-5;
``--model smollm2 --features world_country --layers 0,4,8,12,17,21,25,29``, its model converted
beforehand, as the target says) in headless Debian Chromium and times
navigation -> every heatmap drawn. "cold": fresh server and empty cache (model load, extraction,
probes); "warm": a new Streamlit session (new tab) on the same server and browser: results come from the
disk cache, the JavaScript bundles from the browser's HTTP cache. Also reported: warm results in a
fresh browser profile, which has to download Streamlit's and plotly.js's bundles again.
Target (issue 2): warm under 2 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
QUERY = "/geometry?model=minilm&features=athlete_sport&layers=0,1,2,3,4,5"  # replaced by main() from its arguments
N_HEATMAPS = 2 * 3  # one layer shown at a time: {cosine, rbf} x {real, permuted, shuffled}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("server never became healthy")


def time_view(context, url: str) -> float:
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url + QUERY)
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .heatmaplayer').length >= {N_HEATMAPS}", timeout=600_000)
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def time_in_app_navigation(context, url: str) -> float:
    """The app is already open on Home (same choices); click through to the geometry page."""
    page = context.new_page()
    page.goto(url + QUERY.replace("/geometry", "/"))
    link = page.get_by_role("link", name="Feature geometry", exact=True).last  # the home page's link (the sidebar has one too)
    link.wait_for(timeout=120_000)
    start = time.perf_counter()
    link.click()
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .heatmaplayer').length >= {N_HEATMAPS}", timeout=600_000)
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def server_side_warm_run(cache: str) -> float:
    """Median seconds of one script run of the geometry page on a warm cache (no browser)."""
    from streamlit.testing.v1 import AppTest

    os.environ["FEATGEOM_CACHE_DIR"] = cache
    samples = []
    for _ in range(4):
        at = AppTest.from_file(str(ROOT / "tests" / "harness" / "single_page.py"), default_timeout=600)
        for key, value in {
            "page": "pages/geometry.py",
            "model": VIEW["model"],
            "features": VIEW["features"],
            "layers": VIEW["layers"],
        }.items():
            at.query_params[key] = value
        start = time.perf_counter()
        at.run()
        samples.append(time.perf_counter() - start)
        assert not at.exception
    return sorted(samples[1:])[1]  # the first run pays for loading the model into this process


VIEW = {"model": "minilm", "features": "world_country", "layers": "0,1,2,3,4,5"}


def main() -> None:
    global QUERY
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=VIEW["model"])
    parser.add_argument("--features", default=VIEW["features"])
    parser.add_argument("--layers", default=VIEW["layers"])
    args = parser.parse_args()
    VIEW.update(model=args.model, features=args.features, layers=args.layers)
    QUERY = f"/geometry?model={args.model}&features={args.features}&layers={args.layers}"
    port = free_port()
    cache = tempfile.mkdtemp(prefix="featgeom-bench-cache-")
    if args.model == "smollm2":  # "cold cache, model converted": the conversion is timed on its own
        from featgeom_core.models import smollm2

        started = time.perf_counter()
        converted = smollm2.converted_dir(Path(cache))
        print(f"smollm2 conversion into the empty cache: {time.perf_counter() - started:.1f} s ({converted.directory.name})")
    env = dict(os.environ, FEATGEOM_PORT=str(port), FEATGEOM_CACHE_DIR=cache)
    server = subprocess.Popen(
        ["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            viewport = {"width": 1600, "height": 1200}
            same_browser = browser.new_context(viewport=viewport)  # shares the HTTP cache, like a user's browser
            cold = time_view(same_browser, url)
            warm = [time_view(same_browser, url) for _ in range(3)]
            fresh = [time_view(browser.new_context(viewport=viewport), url) for _ in range(3)]
            in_app = [time_in_app_navigation(same_browser, url) for _ in range(3)]
            browser.close()
        server_side = server_side_warm_run(cache)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        shutil.rmtree(cache, ignore_errors=True)
    print(f"geometry page, {args.model} x {args.features} x layers {args.layers} ({N_HEATMAPS} heatmaps of the selected layer)")
    print(f"cold (fresh server, empty cache): {cold:6.2f} s")
    print(f"warm (new session, cached results, same browser): {min(warm):6.2f} s best, {sorted(warm)[1]:6.2f} s median  (target < 2 s)")
    print(f"warm results, fresh browser profile (downloads Streamlit + plotly.js again): {sorted(fresh)[1]:6.2f} s median")
    print(f"warm, in-app: click from Home to the geometry page (app already open): {sorted(in_app)[1]:6.2f} s median")
    print(f"warm, server side only: one script run of the page from the cache: {server_side:6.3f} s median")
    print(f"cold / warm ratio (new tab): {cold / sorted(warm)[1]:.1f}x")


if __name__ == "__main__":
    main()
