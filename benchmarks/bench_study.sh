#!/usr/bin/env bash
# The default study's wall time and peak memory at one or more revisions, on this machine, one after another:
#   benchmarks/bench_study.sh [REV ...]          (default: HEAD)
#   benchmarks/bench_study.sh b737140 HEAD       (is the study slower than at b737140, on this CPU?)
# Each revision runs `dvc repro` of every stage in a fresh clone with a DVC cache of its own: no stage comes from
# the run cache, and this repository's cache never receives another revision's outputs. The clones use this
# repository's .venv with their own code (PYTHONPATH=src), so only the code and params differ. Prints one line per
# revision and a Markdown table for benchmarks/README.md; the CPU line says which kind the times belong to.
# Never run it beside another model process: on 2 cores two of them slow each other ~10x.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD WORK=$(mktemp -d) REVS=("${@:-HEAD}")
export DVC_NO_ANALYTICS=1 PATH="$REPO/.venv/bin:$PATH" TOKENIZERS_PARALLELISM=false
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
flags=$(grep -m1 -ow -e avx512_bf16 -e amx_bf16 /proc/cpuinfo | sort -u | xargs)
rows=()
for rev in "${REVS[@]}"; do
  sha=$(git rev-parse --short "$rev")
  clone="$WORK/$sha"
  git clone -q "$REPO" "$clone" && git -C "$clone" checkout -q "$sha"
  echo "== $rev ($sha): dvc repro in $clone ($(date -u +%FT%TZ))"
  start=$(date +%s)
  (cd "$clone" && PYTHONPATH=src /usr/bin/time -f '%M' -o "$WORK/$sha.rss" dvc repro >"$WORK/$sha.log" 2>&1) \
    || { echo "dvc repro failed at $rev: see $WORK/$sha.log" >&2; exit 1; }
  secs=$(( $(date +%s) - start ))
  peak=$(( $(tail -1 "$WORK/$sha.rss") / 1024 ))  # dvc's own peak; each stage is a child process, see below
  stage_peaks=$(grep -o 'peak memory [0-9,]* MiB' "$WORK/$sha.log" | tr -dc '0-9\n' | sort -n | tail -1)
  line="| $rev ($sha) | $((secs / 60)) min $((secs % 60)) s | ${stage_peaks:-?} MiB |"
  echo "$line   (log: $WORK/$sha.log, dvc process peak ${peak} MiB)"
  rows+=("$line")
done
echo
echo "$(date -u +%F): $cpu (${flags:-no avx512_bf16/amx_bf16}), $(nproc) cores; dvc repro of every stage, fresh clone"
echo "| revision | wall time | heaviest stage's peak memory |"
echo "|---|---:|---:|"
printf '%s\n' "${rows[@]}"
