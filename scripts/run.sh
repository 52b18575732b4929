#!/usr/bin/env bash
# `make run`: serves sluice on the embedded store (SQLite in ./data), after making
# sure a development API key exists and printing it with a first submit example.
set -euo pipefail
bin=${1:-build/rel/sluice}
store=${SLUICE_STORE:-sqlite:./data/sluice.db}
listen=${SLUICE_LISTEN:-127.0.0.1:8080}
mkdir -p -m 700 data
keyfile=data/dev.key
if [ ! -s "$keyfile" ] || ! "$bin" keys list --store "$store" 2>/dev/null | grep -q "$(cut -c1-12 "$keyfile")"; then
  (umask 077; "$bin" keys create --tenant dev --store "$store" 2>/dev/null > "$keyfile")
fi
key=$(cat "$keyfile")
cat <<TXT
sluice is starting on http://$listen (store: $store)

  API key (tenant "dev"):  $key
  Dashboard:               http://$listen/ui/

  Try it in another terminal:
    export SLUICE_URL=http://$listen SLUICE_KEY=$key
    python3 scripts/sample-items.py 20000 > /tmp/items.ndjson
    $bin submit /tmp/items.ndjson --workflow products.upsert --wait
    curl -s -H "Authorization: Bearer \$SLUICE_KEY" \$SLUICE_URL/v1/jobs | head -c 600; echo

TXT
exec "$bin" serve --listen "$listen" --store "$store"
