#!/usr/bin/env bash
# deploy/up.sh: the README's first command. Installs what is missing, builds, and runs the
# main job. Until the broker lands (issue 4) the main job is the libactor demo: a planner
# fanning out to six tools at once, with per-tool timeouts and an event bus.
#   --demo   run the show and exit (the only mode for now)
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
    case "$arg" in
    --demo) ;;
    -h | --help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
. deploy/packages.sh
actor_install_packages
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target actor-demo >/dev/null
echo "== actor-demo (build/examples/actor-demo) =="
exec ./build/examples/actor-demo
