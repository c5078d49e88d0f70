#!/usr/bin/env bash
# Install what tests/compat needs: a Python venv with the pinned Python SDKs and
# pytest, the pinned Node SDKs (npm ci), and Debian's chromium for the browser
# SDK tests. Idempotent; run as root on Debian (apt-get is used for chromium).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COMPAT="$ROOT/tests/compat"

echo "== python venv: tests/compat/.venv"
if [ ! -x "$COMPAT/.venv/bin/python" ]; then
  python3 -m venv "$COMPAT/.venv"
fi
"$COMPAT/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$COMPAT/requirements.txt"

echo "== node modules: tests/compat/node_modules"
command -v npm >/dev/null || { echo "npm not found: install Node.js >= 20" >&2; exit 1; }
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
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  echo "installed $(command -v chromium)"
fi
echo "== done"
