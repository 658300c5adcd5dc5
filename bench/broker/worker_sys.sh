#!/bin/sh
# bench/broker/worker_sys.sh: system calls per echo query, by call, of one process: a worker
# (default), the broker (TARGET=broker) or the raw zmq_proxy (TARGET=raw, with 2 rawecho: the
# limit to compare the broker with). Runs actor-broker and actor-worker (one; TARGET=broker: two,
# as broker_cg.sh) with perf stat attached to the target during the load (every
# syscalls:sys_enter_* tracepoint, all its threads: the broker's loop and libzmq's I/O thread),
# twice, with N1 and N2 queries from loadgen (INFLIGHT in flight, default 128), and prints
# (count(N2) - count(N1)) / (N2 - N1) per system call: start, stop and idle cancel out. futex
# counts the contended locks (glibc's malloc arenas among them). Unlike the callgrind scripts
# this depends on the load (how many messages one wakeup finds), so run it on a quiet machine
# and compare runs made alike.
# Usage: [TARGET=worker|broker|raw] bench/broker/worker_sys.sh [BUILD_DIR] [N1] [N2]
#        (defaults: build 20000 100000: a shorter run can end before perf has attached)
set -eu
cd "$(dirname "$0")/../.."
B=${1:-build}
N1=${2:-20000}
N2=${3:-100000}
INFLIGHT=${INFLIGHT:-128}
TARGET=${TARGET:-worker}
T=$(mktemp -d)
. bench/broker/cg_lib.sh
start_ours() { # $1 N, $2.. ports; sets bp, wps, tp
    $B/broker/actor-broker --clients "tcp://127.0.0.1:$2" --workers "tcp://127.0.0.1:$3" \
        --pub "tcp://127.0.0.1:$4" --sub "tcp://127.0.0.1:$5" 2>"$T/broker.$1.log" &
    bp=$!
    $B/worker/actor-worker --broker "tcp://127.0.0.1:$3" --capacity 64 --name sys1 \
        2>"$T/worker.$1.log" &
    wps=$!
    tp=$wps
    if [ "$TARGET" = broker ]; then
        tp=$bp
        $B/worker/actor-worker --broker "tcp://127.0.0.1:$3" --capacity 64 --name sys2 \
            2>/dev/null &
        wps="$wps $!"
        wait_for "$T/broker.$1.log" 'worker_ready.*sys2'
    fi
    wait_for "$T/broker.$1.log" 'worker_ready.*sys1' # the broker has the worker
    lgmode=broker
}
start_raw() {
    $B/bench/broker/rawproxy reqrep "tcp://127.0.0.1:$2" "tcp://127.0.0.1:$3" >/dev/null \
        2>&1 &
    bp=$!
    tp=$bp
    sleep 0.5
    $B/bench/broker/rawecho "tcp://127.0.0.1:$3" >/dev/null 2>&1 &
    wps=$!
    $B/bench/broker/rawecho "tcp://127.0.0.1:$3" >/dev/null 2>&1 &
    wps="$wps $!"
    sleep 1
    lgmode=echo
}
one() {
    set -- "$1" $(free_ports 4)
    if [ "$TARGET" = raw ]; then start_raw "$@"; else start_ours "$@"; fi
    # Attached for the load only; SIGINT makes perf write its counts and detach.
    perf stat -x, -o "$T/st.$1" -e 'syscalls:sys_enter_*' -p $tp 2>/dev/null &
    pp=$!
    sleep 0.5
    $B/bench/broker/loadgen --endpoint "tcp://127.0.0.1:$2" --mode $lgmode \
        --inflight "$INFLIGHT" --count "$1" --seconds 120 --warmup 0 >"$T/lg.$1"
    kill -INT $pp; wait $pp || true
    for p in $wps; do kill -TERM "$p"; wait "$p" 2>/dev/null || true; done
    kill -TERM $bp; wait $bp 2>/dev/null || true
}
echo "target: $TARGET  load: $(cut -d' ' -f1-3 /proc/loadavg)"
one "$N1"
one "$N2"
# A run that ended before perf attached has no counts: say so instead of a wrong difference.
if grep -q "not counted" "$T/st.$N1" "$T/st.$N2"; then
    echo "worker_sys.sh: a run ended before perf attached: give more queries" >&2
    exit 1
fi
awk -F, -v n="$((N2 - N1))" '
    FNR == NR && $3 ~ /sys_enter/ { a[$3] = $1; next }
    $3 ~ /sys_enter/ { d = ($1 - a[$3]) / n; sub(/syscalls:sys_enter_/, "", $3);
                       if (d > 0.005 || $3 ~ /futex/) printf "%8.3f %s\n", d, $3; t += d }
    END { printf "%8.3f total\n", t }' "$T/st.$N1" "$T/st.$N2" | sort -rn
if [ -n "${KEEP:-}" ]; then echo "kept: $T"; else rm -rf "$T"; fi
