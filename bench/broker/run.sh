#!/bin/sh
# bench/broker/run.sh: the broker benchmark. Installs what only the benchmark needs
# (nats-server, libnats-dev) when missing, builds Release in build-bench/, then runs
# bench/broker/run.py: ours vs raw zmq_proxy, Python brokers (asyncio, uvloop) and NATS, side by
# side, and prints one markdown table (also written to bench/out/broker-<date>.md).
# Extra arguments go to run.py (--quick, --system NAME, --rounds N, ...).
set -eu
cd "$(dirname "$0")/../.."

missing=""
for p in nats-server libnats-dev python3-zmq python3-msgpack python3-uvloop; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing:$missing" >&2
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        $missing >/dev/null
fi

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DACTOR_BENCH=ON >/dev/null
cmake --build build-bench -j2 --target actor-broker actor-worker bench_loadgen bench_pubsub \
    bench_rawproxy bench_rawecho bench_natsecho >/dev/null

exec /usr/bin/python3 bench/broker/run.py --bin build-bench/bench/broker \
    --broker build-bench/broker/actor-broker --worker build-bench/worker/actor-worker \
    --out "bench/out/broker-$(date +%Y%m%d-%H%M%S).md" "$@"
