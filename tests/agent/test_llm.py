#!/usr/bin/python3
"""test_llm.py: LLM agents through REAL broker and worker processes, against the scripted
model server fake_openai.py (its "agent" model does what the user message asks: tool calls
from a JSON {"calls": [...]}, "done: <results>" after tool results, "echo: <text>" else).
The worker loads tests/plugins/llm_tools.so (env ACTOR_PLUGIN_LLM: C tools, callbacks, the
custom agent "billing") and an --agents file written per test. The MCP toolset test uses
the real @modelcontextprotocol/server-everything installed by test_mcp (env MCP_NPM_DIR).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, RealWorker, query, tmpdir, wait_until  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = "Hello, world! Streaming w\u00f6rks."


# ---------------------------------------------------------------- the model server

class ModelServer:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(abtest.HERE, "fake_openai.py"), "--port", "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
            preexec_fn=abtest._die_with_parent)
        abtest._procs.append(self.proc)
        self.proc.log_path = os.path.join(tmpdir(), "fake_openai.log")
        open(self.proc.log_path, "w").close()
        line = self.proc.stdout.readline().decode()
        assert line.startswith("PORT "), "fake_openai.py did not start: %r" % line
        self.port = int(line.split()[1])
        self.base_url = "http://127.0.0.1:%d/v1" % self.port

    def stats(self, model):
        import urllib.request
        url = "http://127.0.0.1:%d/_stats?model=%s" % (self.port, model)
        with urllib.request.urlopen(url, timeout=5) as r:
            return dict(kv.split("=") for kv in r.read().decode().split())


def start(agents, models=None, tools=None, mcp=None, workers=1, capacity=4, metrics=None):
    """A model server, a broker and workers whose --agents file defines agents; returns
    (model server, broker, client). metrics: a port for the first worker's /metrics."""
    for k in ("ACTOR_BROKER", "ACTOR_WORKER", "ACTOR_PLUGIN_LLM"):
        if not os.path.isfile(os.environ.get(k, "")):
            abtest.skip("%s not set" % k)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    ms = ModelServer()
    conf = {"models": models or {"default": {"base_url": ms.base_url, "model": "agent"}},
            "agents": agents}
    for m in conf["models"].values():
        m.setdefault("base_url", ms.base_url)
    if tools:
        conf["tools"] = tools
    if mcp:
        conf["mcp"] = mcp
    path = os.path.join(tmpdir(), "agents-%d.json" % ms.port)
    with open(path, "w") as f:
        json.dump(conf, f)
    b = Broker().start()
    names = ["w%d" % i for i in range(workers)]
    for i, n in enumerate(names):
        extra = ["--plugin", os.environ["ACTOR_PLUGIN_LLM"], "--agents", path]
        if metrics and i == 0:
            extra += ["--metrics", "tcp://127.0.0.1:%d" % metrics]
        RealWorker(b, n, capacity=capacity, extra=extra).start()
    b.wait_workers(names, timeout=60)
    return ms, b, b.client()


def llm(name, **kw):
    a = {"name": name, "type": "llm"}
    a.update(kw)
    return a


def calls(*cs):
    return json.dumps({"calls": [{"name": n, "args": a} for n, a in cs]})


def payloads(events):
    return [e["event"] for e in events if e.get("type") == "event"]


# ---------------------------------------------------------------- tests

def test_streaming_text_gives_partial_events_then_a_final_one():
    _, b, c = start([llm("assistant", output_key="last_answer")])
    events, term = c.call(query("q1", "assistant", "hello there friend", timeout_ms=20000), 30)
    assert term["type"] == "result", term
    assert term["output"] == "echo: hello there friend"
    evs = payloads(events)
    partial = [e for e in evs if e.get("partial")]
    assert "".join(e["content"]["parts"][0]["text"] for e in partial) == term["output"]
    assert len(partial) == 4, evs
    final = evs[-1]
    assert final.get("final") is True and not final.get("partial")
    assert final["author"] == "assistant"
    assert final["content"]["parts"][0]["text"] == term["output"]
    assert final["actions"]["state_delta"] == {"last_answer": term["output"]}
    assert evs.index(final) > max(evs.index(e) for e in partial)


def test_history_reaches_the_model_only_for_agents_that_keep_it():
    ms, b, c = start([llm("chat", stream=False),
                      llm("forgetful", stream=False, history=False)])
    import urllib.request

    def last_messages():
        url = "http://127.0.0.1:%d/_last?model=agent" % ms.port
        with urllib.request.urlopen(url, timeout=5) as r:
            return [(m["role"], m.get("content")) for m in json.load(r)["messages"]
                    if m["role"] != "system"]
    for agent, session in (("chat", "h1"), ("forgetful", "h2")):
        for i, text in enumerate(("first", "second")):
            _, term = c.call(query("%s%d" % (agent, i), agent, text, session=session,
                                   timeout_ms=20000), 30)
            assert term["type"] == "result", term
        got = last_messages()
        if agent == "chat":  # the worker's ready asked for history: the broker sent it
            assert got == [("user", "first"), ("assistant", "echo: first"),
                           ("user", "second")], got
        else:
            assert got == [("user", "second")], got
    b.stop()


def test_two_tools_one_times_out_one_fails_and_the_invocation_completes():
    _, b, c = start([llm("assistant", tools=["slow_tool", "fail_tool", "get_weather"],
                         stream=False)],
                    tools={"slow_tool": {"timeout_ms": 300}})
    q = calls(("slow_tool", {}), ("fail_tool", {}), ("get_weather", {"city": "Paris"}))
    events, term = c.call(query("q1", "assistant", q, timeout_ms=20000), 30)
    assert term["type"] == "result", term
    evs = payloads(events)
    errors = [e for e in evs if e.get("error_code") == "tool_error"]
    assert len(errors) == 2, evs
    assert "slow_tool timed out after 300 ms" in errors[0]["error_message"]
    assert "the disk is on fire" in errors[1]["error_message"]
    resp = [p["function_response"] for e in evs for p in e.get("content", {}).get("parts", [])
            if "function_response" in p]
    assert [r["name"] for r in resp] == ["slow_tool", "fail_tool", "get_weather"]
    assert resp[0]["response"]["error"]["code"] == "timeout"
    assert resp[1]["response"]["error"]["code"] == "tool_failed"
    assert resp[2]["response"] == {"city": "Paris", "temp_c": 21}
    weather = [e for e in evs if e.get("content", {}).get("parts", [{}])[0]
               .get("function_response", {}).get("name") == "get_weather"][0]
    assert weather["actions"]["state_delta"] == {"last_city": "Paris"}
    calls_ev = [e for e in evs if any("function_call" in p
                                      for p in e.get("content", {}).get("parts", []))]
    assert len(calls_ev) == 1 and len(calls_ev[0]["content"]["parts"]) == 3
    assert term["output"].startswith('done: {"error":{"code":"timeout"')
    assert term["output"].endswith('| {"city":"Paris","temp_c":21}')


def test_429_then_success():
    ms, b, c = start([llm("assistant", stream=False)],
                     models={"default": {"model": "rate-limited", "base_delay_ms": 10}})
    _, term = c.call(query("q1", "assistant", "hi", timeout_ms=20000), 30)
    assert term["type"] == "result" and term["output"] == TEXT, term
    assert ms.stats("rate-limited")["requests"] == "2"


def test_500s_open_the_breaker_then_calls_fail_fast():
    ms, b, c = start([llm("assistant", stream=False)],
                     models={"default": {"model": "always500", "max_attempts": 2,
                                         "base_delay_ms": 1, "breaker_threshold": 3}})
    codes = []
    for i in range(3):
        _, term = c.call(query("q%d" % i, "assistant", "hi", timeout_ms=20000), 30)
        assert term["type"] == "error", term
        codes.append(term["code"])
    assert codes == ["model_unavailable", "model_unavailable", "model_circuit_open"], codes
    assert ms.stats("always500")["requests"] == "3"  # 2, then 1 until the breaker opened


def test_slow_reply_hits_the_query_deadline():
    ms, b, c = start([llm("assistant")], models={"default": {"model": "slow"}})
    _, term = c.call(query("q1", "assistant", "hi", timeout_ms=500), 30)
    assert term["type"] == "error" and term["code"] == "timeout", term
    wait_until(lambda: ms.stats("slow")["aborted"] == "1", 10, "the request aborted")


def test_a_model_call_that_cannot_start_before_the_query_deadline_ends_timeout():
    """The worker's answer reaches the broker long before the broker's own deadline: one call
    a 100 s, the second query's model call is refused at once (it could not start before the
    query's deadline). That is the query's timeout, not the model's: the model's own
    timeout_ms (60 s) is the farther bound."""
    ms, b, c = start([llm("assistant", stream=False)],
                     models={"default": {"model": "agent", "rps": 0.01}})
    _, term = c.call(query("q1", "assistant", "hi", timeout_ms=20000), 30)
    assert term["type"] == "result", term
    _, term = c.call(query("q2", "assistant", "hi", timeout_ms=5000), 30)
    assert term["type"] == "error" and term["code"] == "timeout", term
    assert ms.stats("agent")["requests"] == "1"


def test_the_models_own_shorter_timeout_ends_model_timeout():
    ms, b, c = start([llm("assistant")], models={"default": {"model": "slow", "timeout_ms": 300}})
    _, term = c.call(query("q1", "assistant", "hi", timeout_ms=20000), 30)
    assert term["type"] == "error" and term["code"] == "model_timeout", term
    assert "timeout_ms (300) passed" in term["message"], term
    wait_until(lambda: ms.stats("slow")["aborted"] == "1", 10, "the request aborted")


def test_transfer_to_agent_hands_the_invocation_over():
    _, b, c = start([llm("assistant", sub_agents=["billing"], stream=False)])
    q = calls(("transfer_to_agent", {"agent_name": "billing"}))
    events, term = c.call(query("q1", "assistant", q, timeout_ms=20000), 30)
    assert term["type"] == "result" and term["output"] == "billing here", term
    evs = payloads(events)
    transfer = [e for e in evs if e.get("actions", {}).get("transfer_to_agent")]
    assert len(transfer) == 1 and transfer[0]["actions"]["transfer_to_agent"] == "billing"
    assert transfer[0]["author"] == "assistant"


def test_an_agent_used_as_a_tool():
    _, b, c = start([llm("assistant", tools=["agent:researcher"], stream=False),
                     llm("researcher", stream=False)])
    q = calls(("researcher", {"request": "find cats"}))
    events, term = c.call(query("q1", "assistant", q, timeout_ms=20000), 30)
    assert term["type"] == "result", term
    assert term["output"] == "done: echo: find cats"
    # The sub-invocation's model call counts toward the invocation's sum: the assistant's
    # two calls and the researcher's one, 18 tokens each.
    final = [e for e in payloads(events) if e.get("final") and e["author"] == "assistant"]
    assert final and final[-1]["invocation_usage"]["total_token_count"] == 54, final


def test_a_blocking_tool_on_its_own_thread_does_not_stall_a_concurrent_query():
    _, b, c = start([llm("blocker", tools=["block_read"], stream=False),
                     llm("assistant", stream=False)], capacity=4)
    fifo = os.path.join(tmpdir(), "block.fifo")
    os.mkfifo(fifo)
    c.send(query("slow", "blocker", calls(("block_read", {"path": fifo})), timeout_ms=60000))
    wait_until(lambda: os.path.exists(fifo + ".started"), 20, "the tool to block")
    # The tool is parked on the FIFO (only the test can open its write end): another query
    # on the same worker goes start to end meanwhile.
    c.send(query("quick", "assistant", "meanwhile", timeout_ms=20000))
    seen = []
    while not (seen and seen[-1].get("id") == "quick" and abtest.is_terminal(seen[-1])):
        seen.append(c.recv(20))
    assert seen[-1]["output"] == "echo: meanwhile", seen[-1]
    assert not any(abtest.is_terminal(m) for m in seen if m.get("id") == "slow")
    fd = os.open(fifo, os.O_WRONLY)
    os.write(fd, b"go\n")
    os.close(fd)
    while not abtest.is_terminal(seen[-1]) or seen[-1].get("id") != "slow":
        seen.append(c.recv(20))
    assert seen[-1]["type"] == "result", seen[-1]
    assert seen[-1]["output"] == "done: go"


def test_a_blocking_tool_stuck_past_its_timeout_neither_fails_the_query_nor_holds_the_exit():
    _, b, c = start([llm("blocker", tools=["block_read"], stream=False)],
                    tools={"block_read": {"timeout_ms": 300}})
    fifo = os.path.join(tmpdir(), "stuck.fifo")
    os.mkfifo(fifo)  # never written: the tool stays parked in open(2)
    events, term = c.call(query("q1", "blocker", calls(("block_read", {"path": fifo})),
                                timeout_ms=20000), 30)
    assert os.path.exists(fifo + ".started")
    assert term["type"] == "result", term
    assert term["output"].startswith('done: {"error":{"code":"timeout"'), term
    errors = [e for e in payloads(events) if e.get("error_code") == "tool_error"]
    assert len(errors) == 1 and "block_read timed out after 300 ms" in errors[0][
        "error_message"]
    worker = [p for p in abtest._procs if "actor-worker" in str(p.args)][0]
    assert abtest.kill_proc(worker, abtest.signal.SIGTERM, 15) == 0


def test_before_model_callback_answers_from_a_cache():
    ms, b, c = start([llm("cached")])
    _, term = c.call(query("q1", "cached", "hi", timeout_ms=20000), 30)
    assert term["output"] == "from the cache", term
    assert ms.stats("agent")["requests"] == "0"


def test_before_tool_callback_replaces_the_tool():
    _, b, c = start([llm("guarded", tools=["get_weather", "get_time"], stream=False)])
    q = calls(("get_weather", {"city": "Paris"}), ("get_time", {}))
    events, term = c.call(query("q1", "guarded", q, timeout_ms=20000), 30)
    assert term["output"] == 'done: {"city":"nowhere","by":"callback"} | 12:00', term
    # the tool did not run, so it wrote no state
    assert not any(e.get("actions", {}).get("state_delta") for e in payloads(events))


def test_mcp_toolset_of_server_everything():
    npm = os.environ.get("MCP_NPM_DIR", "")
    script = os.path.join(npm, "node_modules/@modelcontextprotocol/server-everything/dist/"
                          "index.js")
    node = shutil.which("node")
    if not node or not os.path.isfile(script):
        print("SKIP test_mcp_toolset_of_server_everything: server-everything not installed "
              "(test_mcp installs it)")
        return
    _, b, c = start([llm("assistant", tools=["mcp:everything"], stream=False)],
                    mcp={"everything": {"command": [node, script, "stdio"],
                                        "timeout_ms": 20000}})
    q = calls(("echo", {"message": "hi from an agent"}))
    events, term = c.call(query("q1", "assistant", q, timeout_ms=30000), 40)
    assert term["type"] == "result", term
    assert term["output"] == "done: Echo: hi from an agent"


def scrape_tokens(port):
    """actorbus_worker_model_tokens_total as {(agent, model, kind): n}."""
    import re
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sk:
        sk.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sk.recv(65536)
            if not chunk:
                break
            data += chunk
    out = {}
    for m in re.finditer(r'^actorbus_worker_model_tokens_total\{agent="([^"]*)",'
                         r'model="([^"]*)",kind="([^"]*)"\} (\d+)$', data.decode(), re.M):
        out[(m.group(1), m.group(2), m.group(3))] = int(m.group(4))
    return out


def test_usage_is_on_events_summed_and_counted_in_metrics():
    port = abtest.free_port()
    _, b, c = start([llm("assistant", tools=["get_weather"])], metrics=port)
    q = calls(("get_weather", {"city": "Paris"}))
    events, term = c.call(query("q1", "assistant", q, timeout_ms=20000), 30)
    assert term["type"] == "result", term
    evs = payloads(events)
    used = [e for e in evs if "usage_metadata" in e]
    assert len(used) == 2, evs  # the function_call event and the final one
    for e in used:
        assert e["usage_metadata"] == {"prompt_token_count": 11, "candidates_token_count": 7,
                                       "total_token_count": 18}, e
        assert not e.get("partial")
    assert evs[-1].get("final") and evs[-1]["invocation_usage"] == {
        "prompt_token_count": 22, "candidates_token_count": 14, "total_token_count": 36}
    assert scrape_tokens(port) == {("assistant", "default", "prompt"): 22,
                                   ("assistant", "default", "completion"): 14}
    b.stop()


def test_answer_cut_by_the_token_limit_is_an_error_not_a_result():
    models = {"default": {"model": "cut"}, "tool": {"model": "cut-tool"}}
    _, b, c = start([llm("assistant"), llm("caller", model="tool", stream=False,
                                           tools=["get_weather"])], models=models)
    events, term = c.call(query("q1", "assistant", "go", timeout_ms=20000), 30)
    assert term["type"] == "error" and term["code"] == "model_truncated", term
    last = payloads(events)[-1]
    assert last["error_code"] == "model_truncated"
    assert last["content"]["parts"][0]["text"] == "The answer is"  # the partial text kept
    events, term = c.call(query("q2", "caller", "go", timeout_ms=20000), 30)
    assert term["type"] == "error" and term["code"] == "model_truncated", term
    assert not any("function_response" in json.dumps(e) for e in payloads(events))
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
