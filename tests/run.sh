#!/usr/bin/env bash
# tests/run.sh: the whole test suite. Installs missing packages, builds twice (plain and
# ASan+UBSan), runs every test in both builds, and ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/packages.sh
actor_install_packages

jobs=$(nproc)
cmake -S . -B build-asan -DACTOR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DACTOR_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== ASan+UBSan build =="
(cd build-asan && ctest --output-on-failure -j"$jobs")
echo "== release build =="
(cd build && ctest --output-on-failure -j"$jobs")
