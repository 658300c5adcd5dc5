#!/bin/sh
# bench/broker/worker_cg.sh: a worker's user-space instructions per echo query, independent of
# the machine's load. Runs actor-broker and one actor-worker (under callgrind) twice, with N1
# and N2 queries from loadgen (32 in flight), and prints (Ir(N2) - Ir(N1)) / (N2 - N1): start,
# stop and idle cost cancel out. All the worker's threads count (loop and libzmq's I/O).
# With FUNCS=N it also prints the N functions with the largest inclusive cost per query, as
# broker_cg.sh does. KEEP=1 keeps the callgrind files.
# Usage: bench/broker/worker_cg.sh [BUILD_DIR] [N1] [N2]  (defaults: build 3000 15000)
set -eu
cd "$(dirname "$0")/../.."
B=${1:-build}
N1=${2:-3000}
N2=${3:-15000}
T=$(mktemp -d)
. bench/broker/cg_lib.sh
one() {
    set -- "$1" $(free_ports 4)
    # Its own bus ports too: another broker on this machine may hold the defaults.
    $B/broker/actor-broker --clients "tcp://127.0.0.1:$2" --workers "tcp://127.0.0.1:$3" \
        --pub "tcp://127.0.0.1:$4" --sub "tcp://127.0.0.1:$5" \
        >/dev/null 2>"$T/broker.log" &
    bp=$!
    valgrind --tool=callgrind --callgrind-out-file="$T/cg.$1" \
        $B/worker/actor-worker --broker "tcp://127.0.0.1:$3" --capacity 64 --name cg \
        >/dev/null 2>"$T/worker.$1.log" &
    wp=$!
    wait_for "$T/broker.log" worker_ready # the broker has the worker
    if ! $B/bench/broker/loadgen --endpoint "tcp://127.0.0.1:$2" --mode broker --inflight 32 \
        --count "$1" --seconds 120 --warmup 0 >"$T/lg.$1"; then
        kill -TERM $wp $bp; wait $wp $bp || true
        echo "loadgen failed: logs kept in $T" >&2
        exit 1
    fi
    kill -TERM $wp; wait $wp || true
    kill -TERM $bp; wait $bp || true
    cg_total "$T/cg.$1"
}
a=$(one "$N1")
b=$(one "$N2")
echo "Ir $N1: $a  Ir $N2: $b  per query: $(( (b - a) / (N2 - N1) ))"
cg_funcs "$N1" "$N2"
if [ -n "${KEEP:-}" ]; then echo "kept: $T"; else rm -rf "$T"; fi
