#!/usr/bin/env bash
# Platform checks on a CUDA machine (about 6 minutes on an H200 before issue 18's steps; up to 14 with them).
#
#   OUT=/some/folder bench/device_check.sh            # PYTHON defaults to .venv/bin/python, else python3
#
# 1. the platform tests selected for CUDA (pytest -k cuda: torch module + causal LM fp32/bf16/int8 on cuda);
# 2. (a) LLM batching: a ~0.3B random Qwen2 ("large"), bf16, 64 tokens per request at 1/4/16/64 concurrent,
#    against sequential and offline batched `generate`, in the same run;
# 3. (b) fp32 vs int8 weight-only memory and tokens/s on cuda;
# 4. (d) hot swap under load with the server on cuda (quick set of models);
# 5. the batching-delay study on cuda;
# 6. (issue 18) the static-KV + CUDA-graph decode path: its tests (the graph one runs only on CUDA; also in step 1),
#    LLM batching again with --kv-cache static (goals: >= 300 tok/s at 1 concurrent, >= 10,000 at 64), with
#    the shared-prefix workload (prefix cache off vs on) in both batching runs;
# 7. the reference matrix (7:13:70 shapes x batch 8/16/32 x fp16/bf16/int8), full size, static KV + graphs.
# Every step writes into $OUT (JSON, PNG, logs); a failing step does not stop the others; the exit status is
# non-zero if any step failed.  Model weights are random and built locally (no download).
set -uo pipefail
OUT=${OUT:-$(dirname "$0")/out/device}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)   # absolute, before changing directory
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
status=0
step() {  # step NAME TIMEOUT_S CMD...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)" | tee -a "$OUT/device_check.log"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc in $((SECONDS - t0))s" | tee -a "$OUT/device_check.log"
  tail -n 12 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || status=1
}
{ nvidia-smi || true; "$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } \
  >"$OUT/environment.txt" 2>&1
step pytest-cuda 120 "$PY" -m pytest tests/platform -k cuda -p no:cacheprovider -q -rs --timeout 110
step llm-batching 150 "$PY" bench/platform_llm_batching.py --device cuda --size large --max-tokens 64 \
  --levels 1,4,16,64 --max-sequential 8 --rounds 1 --out "$OUT"
step int8 60 "$PY" bench/platform_int8.py --device cuda --size large --max-tokens 64 --rounds 2 --out "$OUT"
step swap 100 "$PY" bench/platform_swap.py --device cuda --quick --out "$OUT"
step batch-delay 40 "$PY" bench/platform_batch_delay.py --device cuda --quick --rounds 1 --out "$OUT"
mkdir -p "$OUT/static"
step pytest-static 120 "$PY" -m pytest tests/platform/runtime/test_static_kv.py tests/platform/engine/test_prefix_cache.py \
  -p no:cacheprovider -q --timeout 110
step llm-batching-static 150 "$PY" bench/platform_llm_batching.py --device cuda --size large --max-tokens 64 \
  --levels 1,4,16,64 --max-sequential 8 --rounds 1 --kv-cache static --out "$OUT/static"
step matrix 180 "$PY" bench/platform_matrix.py --device cuda --out "$OUT"
echo "device_check status=$status" | tee -a "$OUT/device_check.log"
exit $status
