#!/bin/sh
# bench/agents/run.sh: builds Release (build-bench/) and runs the agent benchmark: an LLM
# agent with two tool calls against a scripted model server, ours (actor-broker + actor-worker)
# next to the same agent on Python asyncio, at each model latency. Extra arguments go to
# run.py (--quick, --latencies 0,5, --inflight 128,1024, --rounds N, --seconds S, --workers N).
set -eu
cd "$(dirname "$0")/../.."
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DACTOR_BENCH=ON >/dev/null
cmake --build build-bench -j2 --target actor-broker actor-worker agents_demo bench_modelsrv \
    bench_httpload bench_agentload >/dev/null
exec /usr/bin/python3 bench/agents/run.py --bin build-bench/bench/agents \
    --broker build-bench/broker/actor-broker --worker build-bench/worker/actor-worker \
    --plugin build-bench/examples/agents/agents_demo.so "$@"
