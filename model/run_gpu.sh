#!/usr/bin/env bash
# Trains, exports and evaluates the shipped model on one CUDA GPU in under 10 minutes:
#   OUT=/some/dir bash model/run_gpu.sh
# Needs python3 with torch (CUDA) and the corpus in model/.data/ (built by model/prepare_data.sh
# on a machine with apt; the GPU machine only reads it). Writes to $OUT (6 files):
#   kvcache4j-niah.gguf  model.pt  eval.json  train.log  run.log  nvidia-smi.txt
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUT="${OUT:-$HERE/out}"
mkdir -p "$OUT"

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >> "$OUT/nvidia-smi.txt"
cat "$OUT/nvidia-smi.txt"

if [ ! -f "$HERE/.data/train.txt" ] || [ ! -f "$HERE/.data/keys_train.txt" ]; then
  echo "run_gpu: model/.data/ is missing; run model/prepare_data.sh first and carry model/.data" >&2
  exit 2
fi

# Evaluation set (c): the eval harness's haystack text, if the checkout has one (or $HAYSTACK_FILE).
H="${HAYSTACK_FILE:-}"
if [ -z "$H" ] && [ -d "$ROOT/eval-harness" ]; then
  H="$(find "$ROOT/eval-harness" -name 'haystack*.txt' -not -path '*/target/*' 2>/dev/null | sort | head -n 1)"
fi
HAYSTACK=()
if [ -n "$H" ] && [ -f "$H" ]; then HAYSTACK=(--haystack "$H"); echo "run_gpu: haystack $H"; fi

# 7.5 minutes for everything the trainer does (setup, training, export, evaluation); the outer
# timeout only guards the 10-minute limit of the machine.
PYTHONUNBUFFERED=1 timeout 580 python3 "$HERE/train_niah.py" --device cuda --seed 1 \
  --time-budget-min 7.5 --eval-samples 5 --eval-max-s 60 --out "$OUT" "${HAYSTACK[@]}" 2>&1 | tee "$OUT/run.log"
rc=${PIPESTATUS[0]}
ls -l "$OUT"
exit "$rc"
