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

# Runs one query with its events on screen (events cut to 160 columns).
agents_query() {
    echo "\$ actorctl $*"
    "$ctl" --broker "$clients" --timeout 60000 "$@" 2>&1 | cut -c1-160 || true
    echo
}

agents_no_model_help() {
    cat <<'EOF3'
== LLM agents: no model server configured ==
The LLM agents of examples/agents/agents.json (assistant, and research, which runs
news_researcher and culture_researcher at once as sub-invocations) need an OpenAI-compatible
chat-completions server with tool calls. Point the workers at one and run this again:
  llama.cpp:  llama-server -m model.gguf --port 8080 --jinja
              ACTORBUS_MODEL_BASE_URL=http://127.0.0.1:8080/v1 ACTORBUS_MODEL=local ./deploy/up.sh --demo
  vLLM:       vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000 --enable-auto-tool-choice --tool-call-parser hermes
              ACTORBUS_MODEL_BASE_URL=http://127.0.0.1:8000/v1 ACTORBUS_MODEL=Qwen/Qwen2.5-7B-Instruct ./deploy/up.sh --demo
  Ollama:     ollama pull qwen2.5
              ACTORBUS_MODEL_BASE_URL=http://127.0.0.1:11434/v1 ACTORBUS_MODEL=qwen2.5 ./deploy/up.sh --demo
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
        agents_query --session demo-llm query assistant '"What is the weather and the time in Paris?"'
        agents_query --session demo-llm query research '"Lisbon"'
    else
        agents_no_model_help
    fi
}
