#!/usr/bin/env bash
# Installs the Debian packages sluice needs to build, run and test, if missing.
# Usage: scripts/deps.sh [build|test|bench|bench-peers|format]   (test adds the test tools,
# bench wrk, bench-peers PostgreSQL and Node; format is clang-format alone, for make format / format-check)
# (`make test-deps` then runs `npm ci` in tests/ui for the dashboard test.)
set -euo pipefail
want=(gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
      libcurl4-openssl-dev libssl-dev libpq-dev zlib1g-dev liblz4-dev libcsv-dev curl)
if [ "${1:-build}" = bench ]; then
  want+=(python3 wrk postgresql)   # bench/load.py drives its load with wrk; PostgreSQL runs
fi
if [ "${1:-build}" = bench-peers ]; then
  want+=(python3 postgresql)       # graphile-worker's database and sluice's
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
fi
if [ "${1:-build}" = test ]; then
  want+=(python3 python3-pytest python3-requests python3-jsonschema clang libclang-rt-14-dev sqlite3
        postgresql    # the PostgreSQL half of make test (scripts/pg-test.sh)
        clang-format) # make format-check
  # the dashboard test (tests/ui): headless Chromium driven from Node; a Node from
  # elsewhere (nodesource, nvm) is fine, Debian's is the fallback. Node and npm also
  # run the OpenAPI validator (tests/openapi)
  want+=(chromium)
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
fi
if [ "${1:-build}" = format ]; then
  want=(clang-format)   # Debian's clang-format (14 on bookworm) reads .clang-format
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
