#!/usr/bin/env bash
# Run a command the way an AVX2-only CPU runs it, on any x86 CPU with AVX2 (e.g. one with AVX512-BF16):
#   scripts/as_avx2.sh dvc repro            scripts/as_avx2.sh tuneval eval ...
# torch's vectorised kernels at AVX2 (ATEN_CPU_CAPABILITY), MKL's and oneDNN's capped at AVX2, and bf16 matmuls
# as fp32 GEMMs (TUNEVAL_AS_AVX2: tuneval.models.loading). The run records the route `avx2, bf16 as fp32 GEMMs`
# with `isa_cap: avx2`. Use it to measure how far the other CPU kind moves the committed predictions without
# that machine (docs/reference.md#compute-route-and-cross-route-agreement); it is about 2x slower than native bf16.
set -euo pipefail
grep -qw avx2 /proc/cpuinfo || { echo "as_avx2.sh: this CPU has no AVX2, so it cannot run AVX2 kernels" >&2; exit 2; }
[ $# -gt 0 ] || { echo "usage: scripts/as_avx2.sh COMMAND [ARG ...]" >&2; exit 2; }
export ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 TUNEVAL_AS_AVX2=1
exec "$@"
