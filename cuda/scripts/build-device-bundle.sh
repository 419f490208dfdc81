#!/usr/bin/env bash
# Assembles what a GPU machine (no Java, no network, a copied tree of at most 64 MiB) needs to run
# cuda/scripts/device-check.sh, in the ignored folder .device/ at the repository root:
#   .device/jre      a jlinked Temurin 25 runtime (java.base, java.logging (JCuda logs through it),
#                    java.management (the kernels' JIT check reads the compiler MXBean),
#                    jdk.incubator.vector, jdk.unsupported)
#   .device/lib      the kv-api, quantization and cuda jars and JCuda's Java classes
#   .device/native   libJCudaDriver only (it needs nothing but the driver's libcuda.so.1)
#   .device/cli      the command line (kvcache4j-cli.jar) and the jars of its niah command that
#                    .device/lib lacks (model-io, llama-engine, niah-harness, picocli, jackson,
#                    eviction-policies, and hybrid-attention, retrieval-index, RoaringBitmap and hnswlib
#                    for the tiered kinds); run with ".device/cli/*:.device/lib/*". Left out:
#                    eclipse-collections (10 MB; only the hnsw index needs it at run time) and
#                    jcuda-natives (libJCudaDriver is in .device/native). No java.desktop in the
#                    runtime, so niah writes results.csv/json and report.html without its charts.
# Builds the jars with the Maven wrapper (package, no install, tests skipped) and checks that the
# bundle and the tracked tree stay under 63 MiB (the device run carries at most 64 MiB).
# Usage (repository root): cuda/scripts/build-device-bundle.sh   then carry ".device" to the device run.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
export JAVA_HOME PATH="$JAVA_HOME/bin:$PATH"
M2="${M2_REPO:-$HOME/.m2/repository}"
JCUDA_VERSION=12.6.0
dest=.device
limit=$((63 * 1024 * 1024))

./mvnw -B -q ${MVN_OFFLINE:--o} -pl cuda,eval-harness/cli -am package -DskipTests -Dspotless.check.skip=true

rm -rf "$dest/lib" "$dest/native" "$dest/cli"
mkdir -p "$dest/lib" "$dest/native" "$dest/cli"
if [[ ! -x "$dest/jre/bin/java" ]] || ! "$dest/jre/bin/java" --list-modules | grep -q '^java.management'; then
  rm -rf "$dest/jre"
  jlink --add-modules java.base,java.logging,java.management,jdk.incubator.vector,jdk.unsupported --strip-debug --no-header-files \
    --no-man-pages --compress=zip-9 --output "$dest/jre"
fi
version=$(sed -n 's:.*<version>\(.*\)</version>.*:\1:p' pom.xml | head -1)
for m in kv-api quantization cuda; do
  cp "$m/target/$m-$version.jar" "$dest/lib/"
done
cp "$M2/org/jcuda/jcuda/$JCUDA_VERSION/jcuda-$JCUDA_VERSION.jar" "$dest/lib/"
cli=eval-harness/cli/target
cp "$cli/kvcache4j-cli.jar" "$dest/cli/"
for a in model-io llama-engine niah-harness picocli jackson-annotations jackson-core jackson-databind \
    hybrid-attention retrieval-index RoaringBitmap hnswlib-core eviction-policies; do
  jars=("$cli"/lib/"$a"-[0-9]*.jar)
  if [[ ${#jars[@]} -ne 1 || ! -f ${jars[0]} ]]; then
    echo "expected one $a jar in $cli/lib, found: ${jars[*]}" >&2
    exit 1
  fi
  cp "${jars[0]}" "$dest/cli/"
done
natives="$M2/org/jcuda/jcuda-natives/$JCUDA_VERSION/jcuda-natives-$JCUDA_VERSION-linux-x86_64.jar"
so="lib/libJCudaDriver-$JCUDA_VERSION-linux-x86_64.so"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && unzip -q "$natives" "$so")
cp "$tmp/$so" "$dest/native/"
# JCuda's loader also looks for the library inside a jar on the class path: ship it there too.
(cd "$tmp" && jar --create --file "$root/$dest/lib/jcuda-driver-native.jar" "$so")
size=$(du -sb "$dest" | cut -f1)
# What the device run copies: tracked files and untracked ones git does not ignore.
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
echo "device bundle: $(du -sh "$dest" | cut -f1) in $dest; tree $((tree / 1024)) KiB"
du -sh "$dest"/*
echo "bundle + tree = $((size + tree)) bytes (kept under $limit; the device run's limit is $((64 * 1024 * 1024)))"
if (( size + tree > limit )); then
  echo "bundle + tree = $(( (size + tree) / 1024 / 1024 )) MiB exceeds the 63 MiB kept under the 64 MiB limit" >&2
  exit 1
fi
