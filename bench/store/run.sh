#!/bin/sh
# bench/store/run.sh: the session store, SQLite against PostgreSQL, in one run.
#   1. storebench: what one store call costs (create, append, get, list), p50/p99 in us.
#   2. broker echo throughput with each store behind it: loadgen keeps 64 echo queries in
#      flight from a client with an explicit routing id, so the broker writes each answer to
#      the store's dedup table (and marks each non-idempotent query running there first).
# The memory row is the baseline: no store, an anonymous client (nothing remembered).
# PostgreSQL is a throwaway server (tests/lib/pg_server.sh) on a Unix socket, fsync off.
#   bench/store/run.sh [BUILD_DIR] [SECONDS]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
secs=${2:-5}
tmp=$(mktemp -d /tmp/storebench.XXXXXX)
chmod 755 "$tmp" # the server runs as nobody when this runs as root
pgdir=$tmp/pg
url=$("$root/tests/lib/pg_server.sh" start "$pgdir")
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    "$root/tests/lib/pg_server.sh" stop "$pgdir"
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
echo "# store calls (storebench)"
"$build/bench/storebench" "$tmp/bench.db" "$url" 2000
echo "# broker echo throughput, loadgen --inflight 64 --routing-id, ${secs} s each"
port=7400
for store in memory sqlite postgresql; do
    rid="--routing-id bench-$store"
    case $store in
    memory) sessions=:memory: rid="" ;; # the baseline: no store, no dedup
    sqlite) sessions=$tmp/echo.db ;;
    postgresql) sessions=$url ;;
    esac
    c=tcp://127.0.0.1:$((port + 1)); w=tcp://127.0.0.1:$((port + 2))
    "$build/broker/actor-broker" --clients "$c" --workers "$w" --pub tcp://127.0.0.1:$((port + 3)) \
        --sub tcp://127.0.0.1:$((port + 4)) --sessions "$sessions" --log-level warn &
    pids="$pids $!"
    sleep 0.5
    "$build/worker/actor-worker" --broker "$w" --capacity 64 --log-level warn &
    pids="$pids $!"
    sleep 1
    printf '{"store":"%s",' "$store"
    # shellcheck disable=SC2086
    "$build/bench/broker/loadgen" --endpoint "$c" --inflight 64 --seconds "$secs" $rid |
        sed 's/^{//'
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=""
    port=$((port + 10))
done
