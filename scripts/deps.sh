#!/usr/bin/env bash
# Installs the Debian packages sluice needs to build, run and test, if missing.
# Usage: scripts/deps.sh [build|test|bench]   (test adds the test tools, bench wrk)
set -euo pipefail
want=(gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
      libcurl4-openssl-dev libssl-dev curl)
if [ "${1:-build}" = bench ]; then
  want+=(python3 wrk)   # bench/load.py drives its load with wrk
fi
if [ "${1:-build}" = test ]; then
  want+=(python3 python3-pytest python3-requests python3-jsonschema clang libclang-rt-14-dev sqlite3)
  # node and npm run the OpenAPI validator (tests/openapi); a machine may have them
  # from another source than Debian's packages
  command -v npm >/dev/null 2>&1 || want+=(nodejs npm)
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
