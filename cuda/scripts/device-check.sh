#!/usr/bin/env bash
# The GPU check, in one run on a GPU machine (repository root, after build-device-bundle.sh built
# .device/ and it was carried along). Writes every log under $OUT (default ./device-out):
#   nvidia-smi.txt   the GPU, driver and memory
#   check.log        every kernel on the GPU against its CPU twin on random inputs, and the store path
#                    (append, compaction, layer attention) against kv-api's CPU attention: relative
#                    error per kernel, PASS within 1e-3 (DeviceCheck check, the GpuKernelTest checks)
#   oracle.log       an independent oracle where python3 with torch and CUDA exists:
#                    scaled_dot_product_attention on the same f16 rows against the GPU's output
#   bench.log        decode attention at 64K and 1M tokens next to a device-to-device copy of the
#                    same KV bytes, in the same process
# Exit status: 0 when the checks pass (the oracle and the benchmark are reported, not judged).
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

echo "== nvidia-smi" | tee "$OUT/nvidia-smi.txt"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi 2>&1 | tee -a "$OUT/nvidia-smi.txt"
else
  echo "nvidia-smi not found" | tee -a "$OUT/nvidia-smi.txt"
fi
if [[ ! -x "$JAVA" ]]; then
  echo "no Java runtime at $JAVA: run cuda/scripts/build-device-bundle.sh and carry .device" | tee "$OUT/check.log"
  exit 3
fi

echo "== correctness: GPU against the CPU path" | tee "$OUT/check.log"
timeout 150 "$JAVA" "${JOPTS[@]}" io.kvcache4j.cuda.DeviceCheck check 2>&1 | tee -a "$OUT/check.log"
rc=${PIPESTATUS[0]}
echo "exit $rc" | tee -a "$OUT/check.log"
(( rc != 0 )) && status=$rc

echo "== oracle: torch scaled_dot_product_attention" | tee "$OUT/oracle.log"
if command -v python3 >/dev/null && python3 -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  mkdir -p "$OUT/oracle"
  timeout 60 "$JAVA" "${JOPTS[@]}" io.kvcache4j.cuda.DeviceCheck dump "$OUT/oracle" 2>&1 | tee -a "$OUT/oracle.log"
  timeout 90 python3 cuda/scripts/torch_oracle.py "$OUT/oracle" 2>&1 | tee -a "$OUT/oracle.log"
  rm -f "$OUT"/oracle/*.bin
else
  echo "skipped: no python3 with torch and CUDA on this machine" | tee -a "$OUT/oracle.log"
fi

if (( rc != 2 && rc != 3 )); then
  echo "== benchmark: decode attention against a device copy of the same bytes" | tee "$OUT/bench.log"
  timeout 150 "$JAVA" "${JOPTS[@]}" io.kvcache4j.cuda.DeviceCheck bench 2>&1 | tee -a "$OUT/bench.log"
fi
echo "logs in $OUT"
exit $status
