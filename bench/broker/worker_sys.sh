#!/bin/sh
# bench/broker/worker_sys.sh: a worker's system calls per echo query, by call. Runs
# actor-broker and one actor-worker (perf stat attached during the load, every
# syscalls:sys_enter_* tracepoint, all threads) twice, with N1 and N2 queries from loadgen (INFLIGHT in flight, default 128),
# and prints (count(N2) - count(N1)) / (N2 - N1) per system call: start, stop and idle cancel
# out. Unlike worker_cg.sh this depends on the load (how many messages one wakeup finds), so
# run it on a quiet machine and compare runs made alike.
# Usage: bench/broker/worker_sys.sh [BUILD_DIR] [N1] [N2]  (defaults: build 5000 25000)
set -eu
cd "$(dirname "$0")/../.."
B=${1:-build}
N1=${2:-5000}
N2=${3:-25000}
INFLIGHT=${INFLIGHT:-128}
T=$(mktemp -d)
. bench/broker/cg_lib.sh
one() {
    set -- "$1" $(free_ports 4)
    $B/broker/actor-broker --clients "tcp://127.0.0.1:$2" --workers "tcp://127.0.0.1:$3" \
        --pub "tcp://127.0.0.1:$4" --sub "tcp://127.0.0.1:$5" 2>"$T/broker.log" &
    bp=$!
    $B/worker/actor-worker --broker "tcp://127.0.0.1:$3" --capacity 64 --name sys \
        2>"$T/worker.$1.log" &
    wp=$!
    wait_for "$T/broker.log" worker_ready # the broker has the worker
    # Attached for the load only; SIGINT makes perf write its counts and detach.
    perf stat -x, -o "$T/st.$1" -e 'syscalls:sys_enter_*' -p $wp 2>/dev/null &
    pp=$!
    sleep 0.5
    $B/bench/broker/loadgen --endpoint "tcp://127.0.0.1:$2" --mode broker \
        --inflight "$INFLIGHT" --count "$1" --seconds 120 --warmup 0 >"$T/lg.$1"
    kill -INT $pp; wait $pp || true
    kill -TERM $wp; wait $wp || true
    kill -TERM $bp; wait $bp || true
}
one "$N1"
one "$N2"
awk -F, -v n="$((N2 - N1))" '
    FNR == NR && $3 ~ /sys_enter/ { a[$3] = $1; next }
    $3 ~ /sys_enter/ { d = ($1 - a[$3]) / n; sub(/syscalls:sys_enter_/, "", $3);
                       if (d > 0.005) printf "%8.3f %s\n", d, $3; t += d }
    END { printf "%8.3f total\n", t }' "$T/st.$N1" "$T/st.$N2" | sort -rn
if [ -n "${KEEP:-}" ]; then echo "kept: $T"; else rm -rf "$T"; fi
