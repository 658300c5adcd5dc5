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

# Each failing test gets one more run (the integration tests start real processes on a
# shared machine, and a second failure is a real one), but a test that needed it is named:
# "FLAKY: name" lines and a summary, so flakes are seen and fixed rather than hidden.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
flaky_all=()
failed_all=()
run_suite() { # $1: build dir, $2: its name in the summary
    local dir=$1 what=$2 rc=0
    (cd "$dir" && ctest --output-on-failure -j"$jobs") || rc=$?
    local log="$dir/Testing/Temporary/LastTestsFailed.log"
    [ "$rc" = 0 ] && return 0
    [ -s "$log" ] || { failed_all+=("$what: ctest exit $rc"); return 0; }
    local names=() name
    while IFS=: read -r _ name; do names+=("$name"); done <"$log"
    for name in "${names[@]}"; do
        echo "== $what: running $name again =="
        if (cd "$dir" && ctest --output-on-failure -R "^${name}\$"); then
            echo "FLAKY: $name ($what)"
            flaky_all+=("$name ($what)")
        else
            failed_all+=("$name ($what)")
        fi
    done
}
echo "== ASan+UBSan build =="
run_suite build-asan asan
echo "== release build =="
run_suite build release
echo "== summary: ${#failed_all[@]} failed, ${#flaky_all[@]} flaky (passed on a second run) =="
for t in "${flaky_all[@]}"; do echo "FLAKY: $t"; done
for t in "${failed_all[@]}"; do echo "FAILED: $t"; done
[ "${#failed_all[@]}" = 0 ]

