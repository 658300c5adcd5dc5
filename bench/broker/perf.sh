#!/bin/sh
# bench/broker/perf.sh: where the broker's CPU goes under bench/broker's echo load. Starts
# actor-broker and 2 actor-worker (capacity 64) from build-bench/ on free loopback ports, drives
# them with loadgen (128 in flight), records the broker with `perf record -g` for 2 s, and
# prints the samples grouped by thread and by what they were doing (perf_groups.py: kernel time
# is charged to the syscall that entered it). Needs perf and a built build-bench/
# (bench/broker/run.sh builds it). Usage: bench/broker/perf.sh [OUT_PREFIX] (default /tmp/brkperf)
set -eu
cd "$(dirname "$0")/../.."
B=build-bench
O=${1:-/tmp/brkperf}
set -- $(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
ep() { echo "tcp://127.0.0.1:$1"; }
$B/broker/actor-broker --clients "$(ep "$1")" --workers "$(ep "$2")" --pub "$(ep "$3")" \
    --sub "$(ep "$4")" 2>"$O.broker.log" &
BP=$!
$B/worker/actor-worker --broker "$(ep "$2")" --capacity 64 --name w1 2>/dev/null &
W1=$!
$B/worker/actor-worker --broker "$(ep "$2")" --capacity 64 --name w2 2>/dev/null &
W2=$!
trap 'kill $BP $W1 $W2 2>/dev/null || true' EXIT
sleep 1
(sleep 0.5; echo go) | $B/bench/broker/loadgen --endpoint "$(ep "$1")" --mode broker \
    --inflight 128 --count 100000 --seconds 10 --warmup 2000 --sync >"$O.loadgen.json" &
LG=$!
sleep 0.3
perf record -g -o "$O.perf.data" -p $BP -- sleep 2 2>/dev/null
wait $LG
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)  loadgen: $(tail -1 "$O.loadgen.json")"
perf script -i "$O.perf.data" 2>/dev/null >"$O.script"
/usr/bin/python3 bench/broker/perf_groups.py "$O.script"
