#!/usr/bin/env bash
# Creates .venv and installs the service with its development tools and the Python client
# (clients/python, which also gives `smarttrade` its client commands); reinstalls only when a
# pyproject.toml changed. Needs python3 >= 3.11 and the PyPI registry.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "python3 >= 3.11 is required")'
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.installed-$(cat pyproject.toml clients/python/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  .venv/bin/python -m pip install --quiet -e "clients/python[dev]"
  rm -f .venv/.installed-* && touch "$stamp"
fi
