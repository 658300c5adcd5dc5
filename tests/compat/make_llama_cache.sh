#!/usr/bin/env bash
# Build llama.cpp's llama-server (CPU only) into a cache outside the repo, for the
# compatibility test tests/compat/test_llama.py. Idempotent: every step is skipped when its
# result is already there, so a rerun after an interrupted build resumes it.
#
# The llama.cpp source comes from the npm package node-llama-cpp, which ships the exact tree
# it was released with as a git bundle (llama/gitRelease.bundle): no git host is needed.
#
# Usage: tests/compat/make_llama_cache.sh
# Environment:
#   ACTOR_CACHE         cache root (default $HOME/.cache/actorbus); the tree goes in
#                       $ACTOR_CACHE/llama
#   LLAMA_NPM_VERSION   node-llama-cpp version to take (default: pinned below)
#   LLAMA_JOBS          build parallelism (default 2)
# Result:
#   $ACTOR_CACHE/llama/src                      llama.cpp source (clone of the bundle)
#   $ACTOR_CACHE/llama/build/bin/llama-server   the server
#   $ACTOR_CACHE/llama/tiny-qwen-tools.gguf     the tiny model (make_tiny_model.py), and
#   $ACTOR_CACHE/llama/tiny-qwen-tools.json     its answers, read by the test
set -euo pipefail

CACHE_ROOT="${ACTOR_CACHE:-$HOME/.cache/actorbus}"
LLAMA_DIR="$CACHE_ROOT/llama"
NPM_VERSION="${LLAMA_NPM_VERSION:-3.22.1}"
JOBS="${LLAMA_JOBS:-2}"
HERE="$(cd "$(dirname "$0")" && pwd)"

say() { printf 'make_llama_cache: %s\n' "$*"; }

mkdir -p "$LLAMA_DIR"
say "cache: $LLAMA_DIR"

# 1. The source tree, from the npm package's git bundle.
if [ ! -f "$LLAMA_DIR/src/CMakeLists.txt" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    say "fetching node-llama-cpp@$NPM_VERSION with npm pack"
    (cd "$work" && npm pack --silent "node-llama-cpp@$NPM_VERSION" >/dev/null)
    tarball="$(ls "$work"/node-llama-cpp-*.tgz)"
    say "extracting llama/gitRelease.bundle from $(basename "$tarball")"
    tar -xzf "$tarball" -C "$work" package/llama/gitRelease.bundle
    rm -rf "$LLAMA_DIR/src"
    say "cloning the bundle into $LLAMA_DIR/src"
    git -c advice.detachedHead=false clone --quiet "$work/package/llama/gitRelease.bundle" "$LLAMA_DIR/src"
    echo "node-llama-cpp@$NPM_VERSION" > "$LLAMA_DIR/src.version"
    rm -rf "$work"
    trap - EXIT
else
    say "source already there ($(cat "$LLAMA_DIR/src.version" 2>/dev/null || echo unknown))"
fi

# 2. The server: CPU only, no curl, Release, only the llama-server target (plus
#    llama-tokenize, small, used to check the tiny models' token chains).
if [ ! -x "$LLAMA_DIR/build/bin/llama-server" ] || [ ! -x "$LLAMA_DIR/build/bin/llama-tokenize" ]; then
    say "configuring (CPU only, no curl, Release)"
    cmake -S "$LLAMA_DIR/src" -B "$LLAMA_DIR/build" -DCMAKE_BUILD_TYPE=Release \
        -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
        -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DBUILD_SHARED_LIBS=OFF >"$LLAMA_DIR/configure.log" 2>&1 \
        || { say "configure failed, see $LLAMA_DIR/configure.log"; exit 1; }
    say "building llama-server with -j$JOBS (20+ minutes on 2 cores); log: $LLAMA_DIR/build.log"
    start=$(date +%s)
    nice -n 10 cmake --build "$LLAMA_DIR/build" -j"$JOBS" --target llama-server llama-tokenize \
        >"$LLAMA_DIR/build.log" 2>&1 \
        || { say "build failed, see $LLAMA_DIR/build.log"; exit 1; }
    say "built in $(( $(date +%s) - start )) s"
else
    say "llama-server already built"
fi

# 3. The tiny model, made with the tree's own gguf-py (needs numpy: apt-get install
#    python3-numpy) and checked with its llama-tokenize.
model="$LLAMA_DIR/tiny-qwen-tools.gguf"
if [ ! -f "$model" ] || [ "$HERE/make_tiny_model.py" -nt "$model" ]; then
    py=""
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then py="$p"; break; fi
    done
    [ -n "$py" ] || { say "no python3 with numpy: apt-get install python3-numpy"; exit 1; }
    say "making the tiny model with $py"
    "$py" "$HERE/make_tiny_model.py" --tree "$LLAMA_DIR/src" --out "$LLAMA_DIR" \
        --tokenize "$LLAMA_DIR/build/bin/llama-tokenize"
else
    say "tiny model already made: $model"
fi
say "done: $LLAMA_DIR/build/bin/llama-server"
