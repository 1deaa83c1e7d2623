#!/usr/bin/env bash
# Regenerates the Python protobuf and gRPC code (with .pyi stubs) from protos/
# into service/smarttrade/v1/. The output is committed; `scripts/generate.sh
# --check` fails when the committed code is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
venv_bin="$(dirname "$(command -v python)")"
out="service"
if [ "${1:-}" = "--check" ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  mkdir -p "$out/smarttrade/v1"
  cp service/smarttrade/v1/__init__.py "$out/smarttrade/v1/"
else
  find service/smarttrade/v1 -name '*_pb2*' -delete
fi
python -m grpc_tools.protoc -I protos \
  --plugin=protoc-gen-mypy="$venv_bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$venv_bin/protoc-gen-mypy_grpc" \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  protos/smarttrade/v1/*.proto
if [ "${1:-}" = "--check" ]; then
  if ! diff -r -x __pycache__ "$out/smarttrade/v1" service/smarttrade/v1 >/dev/null; then
    diff -r -x __pycache__ "$out/smarttrade/v1" service/smarttrade/v1 | head -20
    echo "generated code is stale: run scripts/generate.sh and commit the result" >&2
    exit 1
  fi
  echo "generated code is fresh"
fi
