#!/usr/bin/env bash
# Regenerates the Python protobuf and gRPC code (with .pyi stubs) from protos/ into
# service/smarttrade/v1/ (the service) and clients/python/smarttrade_client/v1/ (the client
# package, which must not import the service: its copy imports as `smarttrade_client.v1`).
# The output is committed; `scripts/generate.sh --check` fails when either copy is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
venv_bin="$(dirname "$(command -v python)")"
service_dir=service/smarttrade/v1
client_dir=clients/python/smarttrade_client/v1

# protoc into $1/smarttrade/v1 (absolute imports: `from smarttrade.v1 import ...`).
protoc_into() {
  python -m grpc_tools.protoc -I protos \
    --plugin=protoc-gen-mypy="$venv_bin/protoc-gen-mypy" \
    --plugin=protoc-gen-mypy_grpc="$venv_bin/protoc-gen-mypy_grpc" \
    --python_out="$1" --grpc_python_out="$1" \
    --mypy_out="$1" --mypy_grpc_out="$1" \
    protos/smarttrade/v1/*.proto
}

# The client's copy of $1/smarttrade/v1 into $2: only the Python module paths move to
# `smarttrade_client.v1`. The serialized descriptors stay byte for byte the same (same file
# names, same `smarttrade.v1` package), so the service and the client load into one process:
# the protobuf pool accepts an identical file twice, and both get the same message classes.
# RPC paths ('/smarttrade.v1.SmartTradeService/...') and proto type names do not end in
# `_pb2`, so the pattern leaves them alone.
client_copy() {
  local file
  for file in "$1"/smarttrade/v1/*_pb2*; do
    sed -E \
      -e 's/^from smarttrade\.v1 import /from smarttrade_client.v1 import /' \
      -e "s/(^|[^[:alnum:]_./])smarttrade\.v1\.([[:alnum:]_]+_pb2(_grpc)?)([^[:alnum:]_]|$)/\1smarttrade_client.v1.\2\4/g" \
      "$file" >"$2/$(basename "$file")"
  done
}

generated="$(mktemp -d)"
trap 'rm -rf "$generated"' EXIT
protoc_into "$generated"

if [ "${1:-}" = "--check" ]; then
  stale=0
  expected="$generated/expected"
  mkdir -p "$expected/service" "$expected/client"
  cp "$generated"/smarttrade/v1/*_pb2* "$expected/service/"
  client_copy "$generated" "$expected/client"
  for pair in "service:$service_dir" "client:$client_dir"; do
    copy="${pair%%:*}" committed="${pair#*:}"
    cp "$committed/__init__.py" "$expected/$copy/"
    if ! diff -r -x __pycache__ "$expected/$copy" "$committed" >/dev/null; then
      diff -r -x __pycache__ "$expected/$copy" "$committed" | head -20
      echo "generated code in $committed is stale: run scripts/generate.sh and commit the result" >&2
      stale=1
    fi
  done
  [ "$stale" -eq 0 ] || exit 1
  echo "generated code is fresh"
  exit 0
fi

find "$service_dir" "$client_dir" -name '*_pb2*' -delete
cp "$generated"/smarttrade/v1/*_pb2* "$service_dir/"
client_copy "$generated" "$client_dir"
