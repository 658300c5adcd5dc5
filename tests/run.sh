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

# libactor on aarch64: a cross build of the library and its unit tests, run under qemu-user,
# so the aarch64 context switch (libactor/src/fiber_aarch64.S) is tested on every run. Only
# libactor's own tests (a minute or two). Missing cross tools or arm64 packages are installed
# when possible; when they cannot be, the step says why and is skipped, never failing CI.
aarch64_skip() { echo "== aarch64 (qemu): skipped: $* =="; }
aarch64_install() {
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    local p ok=1
    for p in libuv1-dev:arm64 libcmocka-dev:arm64; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || ok=0
    done
    command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null &&
        [ $ok = 1 ] && return 0
    echo "installing: gcc-aarch64-linux-gnu qemu-user libuv1-dev:arm64 libcmocka-dev:arm64"
    $sudo dpkg --add-architecture arm64 &&
        $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libuv1-dev:arm64 \
            libcmocka-dev:arm64 >/dev/null
}
aarch64_tests() {
    # test_thread and test_loop need threads, which this qemu-user runs only when the probe
    # below passes; test_zsock needs ZeroMQ; test_scale is a million tasks (slow under qemu).
    local tests="fiber task cancel sync queue choose compose time resilience chan debug log bus"
    local threaded="thread loop" out=build-aarch64 cc=aarch64-linux-gnu-gcc
    local flags="-std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Ilibactor/include
                 -Ilibactor/src -Ibase/include -Itests/lib"
    local qemu="qemu-aarch64 -L /usr/aarch64-linux-gnu"
    rm -rf "$out" && mkdir -p "$out/obj"
    # libactor stands on base (its logger and deadline heap); base's connect.c needs
    # ZeroMQ, which this cross build does not have.
    for f in libactor/src/*.c libactor/src/*.S base/src/*.c; do
        case "$(basename "$f")" in zsock.c|connect.c) continue ;; esac
        $cc $flags -c "$f" -o "$out/obj/$(basename "$f").o" || return 1
    done
    aarch64-linux-gnu-ar rcs "$out/libactor.a" "$out"/obj/*.o || return 1
    printf '#include <pthread.h>\nstatic void *f(void *a) { return a; }\nint main(void) {
        pthread_t t; return pthread_create(&t, 0, f, 0) || pthread_join(t, 0); }\n' \
        > "$out/probe.c"
    $cc "$out/probe.c" -lpthread -o "$out/probe" || return 1
    if timeout 20 $qemu "$out/probe"; then
        tests="$tests $threaded"
    else
        echo "== aarch64 (qemu): skipped test_thread, test_loop: this qemu-user hangs on threads =="
    fi
    local failed=0
    for t in $tests; do
        $cc $flags "tests/libactor/test_$t.c" tests/lib/harness.c "$out/libactor.a" -luv -lcmocka \
            -lpthread -o "$out/test_$t" || return 1
        if ACTOR_UNDER_QEMU=1 CMOCKA_MESSAGE_OUTPUT=stdout timeout 300 $qemu "$out/test_$t" \
            > "$out/test_$t.log" 2>&1; then
            echo "aarch64 test_$t: ok"
        else
            echo "aarch64 test_$t: FAILED"; cat "$out/test_$t.log"; failed=1
        fi
    done
    return $failed
}
if [ "$(uname -m)" = aarch64 ]; then
    aarch64_skip "native aarch64: the builds above already test fiber_aarch64.S"
elif ! aarch64_install; then
    aarch64_skip "cannot install the cross tools or arm64 packages (offline or no arm64 mirror)"
elif ! aarch64-linux-gnu-gcc --version >/dev/null 2>&1; then
    aarch64_skip "aarch64-linux-gnu-gcc missing"
else
    echo "== aarch64 (qemu): libactor unit tests =="
    aarch64_tests
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

