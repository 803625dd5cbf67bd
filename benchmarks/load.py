"""Load: many browser sessions on every page at once, and a deep job queue on two workers.

``browse_at_once`` drives N sessions (one headless Chromium context each, so N Streamlit
sessions) through the same pages at the same time and times each page from navigation to a
settled app (its script run to the end once: the sidebar's link and export drawn). Sessions alternate between two
settings (layer 0 / layer 1) and each must keep its own in its URL: a session that showed
another's setting would be cross-talk. ``queue_jobs`` submits many small jobs at once and
watches every one finish while progress stays live.

Used by ``tests/test_server.py`` and ``tests/test_jobs.py`` (short runs) and by
``benchmarks/bench_load.py`` (the full runs recorded in RESULTS.md).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Settled: the app's script has run to its end once (the view's link and the export popover are
# the last things app.py draws). The status widget is no test: a page with a polling fragment
# (the Jobs page, every 2 s) shows it whenever the fragment reruns, and under load that is always.
SETTLED_JS = (
    "() => ['Copy link to this view', 'Export this view'].every(label => "
    "[...document.querySelectorAll('button, p, span')].some(e => e.innerText === label))"
)
ERRORS_JS = (
    '() => [...document.querySelectorAll(\'[data-testid="stException"], [data-testid="stAlertContentError"]\')]'
    ".map(e => e.innerText.slice(0, 200))"
)


SMALL_MODEL_QUERY = "model=tiny-native&features=art_type"  # a small model: the load measured is the app's, not the model's


def every_page() -> list[str]:
    """The URL path of every page of the app (``ui/links.py``'s PAGES, home first as ``""``)."""
    from ui.links import PAGES

    return [page.url_path for page in PAGES]


@dataclass
class LoadReport:
    """Seconds from navigation to a settled page, by page path; the errors and cross-talk seen."""

    sessions: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    crosstalk: list[str] = field(default_factory=list)

    def all_seconds(self) -> list[float]:
        return [s for values in self.seconds.values() for s in values]

    def percentile(self, q: float, values: Sequence[float] | None = None) -> float:
        """The q-quantile (0..1) of the page times (all pages when ``values`` is None)."""
        data = sorted(self.all_seconds() if values is None else values)
        return data[min(len(data) - 1, int(round(q * (len(data) - 1))))]

    def lines(self) -> list[str]:
        """One line overall, then one per page: p50 and p95 in seconds."""
        out = [
            f"{self.sessions} sessions: {len(self.all_seconds())} page loads, p50 {self.percentile(0.5):.2f} s, "
            f"p95 {self.percentile(0.95):.2f} s, errors {len(self.errors)}, cross-talk {len(self.crosstalk)}"
        ]
        for path, values in self.seconds.items():
            out.append(f"  /{path:<22} p50 {statistics.median(values):6.2f} s  p95 {self.percentile(0.95, values):6.2f} s")
        return out


def session_query(index: int, base_query: str) -> tuple[str, str]:
    """(query, the marker its URL must keep): sessions alternate between layer 0 and layer 1."""
    layer = index % 2
    return f"{base_query}&layers={layer}", f"layers={layer}"


def browse_at_once(
    browser: Any,
    base_url: str,
    sessions: int,
    paths: Sequence[str],
    base_query: str,
    timeout_s: float = 300.0,
    poll_s: float = 0.05,
    progress: Callable[[str], None] = lambda line: None,
) -> LoadReport:
    """Open every path in ``sessions`` contexts at once (sync Playwright ``browser``); see module docstring.
    ``progress`` gets one line per path as it settles (long runs say where they are)."""
    report = LoadReport(sessions)
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(sessions)]
    pages = [context.new_page() for context in contexts]
    try:
        for path in paths:
            started: list[float] = []
            pending = set(range(sessions))
            for i, page in enumerate(pages):
                query, _ = session_query(i, base_query)
                started.append(time.monotonic())
                try:
                    page.goto(f"{base_url}/{path}?{query}", wait_until="commit", timeout=timeout_s * 1000)
                except Exception as exc:  # noqa: BLE001  (a server too busy to answer is a finding, not a crash)
                    report.errors.append(f"/{path} session {i}: navigation failed: {str(exc).splitlines()[0]}")
                    pending.discard(i)
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                for i in sorted(pending):
                    if _settled(pages[i]):
                        report.seconds.setdefault(path, []).append(time.monotonic() - started[i])
                        pending.discard(i)
                time.sleep(poll_s)
            report.errors += [f"/{path} session {i}: not settled in {timeout_s:.0f} s" for i in sorted(pending)]
            done = report.seconds.get(path, [])
            progress(f"/{path}: {len(done)}/{sessions} settled, slowest {max(done, default=float('nan')):.1f} s")
            for i, page in enumerate(pages):
                page.wait_for_timeout(200)  # the app writes its URL after drawing
                report.errors += [f"/{path} session {i}: {text}" for text in page.evaluate(ERRORS_JS)]
                _, marker = session_query(i, base_query)
                if marker not in page.url:
                    report.crosstalk.append(f"/{path} session {i}: expected {marker} in {page.url}")
    finally:
        for context in contexts:
            context.close()
    return report


def _settled(page: Any) -> bool:
    try:
        return bool(page.evaluate(SETTLED_JS))
    except Exception:  # noqa: BLE001  (the page is between documents)
        return False


@dataclass
class QueueReport:
    """100 jobs at once: how long until all finished, their final statuses, and whether progress
    stayed live (the longest a running job's record went without a progress change)."""

    jobs: int
    seconds: float
    statuses: dict[str, int]
    results_stored: int
    longest_silence_s: float
    progress_values_seen: int

    def line(self) -> str:
        return (
            f"{self.jobs} jobs: all settled in {self.seconds:.1f} s, statuses {self.statuses}, results stored "
            f"{self.results_stored}, longest progress silence of a running job {self.longest_silence_s:.2f} s, "
            f"{self.progress_values_seen} distinct progress values seen"
        )


def queue_jobs(
    n: int,
    iterations: int = 400_000,
    steps: int = 8,
    timeout_s: float = 600.0,
    tag: str = "",
    poll: Callable[[], None] = lambda: time.sleep(0.1),
) -> QueueReport:
    """Submit ``n`` diagnostic.spin jobs at once on the configured backend and follow them to the end."""
    from featgeom_core import jobs
    from featgeom_core.store import Store

    started = time.monotonic()
    ids = [jobs.submit("diagnostic.spin", {"iterations": iterations, "steps": steps, "tag": f"queue{tag}-{i}"}) for i in range(n)]
    last_change: dict[str, tuple[float, float]] = {}
    silence, seen = 0.0, set()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        records = [jobs.status(job_id) for job_id in ids]
        now = time.monotonic()
        for record in records:
            if record.status == "running":
                previous = last_change.get(record.job_id)
                if previous is None or previous[0] != record.progress:
                    last_change[record.job_id] = (record.progress, now)
                    seen.add((record.job_id, record.progress))
                else:
                    silence = max(silence, now - previous[1])
        if all(r.status not in ("queued", "running") for r in records):
            break
        poll()
    elapsed = time.monotonic() - started
    records = [jobs.status(job_id) for job_id in ids]
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record.status] = statuses.get(record.status, 0) + 1
    store = Store()
    stored = sum(1 for r in records if r.result_key and store.contains(r.result_key))
    return QueueReport(n, elapsed, statuses, stored, silence, len(seen))
