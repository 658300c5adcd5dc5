#!/usr/bin/env bash
# tests/run.sh: the whole test suite. Installs missing packages, builds twice (plain and
# ASan+UBSan), fuzzes the proto codec for a bounded time in a third (clang, libFuzzer) build,
# then runs every test in both builds, ending with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/packages.sh
actor_install_packages

jobs=$(nproc)
cmake -S . -B build-asan -DACTOR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DACTOR_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

# Fuzz the codec for a bounded time (ACTOR_FUZZ_SECONDS, default 20) on a copy of the seed
# corpus; any crash, sanitizer report, leak, timeout or out-of-memory fails the script.
echo "== fuzz: proto_decode =="
CC=clang cmake -S . -B build-fuzz -DACTOR_FUZZ=ON -DACTOR_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_decode
rm -rf build-fuzz/corpus-decode
cp -r tests/fuzz/corpus/decode build-fuzz/corpus-decode
build-fuzz/tests/fuzz/fuzz_decode -max_total_time="${ACTOR_FUZZ_SECONDS:-20}" -max_len=4096 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ build-fuzz/corpus-decode

# The compatibility test against llama.cpp's llama-server (tests/compat, ctest compat_llama)
# runs when its cache exists and reports skipped otherwise; ACTOR_LLAMA=1 makes the cache
# first (20+ minutes the first time, nothing after).
if [ "${ACTOR_LLAMA:-0}" = 1 ]; then
    tests/compat/make_llama_cache.sh
fi

# Each failing test gets one more run: the integration tests start real processes on a
# shared 2-core machine, and a second failure is a real one.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== ASan+UBSan build =="
(cd build-asan && ctest --output-on-failure -j"$jobs" --repeat until-pass:2)
echo "== release build =="
(cd build && ctest --output-on-failure -j"$jobs" --repeat until-pass:2)

