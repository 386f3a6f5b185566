#!/usr/bin/env bash
# Idempotent setup: .venv at the repo root, Python deps, Node 24 + the pinned legacy under .cache/legacy,
# and (when root and apt is usable) the Debian packages the tests and the demo use.
# Quick when already done: every step is guarded by a stamp keyed on its inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
mkdir -p .cache

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Python virtualenv and dependencies.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
stamp=.cache/pip.stamp
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat $stamp)" != "$want" ]; then
  say "installing Python dependencies (editable, extras dev+load)"
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install --quiet -e ".[dev,load]"
  echo "$want" > "$stamp"
fi

# 2. Debian packages for tests/bench/demo (real PostgreSQL, Prometheus incl. promtool, nginx-light, wrk).
apt_pkgs=()
command -v prometheus >/dev/null 2>&1 || apt_pkgs+=(prometheus)
command -v promtool >/dev/null 2>&1 || apt_pkgs+=(prometheus)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_pkgs+=(postgresql)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_pkgs+=(nginx-light)
command -v wrk >/dev/null 2>&1 || apt_pkgs+=(wrk)   # HTTP load generator for bench/proxy_bench.py
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${apt_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null 2>&1; }; then
      say "WARNING: could not install ${apt_pkgs[*]}; tests that need them will be skipped with the reason"
    fi
    # The Debian packages start system services; we run our own instances on loopback only.
    for svc in prometheus nginx postgresql; do
      (command -v systemctl >/dev/null && systemctl stop "$svc" >/dev/null 2>&1) || service "$svc" stop >/dev/null 2>&1 || true
    done
  else
    say "not root or no apt-get: skipping ${apt_pkgs[*]} (tests that need them will be skipped with the reason)"
  fi
fi

# 3. Node 24 and the pinned legacy gateway (npm registry), cached under .cache/legacy.
.venv/bin/parity legacy install

# 4. Extra environments for optional adapters (kept apart: mitmproxy 11 pins old cryptography/flask).
if [ -x scripts/setup-extras.sh ]; then
  scripts/setup-extras.sh
fi
say "ready"
