#!/usr/bin/env bash
# Install what tests/compat needs: a Python venv with the pinned Python SDKs and
# pytest, the pinned Node SDKs, and Debian's chromium for the browser SDK tests.
# Idempotent. Run as root on Debian: apt-get is used for whatever is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COMPAT="$ROOT/tests/compat"
APT_UPDATED=
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  echo "apt-get installed: $*"
}

echo "== python venv: tests/compat/.venv"
if [ ! -x "$COMPAT/.venv/bin/python" ]; then
  if ! python3 -m venv "$COMPAT/.venv" 2>/dev/null; then
    rm -rf "$COMPAT/.venv"
    apt_install python3-venv
    python3 -m venv "$COMPAT/.venv"
  fi
fi
"$COMPAT/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$COMPAT/requirements.txt"

echo "== node modules: tests/compat/node_modules"
command -v npm >/dev/null || apt_install nodejs npm
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  echo "warning: node $(node --version) found; @segment/analytics-node 3.1.0 wants Node >= 20" >&2
cd "$COMPAT"
# Not `npm ci`: the registry reachable here lacks the darwin/win32 builds of
# msgpackr-extract (optional deps of rudder-sdk-node -> bull), so the lock file
# cannot list them and `npm ci` refuses it. `npm install --no-save` still
# installs the versions pinned in package-lock.json and leaves the lock alone.
npm install --no-save --no-audit --no-fund --loglevel=error

echo "== chromium"
if command -v chromium >/dev/null; then
  echo "chromium already installed: $(command -v chromium)"
else
  apt_install chromium
fi
echo "== done"
