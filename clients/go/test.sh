#!/usr/bin/env bash
# The end-to-end test: starts `smarttrade serve` ($SMARTTRADE_BIN, default ../../.venv/bin/smarttrade)
# and runs the Go client against it. Run build.sh first.
set -euo pipefail
cd "$(dirname "$0")"
exec ./go.sh test -count=1 -v smarttrade/e2e
