#!/usr/bin/env bash
# A throw-away PostgreSQL server for the test suite (make test starts and stops it).
#   tests/postgres.sh start DIR   -> prints the SQLAlchemy URL of an empty database
#   tests/postgres.sh stop DIR
set -euo pipefail
cmd=$1
dir=$2
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
case "$cmd" in
start)
  if [ -z "$(pg_bin)" ]; then
    echo "installing Debian's postgresql for the state-database tests" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  bin=$(pg_bin)
  rm -rf "$dir" && mkdir -p "$dir" && chmod 777 "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  run "'$bin/initdb' -D '$dir/data' -A trust -U postgres" >/dev/null
  run "'$bin/pg_ctl' -D '$dir/data' -l '$dir/log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off\" start" >/dev/null
  echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  bin=$(pg_bin)
  [ -d "$dir/data" ] || exit 0
  run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  run "'$bin/pg_ctl' -D '$dir/data' -m fast stop" >/dev/null || true
  rm -rf "$dir"
  ;;
esac
