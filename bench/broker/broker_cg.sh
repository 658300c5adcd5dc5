#!/bin/sh
# bench/broker/broker_cg.sh: the broker's user-space instructions per echo query, independent of
# the machine's load (the twin of worker_cg.sh). Runs actor-broker (under callgrind) and two
# actor-worker --capacity 64 twice, with N1 and N2 queries from loadgen (INFLIGHT in flight,
# default 128 as in run.py), and prints (Ir(N2) - Ir(N1)) / (N2 - N1): start, stop and idle
# cost cancel out. Both broker threads count (loop and libzmq's I/O). With FUNCS=N it also
# prints the N functions with the largest inclusive cost per query (callgrind_annotate
# --inclusive=yes of each run, differenced the same way), self cost beside it.
# MODE=bus measures the bus instead: instructions per published message through PUB ->
# --sub -> --pub -> 4 SUB (bench/broker/pubsub, 64-byte messages), for actor-broker or, with
# SYSTEM=raw, for rawproxy pubsub (zmq_proxy XSUB -> XPUB), the same way. SYSTEM=raw without
# MODE=bus: rawproxy reqrep with 2 rawecho, per echo query (the limit to compare with).
# Usage: bench/broker/broker_cg.sh [BUILD_DIR] [N1] [N2]  (defaults: build 5000 25000)
# KEEP=1 keeps the callgrind files.
set -eu
cd "$(dirname "$0")/../.."
B=${1:-build}
N1=${2:-5000}
N2=${3:-25000}
INFLIGHT=${INFLIGHT:-128}
MODE=${MODE:-query}
SYSTEM=${SYSTEM:-ours}
T=$(mktemp -d)
. bench/broker/cg_lib.sh
one_bus() {
    set -- "$1" $(free_ports 4)
    if [ "$SYSTEM" = raw ]; then
        valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$T/cg.$1" \
            $B/bench/broker/rawproxy pubsub "tcp://127.0.0.1:$5" "tcp://127.0.0.1:$4" \
            >/dev/null 2>"$T/broker.$1.log" &
    else
        valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$T/cg.$1" \
            $B/broker/actor-broker --clients "tcp://127.0.0.1:$2" \
            --workers "tcp://127.0.0.1:$3" --pub "tcp://127.0.0.1:$4" \
            --sub "tcp://127.0.0.1:$5" 2>"$T/broker.$1.log" &
    fi
    bp=$!
    sleep 3
    $B/bench/broker/pubsub --pub "tcp://127.0.0.1:$5" --sub "tcp://127.0.0.1:$4" \
        --count "$1" >"$T/ps.$1"
    kill -TERM $bp; wait $bp || true
    cg_total "$T/cg.$1"
}
one() {
    if [ "$MODE" = bus ]; then one_bus "$1"; return; fi
    set -- "$1" $(free_ports 4)
    if [ "$SYSTEM" = raw ]; then
        valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$T/cg.$1" \
            $B/bench/broker/rawproxy reqrep "tcp://127.0.0.1:$2" "tcp://127.0.0.1:$3" \
            >/dev/null 2>"$T/broker.$1.log" &
        bp=$!
        sleep 3
        $B/bench/broker/rawecho "tcp://127.0.0.1:$3" >/dev/null 2>&1 &
        w1=$!
        $B/bench/broker/rawecho "tcp://127.0.0.1:$3" >/dev/null 2>&1 &
        w2=$!
        lgmode=echo
    else
        valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$T/cg.$1" \
            $B/broker/actor-broker --clients "tcp://127.0.0.1:$2" \
            --workers "tcp://127.0.0.1:$3" --pub "tcp://127.0.0.1:$4" \
            --sub "tcp://127.0.0.1:$5" 2>"$T/broker.$1.log" &
        bp=$!
        sleep 3
        $B/worker/actor-worker --broker "tcp://127.0.0.1:$3" --capacity 64 --name cg1 \
            2>/dev/null &
        w1=$!
        $B/worker/actor-worker --broker "tcp://127.0.0.1:$3" --capacity 64 --name cg2 \
            2>/dev/null &
        w2=$!
        lgmode=broker
    fi
    sleep 2
    $B/bench/broker/loadgen --endpoint "tcp://127.0.0.1:$2" --mode $lgmode \
        --inflight "$INFLIGHT" --count "$1" --seconds 300 --warmup 0 >"$T/lg.$1"
    kill -TERM $w1 $w2; wait $w1 2>/dev/null || true; wait $w2 2>/dev/null || true
    kill -TERM $bp; wait $bp || true
    cg_total "$T/cg.$1"
}
a=$(one "$N1")
b=$(one "$N2")
echo "Ir $N1: $a  Ir $N2: $b  per $([ "$MODE" = bus ] && echo message || echo query): $(( (b - a) / (N2 - N1) ))"
cg_funcs "$N1" "$N2"
if [ -n "${KEEP:-}" ]; then echo "kept: $T"; else rm -rf "$T"; fi
