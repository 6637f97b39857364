#!/usr/bin/env bash
# PostgreSQL for the test suite, in a private throw-away cluster.
#
#   source scripts/services.sh; start_postgres DIR   # exports LOBSTER_TEST_POSTGRES_URL
#   stop_postgres DIR
#
# PostgreSQL refuses to run as root: as root the cluster runs as the
# `postgres` user (created by Debian's postgresql package).

pg_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
  else
    # shellcheck disable=SC2012 # version directories: plain names, sorted by version
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local dir="$1" bin port
  bin="$(pg_bindir)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "PostgreSQL server binaries not found: apt-get install postgresql" >&2; return 1
  fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2; return 1; }
  port="$(free_port)"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400" start >/dev/null || {
    cat "$dir/postgres.log" >&2; return 1; }
  export LOBSTER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL for tests: $LOBSTER_TEST_POSTGRES_URL (data in $dir)" >&2
}

stop_postgres() {
  local dir="$1"
  if [ -d "$dir/data" ]; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
}
