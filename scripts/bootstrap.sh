#!/usr/bin/env bash
# Installs what tickflow needs when it is missing: nats-server (OS package) and the npm packages.
# Called by both quick-start commands and by CI; quiet and fast when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

have_nats() { command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || [ -x /usr/local/bin/nats-server ]; }

if ! have_nats; then
  echo "bootstrap: nats-server not found; installing it" >&2
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >&2
    # The Debian package enables a system service; tickflow starts its own private server.
    $SUDO systemctl disable --now nats-server >/dev/null 2>&1 || true
  elif command -v brew >/dev/null 2>&1; then
    brew install nats-server >&2
  else
    echo "bootstrap: cannot install nats-server here: install it (https://docs.nats.io) or set NATS_URL" >&2
    exit 1
  fi
fi

# Headless Chromium for the report test (test/cli-report.test.ts): `bootstrap.sh --with-browser`
# (npm test passes it). Debian's package; playwright-core drives it, no browser download.
if [ "${1:-}" = "--with-browser" ] && ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  echo "bootstrap: chromium not found; installing it for the report test" >&2
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
  else
    echo "bootstrap: cannot install chromium here; install it and set TICKFLOW_CHROMIUM to its path" >&2
  fi
fi

# npm packages: install when node_modules is missing or older than the lockfile. The lockfile
# records every platform's optional packages (esbuild, rollup, DuckDB bindings), so `npm ci`
# takes it on Linux and macOS alike. No build here: bin/tickflow.mjs runs the TypeScript through
# tsx until `npm run build` has written a dist/ newer than src/.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: installing npm packages (npm ci)" >&2
  ci_log="$(mktemp)"
  if ! npm ci --no-audit --no-fund --loglevel=error >"$ci_log" 2>&1; then
    cat "$ci_log" >&2
    if grep -q "Missing: .* from lock file" "$ci_log"; then
      echo "bootstrap: package-lock.json does not match package.json: run \`npm install --package-lock-only\` and commit package-lock.json" >&2
    fi
    rm -f "$ci_log"
    exit 1
  fi
  rm -f "$ci_log"
fi
