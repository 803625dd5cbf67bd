"""A click on an interaction graph with 5,000 drawn edges, as a researcher sees it: from the click
in headless Chromium to the node's panel drawn (issue 25's target: under 1 s warm).

Setup (not timed): the lab's shipped modular-addition checkpoint's graphs (LIB and PCA, the page's
default bases; no ablations, which a click does not read) as a finished job in a fresh cache; the
app served by the README's start command; the page opened with ``topk`` edges per layer pair
(about 5,000 drawn in each graph). Timed, median of ``--clicks``: a click on a node not clicked
before, in the same node layer (the first click on a layer also reads that layer over every input),
until the panel's last figure, titled with the node, is drawn. Baseline in the same
run: the same page reloaded warm without a click (what any view of the page pays, graphs drawn).

Usage: python benchmarks/bench_graph_click_browser.py [--topk 1670] [--clicks 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NODE_PIXEL = """([index, k, j]) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[index];
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    return [box.left + xa._offset + xa.l2p(k), box.top + ya._offset + ya.l2p(-j)];
}"""
IDLE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graph_job(cache: Path) -> str:
    from featgeom_core.interaction.jobs import LIB_GRAPH
    from featgeom_core.jobs import manager
    from featgeom_core.store import Store

    record = manager.run_here(LIB_GRAPH.name, LIB_GRAPH.validate({"ablation": {"nodes": False, "edges": False}}), Store(cache))
    assert record.status == "done", record.error
    return record.job_id


def settle(page) -> None:
    page.wait_for_function(IDLE, timeout=240_000)
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE, timeout=240_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topk", type=int, default=1670, help="edges drawn per layer pair (3 pairs: ~5,000 per graph)")
    parser.add_argument("--clicks", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    cache = Path(tempfile.mkdtemp(prefix="bench_click_"))
    start = time.perf_counter()
    job_id = graph_job(cache)
    print(f"setup: the shipped checkpoint's LIB and PCA graphs in {time.perf_counter() - start:.0f} s")
    port = free_port()
    env = dict(os.environ, FEATGEOM_PORT=str(port), FEATGEOM_CACHE_DIR=str(cache))
    server = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1300})
            view = f"{url}/interaction_graph?job={job_id}&topk={args.topk}"
            page.goto(view, timeout=120_000)
            page.get_by_text("Click a node for its panel").wait_for(timeout=300_000)
            settle(page)
            reloads = []
            for _ in range(args.clicks):
                begin = time.perf_counter()
                page.goto(view, timeout=120_000)
                page.get_by_text("Click a node for its panel").wait_for(timeout=120_000)
                settle(page)
                reloads.append(time.perf_counter() - begin - 0.3)
            clicks, panels = [], []
            for j in range(1, args.clicks + 1):
                page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
                x, y = page.evaluate(NODE_PIXEL, [0, 1, j])
                begin = time.perf_counter()
                page.mouse.click(x, y)
                page.locator("h3").filter(has_text=f"direction {j}").first.wait_for(timeout=120_000)
                panels.append(time.perf_counter() - begin)
                # the panel's last figure, titled with the node: a click reruns only the graph's fragment,
                # which shows no running status, so the figure drawn is the end of the answer
                page.locator(".js-plotly-plot .gtitle").filter(has_text=f"direction {j} over every").first.wait_for(timeout=120_000)
                clicks.append(time.perf_counter() - begin)
                settle(page)
            drawn = page.evaluate(
                "[...document.querySelectorAll('.js-plotly-plot')].map(gd => gd._fullData.filter(t => t.mode === 'lines')"
                ".reduce((n, t) => n + Array.from(t.x || []).filter(v => v === null || Number.isNaN(v)).length, 0))"
            )
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(cache, ignore_errors=True)
    click, reload, panel = statistics.median(clicks), statistics.median(reloads), statistics.median(panels)
    print(f"edges drawn per graph (line segments): {drawn}")
    print(f"a click, to its panel drawn (its last figure): {click:.2f} s median of {len(clicks)} ({', '.join(f'{c:.2f}' for c in clicks)})")
    print(f"  of which to the panel's heading shown: {panel:.2f} s (the rest: its figures)")
    print(f"baseline, the page reloaded warm without a click: {reload:.2f} s; ratio {click / reload:.2f}x; {click:.2f}x the 1 s budget")


if __name__ == "__main__":
    main()
