"""Measure the findings ledger (cached per finding) and write README's generated block from it.

    .venv/bin/python scripts/findings_readme.py [--models minilm,smollm2] [--check]

``--check`` prints what would change and exits 1 when README is out of date, without writing.
Without it, also writes each finding's cost (``featgeom_core/findings/costs.json``, the Findings
page's estimate): the seconds of its first measurement, so run it on a cold cache to refresh them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

from featgeom_core.findings.costs import COSTS_FILE, costs_text
from featgeom_core.findings.jobs import LEDGER
from featgeom_core.findings.readme import readme_section, replace_section
from featgeom_core.jobs import manager

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,smollm2")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    params = LEDGER.parse({"models": args.models.split(",")})
    started = time.perf_counter()
    last = [""]

    def report(fraction: float, message: str, metrics: object = None, /) -> None:
        if message != last[0]:
            last[0] = message
            print(f"[{time.perf_counter() - started:6.0f} s {fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    record = manager.run_here(LEDGER.name, params.normalised(), report=report, recompute=True)  # cheap: each finding is cached
    if record.status != "done":
        print(f"the ledger job {record.job_id} {record.status}: {record.error or record.message}", file=sys.stderr)
        return 1
    ledger = LEDGER.load(record.job_id)
    measured_on = f"measured {date.today().isoformat()} on {platform.machine()} with {', '.join(params.models)}"
    text = README.read_text()
    updated = replace_section(text, readme_section(ledger, measured_on))
    print(f"ledger: {ledger.summary()['verdicts']} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.check:
        return 0 if updated == text else 1
    README.write_text(updated)
    COSTS_FILE.write_text(costs_text(ledger))
    return 0


if __name__ == "__main__":
    sys.exit(main())
