#!/usr/bin/env bash
# The end-to-end test: starts `smarttrade serve` ($SMARTTRADE_BIN, default
# ../../.venv/bin/smarttrade) and runs the Java client against it. Run build.sh first.
set -euo pipefail
cd "$(dirname "$0")"
exec java -cp "build/classes:$(./classpath.sh)" com.smarttrade.e2e.EndToEnd
