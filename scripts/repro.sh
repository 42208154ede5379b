#!/usr/bin/env bash
# Quickstart (a): set up, then run the whole default pipeline offline and show the results.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DVC_NO_ANALYTICS=1 PATH="$PWD/.venv/bin:$PATH"
[ -d .git ] || git init -q
[ -d .dvc ] || dvc init -q
dvc repro "$@"
dvc metrics show
echo; echo "Report: report/summary.md and report/summary.png"
