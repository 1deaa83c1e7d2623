#!/usr/bin/env bash
# The whole test suite, as CI runs it: install, static checks, the contract, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
scripts/ensure-postgres.sh
echo "== lint and types"
ruff check .
ruff format --check .
mypy
(cd clients/python && mypy --strict)
echo "== contract"
buf lint
buf breaking --against protos/releases/smarttrade-v1.binpb
scripts/generate.sh --check
echo "== tests"
pytest -q -n 2 "$@"  # two processes (pytest-xdist): every test has its own database and ports
echo "== generated clients (Node/TypeScript, Go, Java) against the real server"
scripts/test-clients.sh
