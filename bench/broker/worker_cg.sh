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
one() {
    set -- "$1" $(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
    # Its own bus ports too: another broker on this machine may hold the defaults.
    $B/broker/actor-broker --clients "tcp://127.0.0.1:$2" --workers "tcp://127.0.0.1:$3" \
        --pub "tcp://127.0.0.1:$4" --sub "tcp://127.0.0.1:$5" \
        >/dev/null 2>"$T/broker.log" &
    bp=$!
    valgrind --tool=callgrind --callgrind-out-file="$T/cg.$1" \
        $B/worker/actor-worker --broker "tcp://127.0.0.1:$3" --capacity 64 --name cg \
        >/dev/null 2>"$T/worker.$1.log" &
    wp=$!
    # Until the broker has the worker (valgrind starts slowly on a busy machine), 30 s at most.
    i=0
    until grep -q worker_ready "$T/broker.log" || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
    if ! $B/bench/broker/loadgen --endpoint "tcp://127.0.0.1:$2" --mode broker --inflight 32 \
        --count "$1" --seconds 120 --warmup 0 >"$T/lg.$1"; then
        kill -TERM $wp $bp; wait $wp $bp || true
        echo "loadgen failed: logs kept in $T" >&2
        exit 1
    fi
    kill -TERM $wp; wait $wp || true
    kill -TERM $bp; wait $bp || true
    grep -h '^totals:\|^summary:' "$T/cg.$1" | head -1 | awk '{print $2}'
}
a=$(one "$N1")
b=$(one "$N2")
echo "Ir $N1: $a  Ir $N2: $b  per query: $(( (b - a) / (N2 - N1) ))"
if [ -n "${FUNCS:-}" ]; then
    for n in "$N1" "$N2"; do
        callgrind_annotate --inclusive=yes --threshold=100 "$T/cg.$n" >"$T/inc.$n" 2>/dev/null
        callgrind_annotate --threshold=100 "$T/cg.$n" >"$T/self.$n" 2>/dev/null
    done
    /usr/bin/python3 - "$T" "$N1" "$N2" "$FUNCS" <<'PY'
import re, sys
t, n1, n2, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
line = re.compile(r'^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)(?:\s+\[[^\]]*\])?\s*$')
def load(path, agg):
    out = {}
    for l in open(path, errors='replace'):
        m = line.match(l)
        if not m or '=>' in l or ':' not in m.group(2):
            continue
        # callgrind names a function once by its relative and once by its absolute file
        k = m.group(2).rsplit('/', 1)[-1]
        out[k] = agg(out.get(k, 0), int(m.group(1).replace(',', '')))
    return out
inc = [load(f'{t}/inc.{n}', max) for n in (n1, n2)]
slf = [load(f'{t}/self.{n}', lambda a, b: a + b) for n in (n1, n2)]
d = n2 - n1
rows = [((inc[1].get(k, 0) - inc[0].get(k, 0)) / d, k) for k in inc[1]]
print(f"{'incl/q':>9} {'self/q':>9}  function")
for v, k in sorted(rows, reverse=True)[:top]:
    s = (slf[1].get(k, 0) - slf[0].get(k, 0)) / d
    print(f"{v:9.0f} {s:9.0f}  {k}")
PY
fi
if [ -n "${KEEP:-}" ]; then echo "kept: $T"; else rm -rf "$T"; fi
