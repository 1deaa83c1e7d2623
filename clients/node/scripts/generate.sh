#!/usr/bin/env bash
# Generates the typed TypeScript code (ts-proto, grpc-js services) of smarttrade.v1 and of the
# google.rpc error details into src/gen/. The output is not committed: it is a pure function of
# ../../protos and the locked ts-proto version, so every build (and CI) compiles the current
# contract. protoc is the grpc_tools one in the service's .venv, else `protoc` on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
protos=../../protos
if [ -x ../../.venv/bin/python ] && ../../.venv/bin/python -c 'import grpc_tools' 2>/dev/null; then
  protoc=(../../.venv/bin/python -m grpc_tools.protoc)
elif command -v protoc >/dev/null; then
  protoc=(protoc)
else
  echo "generate.sh: no protoc: run scripts/bootstrap.sh (for .venv) or install protobuf-compiler" >&2
  exit 1
fi
rm -rf src/gen
mkdir -p src/gen
"${protoc[@]}" -I "$protos" \
  --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=src/gen \
  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,forceLong=bigint,oneof=unions-value \
  "$protos"/smarttrade/v1/*.proto "$protos"/google/rpc/status.proto "$protos"/google/rpc/error_details.proto
