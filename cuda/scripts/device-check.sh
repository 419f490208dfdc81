#!/usr/bin/env bash
# The GPU check, in one run on a GPU machine (repository root, after build-device-bundle.sh built
# .device/ and it was carried along). Writes every log under $OUT (default ./device-out):
#   nvidia-smi.txt   the GPU, driver and memory
#   check.log        every kernel on the GPU against its CPU twin on random inputs, and the store path
#                    (append, compaction, layer attention) against kv-api's CPU attention: relative
#                    error per kernel, PASS within 1e-3 (DeviceCheck check, the GpuKernelTest checks)
#   oracle.log       an independent oracle where python3 with torch and CUDA exists:
#                    scaled_dot_product_attention on the same f16 rows against the GPU's output
#   headinfer.log    headinfer-cuda (heads in pinned host memory, prefetched per layer on the transfer
#                    stream, attended on the device) against the all-resident cuda-f16 stores bit for bit,
#                    and its decode step against theirs next to the pinned copy bandwidth
#                    (io.kvcache4j.hybrid.HeadInferDeviceCheck)
#   bench.log        decode attention at 64K and 1M tokens next to a device-to-device copy of the
#                    same KV bytes, in the same process
#   model.log        the shipped model (model/kvcache4j-niah.gguf) decoding a NIAH grid with its KV
#                    cache on the GPU (--quant cuda-f16) and on the CPU (--quant none, exact f16), same
#                    prompts: the command line's output, then cell by cell whether the generated text is
#                    identical, and the accuracy of each; the report itself (results.csv, results.json,
#                    report.html) goes to $OUT/niah-KIND-POLICY-threadsT for each comparison below
# Exit status: 0 when the checks pass (the oracle, the benchmark and the model run are reported, not
# judged).
# Environment: OUT, JAVA (default .device/jre/bin/java); SECTIONS (default "check oracle headinfer bench
# model": the sections to run, e.g. "headinfer model" to check head-wise offload alone); MODEL_ONLY
# (default unset: a pattern; only the model comparisons whose GPU storage matches it run);
# MODEL_REHEARSAL_QUANT (default unset) runs
# the model section with that CPU storage kind in place of the GPU storages (e.g. int8), to rehearse
# the comparison on a machine without a GPU.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
OUT="${OUT:-$root/device-out}"
mkdir -p "$OUT"
JAVA="${JAVA:-.device/jre/bin/java}"
CP=".device/lib/*"
JOPTS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.library.path=.device/native
       -Xmx32g -cp "$CP")
status=0
SECTIONS="${SECTIONS:-check oracle headinfer bench model}"
section() { [[ " $SECTIONS " == *" $1 "* ]]; }
rc=0

echo "== nvidia-smi" | tee "$OUT/nvidia-smi.txt"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi 2>&1 | tee -a "$OUT/nvidia-smi.txt"
else
  echo "nvidia-smi not found" | tee -a "$OUT/nvidia-smi.txt"
fi
if [[ ! -x "$JAVA" ]]; then
  echo "no Java runtime at $JAVA: run cuda/scripts/build-device-bundle.sh and carry .device" | tee "$OUT/check.log"
  echo "model on GPU: skipped: no Java runtime at $JAVA" > "$OUT/model.log"
  exit 3
fi

if section check; then
  echo "== correctness: GPU against the CPU path" | tee "$OUT/check.log"
  timeout 150 "$JAVA" "${JOPTS[@]}" io.kvcache4j.cuda.DeviceCheck check 2>&1 | tee -a "$OUT/check.log"
  rc=${PIPESTATUS[0]}
  echo "exit $rc" | tee -a "$OUT/check.log"
  (( rc != 0 )) && status=$rc
fi

if ! section oracle; then
  :
elif command -v python3 >/dev/null && python3 -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  mkdir -p "$OUT/oracle"
  timeout 60 "$JAVA" "${JOPTS[@]}" io.kvcache4j.cuda.DeviceCheck dump "$OUT/oracle" 2>&1 | tee -a "$OUT/oracle.log"
  timeout 90 python3 cuda/scripts/torch_oracle.py "$OUT/oracle" 2>&1 | tee -a "$OUT/oracle.log"
  rm -f "$OUT"/oracle/*.bin
else
  echo "skipped: no python3 with torch and CUDA on this machine" | tee -a "$OUT/oracle.log"
fi

if (( rc != 2 && rc != 3 )) && section headinfer; then
  echo "== headinfer-cuda: heads offloaded to pinned host memory, prefetched on the transfer stream" | tee "$OUT/headinfer.log"
  timeout 240 "$JAVA" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
    -Djava.library.path=.device/native -Xmx32g -cp ".device/cli/*:.device/lib/*" \
    io.kvcache4j.hybrid.HeadInferDeviceCheck 2>&1 | tee -a "$OUT/headinfer.log"
  hrc=${PIPESTATUS[0]}
  echo "exit $hrc" | tee -a "$OUT/headinfer.log"
  (( hrc != 0 )) && status=$hrc
fi
if (( rc != 2 && rc != 3 )) && section bench; then
  echo "== benchmark: decode attention against a device copy of the same bytes" | tee "$OUT/bench.log"
  timeout 150 "$JAVA" "${JOPTS[@]}" io.kvcache4j.cuda.DeviceCheck bench 2>&1 | tee -a "$OUT/bench.log"
fi
# The whole model: a NIAH grid (1024 and 4096 tokens, 10 depths, 20 cells a storage) on a reference
# storage and a GPU storage, in one run of the command line, then compared cell by cell: exact f16
# (none) against cuda-f16 one cell at a time (--threads 1), then the 4096-token cells with one cell per
# core (every cell's cache on the one shared device from its own thread); cuda-f16 against
# headinfer-cuda (every head in pinned host memory, staged per layer), with the full cache and with
# streaming eviction (a compaction at every step); KIVI int4 with f32 scales on the CPU
# (int4:scales=f32) against cuda-int4; HGCA with its fast tier (5 % of the prompt) in host memory
# against hgca-cuda (fast tier on the GPU, sparse part on the CPU), one cell per core (a 4,096-token
# hgca cell scores every slow key per token of its prefill on the CPU: about 5 s each on the H200
# machine's cores).
if ! section model; then
  echo "logs in $OUT"
  exit $status
fi
echo "== model: NIAH on the shipped model, CPU storage against its GPU counterpart" | tee "$OUT/model.log"
if [[ -n "${MODEL_REHEARSAL_QUANT:-}" ]]; then
  echo "rehearsal: $MODEL_REHEARSAL_QUANT stands in for the GPU storages (MODEL_REHEARSAL_QUANT)" | tee -a "$OUT/model.log"
fi
if [[ ! -f .device/cli/kvcache4j-cli.jar ]]; then
  echo "model on GPU: skipped: no command line in .device/cli (run cuda/scripts/build-device-bundle.sh and carry" \
    ".device)" | tee -a "$OUT/model.log"
elif [[ ! -f model/kvcache4j-niah.gguf ]]; then
  echo "model on GPU: skipped: model/kvcache4j-niah.gguf is missing from the tree" | tee -a "$OUT/model.log"
else
  cores=$(nproc 2>/dev/null || echo 2)
  for run in "full none cuda-f16 1 1024,4096 150 0.1" "full none cuda-f16 $cores 4096 120 0.1" \
             "full cuda-f16 headinfer-cuda 1 1024,4096 150 0.1" "streaming cuda-f16 headinfer-cuda $cores 1024,4096 150 0.1" \
             "full cuda-f16 headinfer-cuda:slot=1 1 1024,4096 150 0.1" \
             "full int4:scales=f32 cuda-int4 1 1024,4096 150 0.1" "full hgca hgca-cuda $cores 1024,4096 150 0.05"; do
    read -r policy ref cand threads lengths limit budget <<< "$run"
    if [[ -n "${MODEL_ONLY:-}" && "$cand" != *"$MODEL_ONLY"* ]]; then
      continue
    fi
    if [[ -n "${MODEL_REHEARSAL_QUANT:-}" ]]; then
      cand="$MODEL_REHEARSAL_QUANT"
      [[ "$ref" == *cuda* ]] && ref=none
    fi
    dir="$OUT/niah-$(tr ':=' '--' <<< "$cand")-$policy-threads$threads"
    NIAH=(niah --policy "$policy" --quant "$ref,$cand" --budget "$budget" --lengths "$lengths" --depths 10 --samples 1
          --seed 1 --threads "$threads" --out "$dir")
    echo "command line: ${NIAH[*]}" | tee -a "$OUT/model.log"
    mkdir -p "$dir"
    rm -f "$dir/results.csv"
    started=$(date +%s)
    timeout "$limit" "$JAVA" --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC \
      -Xss4m -Xmx32g "-Djava.util.concurrent.ForkJoinPool.common.parallelism=$cores" \
      -Djava.library.path=.device/native "-Dkvcache4j.home=$root" -cp ".device/cli/*:.device/lib/*" \
      io.kvcache4j.eval.cli.Main "${NIAH[@]}" 2>&1 | tr '\r' '\n' | grep -v '^\[#*\.*\]' | tee -a "$OUT/model.log"
    mrc=${PIPESTATUS[0]}
    echo "exit $mrc after $(( $(date +%s) - started )) s$( (( mrc == 124 )) && echo ' (timed out)')" \
      | tee -a "$OUT/model.log"
    if [[ -f "$dir/results.csv" ]]; then
      echo -n "$cand against $ref, threads $threads: " | tee -a "$OUT/model.log"
      awk -v ref="$ref" -v cand="$cand" -f cuda/scripts/niah-compare.awk "$dir/results.csv" 2>&1 \
        | tee -a "$OUT/model.log"
    else
      echo "model on GPU: no results: $dir/results.csv missing, the run above stopped (exit $mrc)" \
        | tee -a "$OUT/model.log"
    fi
  done
fi

echo "logs in $OUT"
exit $status
