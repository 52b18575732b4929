#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster, then removes the cluster.
#
#   scripts/pg-test.sh CMD [ARGS...]
#
# initdb into a temp dir, pg_ctl start on a free loopback port (trust authentication,
# socket in the temp dir), CMD runs with
#   SLUICE_TEST_PG_URL   postgres://USER@127.0.0.1:PORT/   (append a database name)
#   SLUICE_TEST_PG_BIN   the server's bin directory (createdb, psql, pg_ctl)
#   SLUICE_TEST_PG_DATA  the data directory (for pg_ctl restart tests)
#   SLUICE_TEST_PG_RUN   a command prefix that runs a program as the cluster's owner
# and the cluster is stopped and removed whatever CMD's outcome; exits with CMD's
# status. initdb refuses to run as root, so as root (CI) the cluster belongs to the
# unprivileged `postgres` user of Debian's package (created when missing).
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "pg-test: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi

run=()
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
  run=(runuser -u "$owner" --)
fi

dir=$(mktemp -d /tmp/sluice-pg-XXXXXX)
chmod 755 "$dir"
[ ${#run[@]} -gt 0 ] && chown "$owner" "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
  "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

(cd /tmp && "${run[@]}" "$bindir/initdb" -D "$dir/data" -U "$owner" --auth=trust -E UTF8 \
  --locale=C >"$dir/initdb.log" 2>&1) || { cat "$dir/initdb.log" >&2; exit 1; }
# Durability is not what these tests measure: fsync off keeps them fast on shared disks
# (a `pg_ctl restart -m immediate` still recovers from the WAL in the page cache).
(cd /tmp && "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 \
      -c fsync=off -c full_page_writes=off -c shared_buffers=128MB ${SLUICE_TEST_PG_OPTS:-}" start >/dev/null) \
  || { cat "$dir/server.log" >&2; exit 1; }

export SLUICE_TEST_PG_URL="postgres://$owner@127.0.0.1:$port/"
export SLUICE_TEST_PG_BIN="$bindir"
export SLUICE_TEST_PG_DATA="$dir/data"
export SLUICE_TEST_PG_RUN="${run[*]}"
set +e
"$@"
status=$?
set -e
exit $status
