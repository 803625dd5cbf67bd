#!/usr/bin/env bash
# Set everything up, including test tools and Debian's Chromium for the browser test, and run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "featgeom: installing Debian chromium for the browser test…"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "featgeom: chromium is missing and cannot be installed here; the browser test will fail" >&2
  fi
fi
export HF_HUB_OFFLINE=1
# glibc hands every large freed block back to the kernel and page-faults it in again on the next
# allocation: a LIB build spent 9.5 of its 74 s in the kernel (0.6 s of 65 s with these). The tests'
# processes keep freed memory in their heaps; explicit trims (featgeom_core.memory) still return it.
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
# Lint, format and types first: zero findings, or the suite does not run.
.venv/bin/ruff check --quiet featgeom_core ui pages tests benchmarks scripts app.py
.venv/bin/ruff format --check --quiet featgeom_core ui pages tests benchmarks scripts app.py
.venv/bin/mypy featgeom_core ui
# Two workers share the machine's two cores (FEATGEOM_TEST_WORKERS to change; 0 runs in this process).
# A file's tests stay on one worker (its module fixtures, a Dask cluster or a server, start once; the
# ledger is computed once), and a test that times the machine runs alone (tests/conftest.py).
exec .venv/bin/python -m pytest -n "${FEATGEOM_TEST_WORKERS:-2}" --dist loadfile "$@"
