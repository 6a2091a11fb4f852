#!/usr/bin/env bash
# A throwaway PostgreSQL on loopback for demos and benchmarks (tests use tests/pg_fixture.h).
#   scripts/pg.sh start DIR   initdb (trust, user bg) + start on a free port; prints the URL
#   scripts/pg.sh stop DIR    pg_ctl stop, then deletes DIR
# Runs the server as the `postgres` user when invoked as root (PostgreSQL refuses root).
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
cmd=${1:?usage: pg.sh start|stop DIR}
dir=${2:?usage: pg.sh start|stop DIR}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $cmd in
  start)
    [ -x $bin/initdb ] || { echo "pg.sh: $bin/initdb missing (apt-get install postgresql)" >&2; exit 1; }
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg $bin/initdb -D "$dir/data" -A trust -U bg --no-sync -E UTF8 >"$dir/initdb.log" 2>&1
    as_pg $bin/pg_ctl start -w -t 60 -D "$dir/data" -l "$dir/server.log" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300" >/dev/null
    echo "postgresql://bg@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -d "$dir/data" ] && as_pg $bin/pg_ctl stop -w -t 60 -m fast -D "$dir/data" >/dev/null || true
    rm -rf "$dir"
    ;;
  *) echo "usage: pg.sh start|stop DIR" >&2; exit 2 ;;
esac
