#!/usr/bin/env bash
# Installs the service and runs it: embedded PostgreSQL (data in ~/.local/share/smarttrade)
# and the paper exchange, on 127.0.0.1:50051. Extra arguments go to `smarttrade serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/smarttrade serve "$@"
