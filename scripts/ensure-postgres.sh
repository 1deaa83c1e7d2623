#!/usr/bin/env bash
# Makes sure the tests have a PostgreSQL: SMARTTRADE_TEST_DATABASE_URL, or the local server on
# 127.0.0.1:5432 (started with pg_ctlcluster when it is installed but down). Without either,
# the tests use an embedded server, except under CI (CI=true), where this fails loudly.
set -euo pipefail
if [ -n "${SMARTTRADE_TEST_DATABASE_URL:-}" ]; then exit 0; fi
answers() { .venv/bin/python - <<'PY'
import asyncio, sys, asyncpg
async def main():
    try:
        c = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=3)
    except Exception:
        sys.exit(1)
    await c.close()
asyncio.run(main())
PY
}
if answers; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "PostgreSQL on 127.0.0.1:5432 is down: starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do answers && exit 0; sleep 1; done
fi
if [ "${CI:-}" = "true" ]; then
  echo "no PostgreSQL for the tests: set SMARTTRADE_TEST_DATABASE_URL or run one on 127.0.0.1:5432" >&2
  exit 1
fi
echo "no PostgreSQL on 127.0.0.1:5432: the tests will use an embedded one" >&2
