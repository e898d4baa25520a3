#!/usr/bin/env bash
# The test suite's private PostgreSQL: a cluster under .postgres/test (or
# .postgres/test-PORT), listening on 127.0.0.1:PORT (WABRIDGE_TEST_POSTGRES_PORT,
# default 5432) and on a socket in its own folder, owned by the `postgres` user
# (initdb refuses root). Tests connect as role `wabridge` over TCP and create
# one database each.
#   scripts/test-postgres.sh start   start it (idempotent) and print its env
#   scripts/test-postgres.sh stop    stop it
#   scripts/test-postgres.sh env     print the env the tests read
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PORT="${WABRIDGE_TEST_POSTGRES_PORT:-5432}"
if [ "$PORT" = 5432 ]; then DIR="$ROOT/.postgres/test"; else DIR="$ROOT/.postgres/test-$PORT"; fi
PG_BIN="${WABRIDGE_POSTGRES_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
ROLE=wabridge
PASSWORD=wabridge-test

# Runs a command as the cluster's owner (root may not run postgres itself).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

print_env() {
  echo "export WABRIDGE_TEST_DATABASE_URL=\"postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/postgres\""
}

case "${1:-start}" in
  start)
    [ -x "$PG_BIN/initdb" ] || { APT_PACKAGES=(postgresql); ensure_apt_packages; PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"; }
    mkdir -p "$DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
    chmod 0700 "$DIR"
    if [ ! -f "$DIR/data/PG_VERSION" ]; then
      log "initdb $DIR/data"
      as_owner "$PG_BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
    fi
    if ! as_owner "$PG_BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
      rm -f "$DIR/data/postmaster.pid"
      as_owner "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" \
        -o "-k $DIR -c listen_addresses=127.0.0.1 -p $PORT" -w start >/dev/null
    fi
    # A login role that may create the tests' databases, with a password for TCP.
    as_owner "$PG_BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END \$\$;
SQL
    print_env
    ;;
  stop)
    if [ -f "$DIR/data/PG_VERSION" ]; then
      as_owner "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
