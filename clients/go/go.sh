#!/usr/bin/env bash
# The go command in GOPATH mode, offline: this directory is a GOPATH workspace (src/smarttrade/...)
# and Debian's Go libraries (/usr/share/gocode) are the only dependencies; the module proxy is
# never asked. Usage: clients/go/go.sh test -v smarttrade/e2e
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export GO111MODULE=off GOPROXY=off GOFLAGS='' GOPATH="$here:/usr/share/gocode"
# The build cache lives in ~/.cache/go-build; a CI without HOME gets one here instead.
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
  export GOCACHE="$here/.cache/go-build"
fi
exec go "$@"
