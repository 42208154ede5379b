#!/usr/bin/env bash
# The committed learning curves: 5 training sizes x 3 seeds, both tasks in every experiment, then `tuneval curve`.
#   scripts/learning_curves.sh [REV]      (REV: the commit whose study the curves extend; default HEAD)
#   CURVE_SEEDS="3" scripts/learning_curves.sh REV   (only those seeds; default "1 2 3")
# Resumable: the repository's experiments are copied into the clone first, and one already there (same name, same
# baseline REV) is not run again, so the curves always use every finished experiment on REV.
# The experiments run one at a time (a 2-core CPU: two model processes slow each other ~10x) in a scratch clone
# that shares this repository's DVC cache, so your workspace is never touched and unchanged stages (zero-shot, the
# other task's stages at its default size) come from the run cache. Each experiment sets seed = data.draw_seed:
# its spread covers both the training seed and which training examples were drawn. The experiments are fetched
# back into this repository (refs/exps: `dvc exp show` lists them, `dvc exp push` shares them).
# Sizes 25-400 (16x) and 3 seeds were fixed by the time budget before any curve was seen (docs/protocol.md).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD REV=$(git rev-parse "${1:-HEAD}") CLONE=${CURVE_CLONE:-$(mktemp -d)/study}
export DVC_NO_ANALYTICS=1 PATH="$REPO/.venv/bin:$PATH" TOKENIZERS_PARALLELISM=false
git clone -q "$REPO" "$CLONE" && git -C "$CLONE" checkout -q "$REV"
cd "$CLONE"
export PYTHONPATH=src  # the stages import the clone's own code, the one dvc.lock hashes
dvc cache dir --local "$REPO/.dvc/cache"
dvc checkout -q
git fetch -q "$REPO" 'refs/exps/*:refs/exps/*'  # finished experiments (any baseline; the curve reads REV's)
done_names=$(dvc exp list --name-only --rev "$REV" 2>/dev/null || true)
for seed in ${CURVE_SEEDS:-1 2 3}; do
  for n in 25 50 100 200 400; do
    if grep -qx "curve-n$n-s$seed" <<<"$done_names"; then echo "curve-n$n-s$seed: done before"; continue; fi
    echo "curve-n$n-s$seed: $(date -u +%FT%TZ)"
    dvc exp run -q -n "curve-n$n-s$seed" -S "data.train_examples.sst2=$n" -S "data.train_examples.squad_v2=$n" \
      -S "seed=$seed" -S "data.draw_seed=$seed" score
  done
done
git -C "$REPO" fetch -q "$CLONE" 'refs/exps/*:refs/exps/*'
cd "$REPO"
for task in sst2 squad_v2; do
  other=$([ "$task" = sst2 ] && echo squad_v2 || echo sst2)  # each experiment sizes both tasks alike
  metric=$([ "$task" = sst2 ] && echo accuracy || echo f1)
  tuneval curve --repo "$CLONE" --task "$task" --param "data.train_examples.$task" --metric "$metric" \
    --ignore-param "data.train_examples.$other" --out "report/curves/$task"
done
for metric in answered HasAns_f1 NoAns_f1; do  # what moves SQuAD v2's F1: answering, and abstaining where it should
  tuneval curve --repo "$CLONE" --task squad_v2 --param data.train_examples.squad_v2 --metric "$metric" \
    --ignore-param data.train_examples.sst2 --out "report/curves/squad_v2/$metric"
done
echo "done: $(date -u +%FT%TZ); report/curves/<task>/[<metric>/]curve.{md,png,json}; then dvc repro report (its findings)"
