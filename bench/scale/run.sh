#!/bin/sh
# bench/scale/run.sh: the scaling benchmark. Builds Release in build-bench/ and runs
# bench/scale/run.py (1, 2, 4, 8 workers of capacity 16; 10 ms sleep queries), printing the
# ratio table and writing it to bench/out/scale-<date>.md. Extra arguments go to run.py
# (--workers 1,2 --seconds N --ms N --capacity N).
set -eu
cd "$(dirname "$0")/../.."
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DACTOR_BENCH=ON >/dev/null
cmake --build build-bench -j2 --target actor-broker actor-worker bench_scaledrive >/dev/null
exec /usr/bin/python3 bench/scale/run.py --broker build-bench/broker/actor-broker \
    --worker build-bench/worker/actor-worker --drive build-bench/bench/scale/scaledrive \
    --out "bench/out/scale-$(date +%Y%m%d-%H%M%S).md" "$@"
