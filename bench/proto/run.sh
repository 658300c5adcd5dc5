#!/bin/sh
# bench/proto/run.sh: proto's codec alone, on the echo query's messages: decodes of query,
# work and result, encodes of work, result and the client's answer. Prints decodebench's ns
# per call (best of 5 runs), then the instructions per call under callgrind: the difference of an N1- and an N2-decode run over N2 - N1, so
# start-up and the warm-up decode cancel out (independent of the machine's load).
# Usage: bench/proto/run.sh [BUILD_DIR] [N1] [N2]  (defaults: build 1000 11000)
set -eu
cd "$(dirname "$0")/../.."
B=${1:-build}
N1=${2:-1000}
N2=${3:-11000}
P=$B/bench/decodebench
$P
T=$(mktemp -d)
for m in query work result enc_work enc_result enc_reply; do
    for n in "$N1" "$N2"; do
        valgrind --tool=callgrind --callgrind-out-file="$T/cg.$m.$n" $P --iters "$n" --msg "$m" \
            >/dev/null 2>&1
    done
    a=$(grep -h '^totals:\|^summary:' "$T/cg.$m.$N1" | head -1 | awk '{print $2}')
    b=$(grep -h '^totals:\|^summary:' "$T/cg.$m.$N2" | head -1 | awk '{print $2}')
    # each run decodes 5 times iters (best of 5) plus one check
    echo "$m: $(( (b - a) / ((N2 - N1) * 5) )) instructions per call (callgrind)"
done
rm -rf "$T"
