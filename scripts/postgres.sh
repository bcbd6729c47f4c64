#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on a free loopback port: under target/postgres,
# or under /tmp when run as root (the cluster then belongs to another user).
# Idempotent: initdb only once, and a running cluster is reused.
#
#   eval "$(bash scripts/postgres.sh)"       start (if needed); prints
#                                            export PORTCULLIS_TEST_POSTGRES_URL=postgres://…
#   bash scripts/postgres.sh stop            stop it
#
# Needs Debian's postgresql (PORTCULLIS_SETUP_POSTGRES=1 bash scripts/setup.sh installs it).
# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user (or
# `nobody`) and runs as that user.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" = 0 ]; then
  # The cluster runs as another user, who must be able to reach its directory: keep it under
  # /tmp instead of changing permissions on the checkout's parent directories.
  dir="/tmp/portcullis-postgres-$(printf %s "$root" | sha256sum | cut -c1-12)"
else
  dir="$root/target/postgres"
fi
data="$dir/data"
say() { printf '[postgres] %s\n' "$*" >&2; }

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  say "PostgreSQL is not installed: run PORTCULLIS_SETUP_POSTGRES=1 bash scripts/setup.sh"
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

owner="$(id -un)"
if [ "$(id -u)" = 0 ]; then
  if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
fi

if [ "${1:-start}" = stop ]; then
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >&2 || true
  fi
  exit 0
fi

mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then
  chown "$owner" "$dir"
fi

if [ ! -f "$data/PG_VERSION" ]; then
  say "initdb $data (owner $owner)"
  as_owner "$bin/initdb" -D "$data" -U portcullis -A trust -E UTF8 --no-locale >/dev/null
fi

port_file="$dir/port"
running=0
if [ -f "$data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  running=1
fi

if [ "$running" = 0 ]; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  echo "$port" > "$port_file"
  mkdir -p "$dir/sock"
  [ "$(id -u)" = 0 ] && chown "$owner" "$dir/sock" "$port_file"
  say "starting on 127.0.0.1:$port"
  as_owner "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2
fi
port="$(cat "$port_file")"

# A freshly started cluster gets a fresh test database (tests leave one schema each behind).
if [ "$running" = 0 ]; then
  as_owner "$bin/dropdb" -h 127.0.0.1 -p "$port" -U portcullis --if-exists portcullis_test
fi

if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U portcullis -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'portcullis_test'" | grep -q 1; then
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U portcullis portcullis_test
fi

echo "export PORTCULLIS_TEST_POSTGRES_URL=postgres://portcullis@127.0.0.1:$port/portcullis_test"
