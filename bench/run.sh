#!/bin/sh
# bench/run.sh: builds libactor and bench_runtime in Release (build-bench/) and runs the
# runtime benchmark against asyncio and uvloop. Extra arguments go to run.py (--quick, --row).
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DACTOR_BENCH=ON >/dev/null
cmake --build build-bench -j2 --target bench_runtime >/dev/null
exec /usr/bin/python3 bench/runtime/run.py --bin build-bench/bench/bench_runtime "$@"
