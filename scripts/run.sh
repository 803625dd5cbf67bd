#!/usr/bin/env bash
# Set everything up (quick when already done) and start the app on http://localhost:${FEATGEOM_PORT:-8501}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec .venv/bin/streamlit run app.py --server.port "${FEATGEOM_PORT:-8501}" "$@"
