# deploy/agents_demo.sh: the agents part of ./deploy/up.sh (sourced by it; uses its $ctl,
# $clients and $logs). agents_config writes the workers' --agents file from
# examples/agents/agents.json; agents_demo runs the agents and shows what they did.

# The model server comes from the environment, as the worker reads it for the "default" model.
agents_have_model() {
    [ -n "${ACTORBUS_MODEL_BASE_URL:-}" ] && [ -n "${ACTORBUS_MODEL:-}" ]
}

# agents_config OUT: agents.json as is when a model server is set; else without the LLM agents
# and the agents that need them, so the workers announce only what can run.
agents_config() {
    if agents_have_model; then
        cp examples/agents/agents.json "$1"
        return
    fi
    /usr/bin/python3 - examples/agents/agents.json "$1" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
gone = {a["name"] for a in cfg["agents"] if a.get("type") == "llm"}
changed = True
while changed:  # a composite that names a dropped agent goes too (bounded: one pass per agent)
    changed = False
    for a in cfg["agents"]:
        if a["name"] not in gone and set(a.get("sub_agents", ())) & gone:
            gone.add(a["name"])
            changed = True
cfg["agents"] = [a for a in cfg["agents"] if a["name"] not in gone]
json.dump(cfg, open(sys.argv[2], "w"), indent=1)
PY
}

# Runs one query (or session command) and prints each agent event on one line (author,
# branch, text or parts, state delta, actions), then the result.
agents_query() {
    echo "\$ actorctl $*"
    "$ctl" --broker "$clients" --timeout 60000 --json "$@" 2>&1 |
        /usr/bin/python3 -c "$agents_fmt" || true
    echo
}

agents_fmt='
import json, sys
def short(v, n=110):
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return s if len(s) <= n else s[:n - 3] + "..."
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        print("  " + line.rstrip()[:150]); continue
    if m.get("type") != "event":
        body = m.get("output") if "output" in m else m
        if isinstance(body, dict) and "state" in body:
            body = {"events": body.get("events_total"), "state": body["state"]}
        print("  %s: %s" % (m.get("type"), short(body, 300))); continue
    e = m.get("event")
    if not isinstance(e, dict) or "author" not in e:
        print("  event %s" % short(e)); continue
    who = e["author"] + (" [%s]" % e["branch"] if e.get("branch") else "")
    parts = (e.get("content") or {}).get("parts", [])
    what = " ".join(p["text"] if "text" in p else short(p, 70) for p in parts)
    if e.get("error_code"):
        what += " %s: %s" % (e["error_code"], e.get("error_message", ""))
    acts = e.get("actions") or {}
    if "state_delta" in acts:
        what += "  state+=" + short(acts["state_delta"], 60)
    what += "".join("  " + k for k in ("escalate",) if acts.get(k))
    if acts.get("transfer_to_agent"):
        what += "  transfer_to=" + acts["transfer_to_agent"]
    print("  %-38s %s" % (who, short(what, 100)))
'

agents_no_model_help() {
    cat <<'EOF3'
== LLM agents: no model server configured ==
The LLM agents of examples/agents/agents.json (assistant, and research, which runs
news_researcher and culture_researcher at once as sub-invocations) need an OpenAI-compatible
chat-completions server with tool calls. Point the workers at one and run this again:
  llama.cpp:  llama-server -m model.gguf --port 8080 --jinja
      ACTORBUS_MODEL_BASE_URL=http://127.0.0.1:8080/v1 ACTORBUS_MODEL=local \
          ./deploy/up.sh --demo
  vLLM:       vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000 \
                  --enable-auto-tool-choice --tool-call-parser hermes
      ACTORBUS_MODEL_BASE_URL=http://127.0.0.1:8000/v1 ACTORBUS_MODEL=Qwen/Qwen2.5-7B-Instruct \
          ./deploy/up.sh --demo
  Ollama:     ollama pull qwen2.5
      ACTORBUS_MODEL_BASE_URL=http://127.0.0.1:11434/v1 ACTORBUS_MODEL=qwen2.5 \
          ./deploy/up.sh --demo
  hosted:     also set ACTORBUS_MODEL_API_KEY (sent as a bearer token)
EOF3
}

agents_demo() {
    echo "== agents without a model (examples/agents): trip = plan_trip, then weather_now and"
    echo "   time_now in parallel (sub-invocations, spread over the workers), then summarize =="
    agents_query --session demo-trip query trip '"Tokyo"'
    echo "== the session the broker kept: the state every step wrote =="
    agents_query --events 0 session get demo-trip
    echo "== refine: a loop agent; polish escalates on its third round, which ends the loop =="
    agents_query --session demo-refine query refine '"draft"'
    if agents_have_model; then
        echo "== LLM agents on $ACTORBUS_MODEL at $ACTORBUS_MODEL_BASE_URL =="
        agents_query --session demo-llm query assistant \
            '"What is the weather and the time in Paris?"'
        agents_query --session demo-llm query research '"Lisbon"'
    else
        agents_no_model_help
    fi
}
