#!/usr/bin/env bash
# Optional extras, kept out of the main .venv because they conflict with its pins:
#   .cache/mitm-venv  mitmproxy 11.0.2 (pins cryptography<44.1, flask<=3.1, h11<=0.14) + this package --no-deps
#                     + the runtime deps the shadow addon needs, resolved against mitmproxy's pins.
# Used by shadow/mitm.py (mitmdump -s shadow/mitm.py), `parity import` of flow files, tests/shadow/test_mitm.py
# and bench/proxy_bench.py (mitmproxy reverse mode). Idempotent: a stamp keyed on this file skips a done setup.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.cache/mitm-venv
mkdir -p .cache
say() { printf '\033[1m[setup-extras]\033[0m %s\n' "$*"; }

stamp=$VENV/.parity-stamp
want=$(cat scripts/setup-extras.sh pyproject.toml | sha256sum | cut -c1-16)
if [ -x $VENV/bin/mitmdump ] && [ -f $stamp ] && [ "$(cat $stamp)" = "$want" ]; then
  say "mitm venv up to date ($VENV)"
  exit 0
fi
[ -x $VENV/bin/python ] || { say "creating $VENV with $($PY --version)"; $PY -m venv $VENV; }
$VENV/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
say "installing mitmproxy 11.0.2"
$VENV/bin/python -m pip install --quiet "mitmproxy==11.0.2"
say "installing the shadow addon's runtime deps against mitmproxy's pins"
# No sqlalchemy/alembic/psycopg: the addon does not write the parity store (the aiohttp proxy does).
$VENV/bin/python -m pip install --quiet "aiohttp>=3.14.3,<3.15" "websockets>=17.1,<18" "prometheus-client>=0.26,<0.27" \
  "orjson>=3.12,<4" "deepdiff>=9.1,<10" "json5>=0.15,<0.16" "pyyaml>=6.0.3,<7" "httptools>=0.6.4,<0.7"
say "installing this package without dependencies"
$VENV/bin/python -m pip install --quiet --no-deps -e .
# `pip check` lists this package's store/CLI deps as missing: left out on purpose (see above).
echo "$want" > $stamp
say "done: $VENV/bin/mitmdump $($VENV/bin/mitmdump --version 2>/dev/null | head -1)"
