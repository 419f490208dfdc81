#!/usr/bin/env bash
# Assembles what a GPU machine (no Java, no network, a copied tree of at most 64 MiB) needs to run
# cuda/scripts/device-check.sh, in the ignored folder .device/ at the repository root:
#   .device/jre      a jlinked Temurin 25 runtime (java.base, java.logging (JCuda logs through it),
#                    java.management (the kernels' JIT check reads the compiler MXBean),
#                    jdk.incubator.vector, jdk.unsupported)
#   .device/lib      the kv-api, quantization and cuda jars and JCuda's Java classes
#   .device/native   libJCudaDriver only (it needs nothing but the driver's libcuda.so.1)
# Builds the jars with the Maven wrapper (package, no install, tests skipped) and checks the total size.
# Usage (repository root): cuda/scripts/build-device-bundle.sh   then carry ".device" to the device run.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
export JAVA_HOME PATH="$JAVA_HOME/bin:$PATH"
M2="${M2_REPO:-$HOME/.m2/repository}"
JCUDA_VERSION=12.6.0
dest=.device
limit=$((60 * 1024 * 1024))

./mvnw -B -q ${MVN_OFFLINE:--o} -pl cuda -am package -DskipTests -Dspotless.check.skip=true

rm -rf "$dest/lib" "$dest/native"
mkdir -p "$dest/lib" "$dest/native"
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
natives="$M2/org/jcuda/jcuda-natives/$JCUDA_VERSION/jcuda-natives-$JCUDA_VERSION-linux-x86_64.jar"
so="lib/libJCudaDriver-$JCUDA_VERSION-linux-x86_64.so"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && unzip -q "$natives" "$so")
cp "$tmp/$so" "$dest/native/"
# JCuda's loader also looks for the library inside a jar on the class path: ship it there too.
(cd "$tmp" && jar --create --file "$root/$dest/lib/jcuda-driver-native.jar" "$so")
size=$(du -sb "$dest" | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "device bundle: $(du -sh "$dest" | cut -f1) in $dest; tracked tree $((tree / 1024)) KiB"
du -sh "$dest"/*
if (( size + tree > limit )); then
  echo "bundle + tree = $(( (size + tree) / 1024 / 1024 )) MiB exceeds the 60 MiB kept under the 64 MiB limit" >&2
  exit 1
fi
