#!/usr/bin/env bash
# Generates the Go code of smarttrade.v1 (protoc-gen-go + protoc-gen-go-grpc) into
# src/smarttrade/gen/go/smarttrade/v1, the import path its go_package names, then compiles and
# vets every package. Generated code is not committed: it always follows ../../protos. The
# google.rpc details come from Debian's genproto (google.golang.org/genproto/.../errdetails).
set -euo pipefail
cd "$(dirname "$0")"
out=src/smarttrade/gen
rm -rf "$out"
protoc -I ../../protos --go_out=src --go-grpc_out=src ../../protos/smarttrade/v1/*.proto
./go.sh build smarttrade/...
./go.sh vet smarttrade/... # type-checks the tests too
