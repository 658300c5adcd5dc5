#!/bin/sh
# bench/curve/run.sh: what CURVE encryption costs actor-broker. Builds Release in
# build-bench/, then runs bench/curve/run.py: echo throughput and round-trip p50/p99,
# plaintext and CURVE in the same run, printing a ratio table (also written to
# bench/out/curve-<date>.md). Extra arguments go to run.py (--quick, --rounds N, --seconds S,
# --inflight N).
set -eu
cd "$(dirname "$0")/../.."
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DACTOR_BENCH=ON >/dev/null
cmake --build build-bench -j2 --target actor-broker actor-worker bench_curveload >/dev/null
exec /usr/bin/python3 bench/curve/run.py --broker build-bench/broker/actor-broker \
    --worker build-bench/worker/actor-worker --load build-bench/bench/curve/curveload \
    --out "bench/out/curve-$(date +%Y%m%d-%H%M%S).md" "$@"
