#!/usr/bin/env bash
# deploy/up.sh: the README's first command. Installs what is missing, builds, starts a broker
# and one worker per core on 127.0.0.1, shows a query fanning out across the workers and its
# events seen by a bus subscriber, then keeps running until Ctrl-C (which stops everything).
#   --demo          run the show, stop everything and exit
#   --workers N     workers to start (default: one per core)
#   --port-base P   use ports P..P+3 instead of 5555..5558
#   --web-port P    serve the web console (tools/web) on 127.0.0.1:P (default 8088; 0: none)
#   --curve         require keys on loopback too: CURVE with fresh keys for the broker, the
#                   workers and actorctl (without it any local process may be a worker)
# The workers also host examples/agents (agents_demo.so + agents.json): the agents that need no
# model always; the LLM agents when ACTORBUS_MODEL_BASE_URL and ACTORBUS_MODEL name a server.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=0
curve=0
workers=$(nproc)
base=5555
web_port=8088
while [ $# -gt 0 ]; do
    case "$1" in
    --demo) demo=1 ;;
    --curve) curve=1 ;;
    --workers) workers=${2:?--workers needs a number}; shift ;;
    --port-base) base=${2:?--port-base needs a port}; shift ;;
    --web-port) web_port=${2:?--web-port needs a port}; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

. deploy/packages.sh
actor_install_packages
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target actor-broker actor-worker actorctl agents_demo actor-web \
    >/dev/null

broker=build/broker/actor-broker
worker=build/worker/actor-worker
ctl=build/tools/actorctl/actorctl
clients=tcp://127.0.0.1:$base
wk=tcp://127.0.0.1:$((base + 1))
pub=tcp://127.0.0.1:$((base + 2))
sub=tcp://127.0.0.1:$((base + 3))
logs=$(mktemp -d "${TMPDIR:-/tmp}/actorbus-up.XXXXXX")
pids=()
. deploy/agents_demo.sh
agents_config "$logs/agents.json"

stop() {
    trap - INT TERM EXIT
    [ ${#pids[@]} -gt 0 ] || return 0
    echo "stopping broker and workers (logs in $logs)"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "${pids[@]}" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    pids=()
}
trap stop EXIT
trap 'exit 130' INT TERM

for port in $base $((base + 1)) $((base + 2)) $((base + 3)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "up.sh: port $port is in use; stop what holds it or pass --port-base" >&2
        exit 1
    fi
done

# Keys (--curve): the broker's pair, one for the workers and one for actorctl, and the two
# allowlists. $ctl becomes a wrapper that passes actorctl's keys, so every command below (and
# the ones printed for you) works as it does without CURVE.
broker_keys=()
worker_keys=()
web_keys=()
if [ $curve = 1 ]; then
    for k in broker worker client; do "$ctl" keygen --out "$logs/$k" >/dev/null; done
    cp "$logs/worker.pub" "$logs/worker-keys"
    cp "$logs/client.pub" "$logs/client-keys"
    broker_keys=(--curve-secret "$logs/broker.key" --client-keys "$logs/client-keys"
                 --worker-keys "$logs/worker-keys")
    worker_keys=(--curve-server-key "$logs/broker.pub" --curve-key "$logs/worker.key")
    printf '#!/bin/sh\nexec "%s" --curve-server-key "%s" --curve-key "%s" "$@"\n' \
        "$PWD/$ctl" "$logs/broker.pub" "$logs/client.key" >"$logs/actorctl"
    chmod +x "$logs/actorctl"
    ctl=$logs/actorctl
    web_keys=(--curve-server-key "$logs/broker.pub" --curve-key "$logs/client.key")
fi

"$broker" --clients "$clients" --workers "$wk" --pub "$pub" --sub "$sub" \
    ${broker_keys[@]+"${broker_keys[@]}"} \
    2>"$logs/broker.log" &
pids+=($!)
for i in $(seq 1 "$workers"); do
    "$worker" --broker "$wk" --name "worker-$i" --capacity 16 \
        ${worker_keys[@]+"${worker_keys[@]}"} \
        --plugin build/examples/agents/agents_demo.so --agents "$logs/agents.json" \
        2>"$logs/worker-$i.log" &
    pids+=($!)
done

ready=0
for _ in $(seq 1 100); do
    n=$("$ctl" --broker "$clients" --timeout 500 --json status 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))' \
        2>/dev/null || echo 0)
    [ "$n" = "$workers" ] && { ready=1; break; }
    sleep 0.1
done
[ $ready = 1 ] || { echo "up.sh: workers did not register; see $logs" >&2; exit 1; }

echo "== broker on $clients with $workers workers =="
if [ "$web_port" != 0 ]; then
    if (exec 3<>"/dev/tcp/127.0.0.1/$web_port") 2>/dev/null; then
        echo "up.sh: port $web_port is in use: no web console (pass --web-port)" >&2
    else
        build/tools/web/actor-web --listen "127.0.0.1:$web_port" --broker "$clients" \
            --pub "$pub" ${web_keys[@]+"${web_keys[@]}"} >"$logs/web.log" 2>&1 &
        pids+=($!)
        echo "== web console: http://127.0.0.1:$web_port/ (workers, queries, timelines, sessions) =="
    fi
fi
"$ctl" --broker "$clients" status
echo
if [ $curve = 1 ]; then
    echo "== security: CURVE on loopback =="
    echo "Only keys in $logs/client-keys (clients, bus) and $logs/worker-keys (workers) get in;"
    echo "a process without one cannot register as a worker, send queries or read the bus."
else
    echo "== security: none (loopback without CURVE) =="
    echo "Every process on this host may send queries, read the bus, or register as a worker and"
    echo "receive queries with their input (and answer them). To require keys here too:"
    echo "  ./deploy/up.sh --curve       (README.md, \"Trust model\")"
fi
echo
n=$((workers * 2))
inputs=$(/usr/bin/python3 -c "import json; print(json.dumps([{'ms': 300}] * $n))")
echo "== a subscriber watches the bus (prefix query.fanout) =="
"$ctl" --pub "$pub" --count 3 subscribe query.fanout >"$logs/subscriber.out" 2>&1 &
subpid=$!
sleep 0.3
echo "== fanout: $n sleep(300 ms) queries from one agent, spread over every worker =="
"$ctl" --broker "$clients" --json query fanout "{\"agent\":\"sleep\",\"inputs\":$inputs}" \
    >"$logs/fanout.out"
/usr/bin/python3 - "$logs/fanout.out" <<'PY'
import collections, json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
result = lines[-1]["output"]
per = collections.Counter(r["worker"] for r in result)
start = min(r["start_ms"] for r in result); end = max(r["end_ms"] for r in result)
print(f"{len(lines) - 1} events, then the result: {len(result)} children ran on "
      f"{len(per)} workers in {end - start} ms (one after another: {sum(r['slept_ms'] for r in result)} ms)")
for w, c in sorted(per.items()):
    print(f"  {w}: {c} children")
PY
wait "$subpid" 2>/dev/null || true
echo "== what the subscriber saw (first 3 messages) =="
cut -c1-150 "$logs/subscriber.out"
echo
cat <<EOF2
Send your own query (any ZeroMQ client works; see examples/):
  $ctl --broker $clients query echo '"hello"'
  $ctl --broker $clients query sleep '{"ms": 500}'
  $ctl --pub $pub subscribe query.
EOF2
[ $curve = 1 ] || echo "  /usr/bin/python3 examples/python/client.py --broker $clients echo '{\"hi\": 1}'"
echo
agents_demo
if [ $demo = 1 ]; then
    exit 0
fi
echo "Running; press Ctrl-C to stop."
wait "${pids[0]}"
