#!/usr/bin/env bash
# Quickstart (b): set up with the test tools, then run the test suite (one process: 2 cores, no -n).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export DVC_NO_ANALYTICS=1 PATH="$PWD/.venv/bin:$PATH"
ruff check src stages tests scripts benchmarks data/make_sample.py
exec python -m pytest "$@"
