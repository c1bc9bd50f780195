#!/usr/bin/env bash
# Create bench/.venv-peers (Python 3.11) with the peer job queues pinned to
# version ranges. Idempotent: re-running only installs what is missing/outdated.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-peers"
PY="${PYTHON:-python3.11}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
"$VENV/bin/python" -m pip install --quiet --upgrade-strategy only-if-needed \
    "celery[redis]>=5.4,<6" \
    "rq>=2.0,<3" \
    "dramatiq[redis]>=1.17,<3" \
    "huey>=2.5,<4" \
    "redis>=5.0,<9" \
    "procrastinate>=3.0,<4" \
    "psycopg[binary]>=3.2,<4"
# Conveyor itself, from this checkout, so it runs in the same harness as its peers
"$VENV/bin/python" -m pip install --quiet -e "$HERE/.."
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
for p in ("conveyor", "celery", "kombu", "rq", "dramatiq", "huey", "redis", "procrastinate", "psycopg"):
    print(f"{p}=={version(p)}")
PY
