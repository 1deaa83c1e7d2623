#!/usr/bin/env bash
# Generates the Java code (protoc + the grpc-java plugin) of smarttrade.v1, of the vendored
# google.rpc protos (com.google.rpc: Debian ships no jar of them) and of grpc.health.v1, then
# compiles it with the client and the end-to-end test into build/classes. Generated code is not
# committed: it always follows ../../protos. Skips the work when no input changed.
set -euo pipefail
cd "$(dirname "$0")"
# The sources, these scripts, and the versions of protoc and of the jars (their real file names).
inputs() {
  find ../../protos protos src -type f \( -name '*.proto' -o -name '*.java' \) | LC_ALL=C sort | xargs cat
  cat build.sh classpath.sh
  protoc --version
  ./classpath.sh compile | tr ':' '\n' | xargs readlink -f
}
stamp="$(inputs | sha256sum | cut -c1-16)"
if [ -f "build/stamp-$stamp" ]; then
  exit 0
fi
rm -rf build
mkdir -p build/generated build/classes
protoc -I ../../protos -I protos \
  --java_out=build/generated \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin --grpc-java_out=build/generated \
  ../../protos/smarttrade/v1/*.proto ../../protos/google/rpc/*.proto protos/grpc/health/v1/health.proto
find build/generated src -name '*.java' > build/sources.txt
# The generated code is compiled as it is: its own lint (raw types, deprecations) is not ours.
javac --release 17 -encoding UTF-8 -Werror -Xlint:all,-serial,-rawtypes,-deprecation,-unchecked \
  -cp "$(./classpath.sh compile)" -d build/classes @build/sources.txt
touch "build/stamp-$stamp"
