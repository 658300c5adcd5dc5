#!/bin/sh
# tests/lib/pg_server.sh: a throwaway PostgreSQL server for the tests (store, dedup, broker pair).
#   pg_server.sh start DIR [PORT]  initdb + pg_ctl in DIR (created, must be empty or absent);
#                                  prints the postgresql:// URL on stdout. The Unix socket
#                                  is in DIR; with PORT it also listens on 127.0.0.1:PORT.
#   pg_server.sh stop DIR          stops it (immediate) and removes DIR.
# Env: PG_LISTEN (with PORT: the address to listen on, default 127.0.0.1), PG_TRUST_NET (a
# CIDR whose hosts may connect without a password, e.g. a test's namespaces).
# PostgreSQL refuses to run as root: as root the server runs as `nobody` (runuser). Exit 77
# with the reason on stderr when no server can be started here (no binaries, no runuser).
set -eu
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }
bin=${PG_BIN:-}
if [ -z "$bin" ]; then
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bin=$d; done
fi
if [ -z "$bin" ] && command -v pg_ctl >/dev/null 2>&1; then bin=$(dirname "$(command -v pg_ctl)"); fi
[ -n "$bin" ] && [ -x "$bin/initdb" ] || {
    echo "skip: no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql" >&2
    exit 77
}
as() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
    command -v runuser >/dev/null 2>&1 || {
        echo "skip: running as root and runuser is missing (postgres refuses root)" >&2; exit 77; }
    as() { runuser -u nobody -- "$@"; }
fi
case $cmd in
start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown nobody "$dir"
    chmod 700 "$dir"
    as "$bin/initdb" -D "$dir/data" -U actorbus --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    listen="-c listen_addresses="
    [ -n "${3:-}" ] && listen="-c listen_addresses=${PG_LISTEN:-127.0.0.1} -p $3"
    if [ -n "${PG_TRUST_NET:-}" ]; then
        echo "host all all $PG_TRUST_NET trust" >>"$dir/data/pg_hba.conf"
    fi
    # fsync off: a test server, thrown away after the run.
    as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir $listen -c fsync=off -c max_connections=50" start >/dev/null || {
        cat "$dir/server.log" >&2; exit 1; }
    port=${3:-5432}
    echo "postgresql://actorbus@/postgres?host=$dir&port=$port"
    ;;
stop)
    [ -d "$dir/data" ] && as "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac
