#!/usr/bin/python3
"""test_llama: examples/agents' LLM agents against a REAL OpenAI-compatible model server,
llama.cpp's `llama-server --jinja`, through a real broker and two real workers.

The server and a tiny hand-weighted model come from a cache outside the repo
(${ACTOR_CACHE:-$HOME/.cache/actorbus}/llama, made by tests/compat/make_llama_cache.sh; see
tests/compat/README.md). Without it the test reports skipped (exit 77), unless ACTOR_LLAMA=1
asks to make the cache first. The tiny model answers greedily along fixed token chains
(tiny-qwen-tools.json names them): with tools it calls get_weather {"city": "Paris"}, after
the result it answers ANSWER, in a later turn that sees ANSWER in its history it answers
AGAIN, and with no tools it answers TEXT.

Two servers run the same model: "default", and "short", started with -n 4 so that every
answer is cut by the token limit (finish_reason "length"). Each sits behind a counting TCP
proxy of this script: it counts the requests that reach the server and those a client writes
into a connection the server has already closed (after the proxy has passed the server's FIN
on), which never reach the server: the wasted ones, which must be none.

Env: ACTOR_BROKER, ACTOR_WORKER, ACTOR_PLUGIN_AGENTS (agents_demo.so) as ctest sets them;
ACTOR_CACHE (cache root), ACTOR_LLAMA=1 (make the cache when missing).
"""
import atexit
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import abtest  # noqa: E402
from abtest import Broker, query  # noqa: E402

CACHE = os.path.join(os.environ.get("ACTOR_CACHE") or
                     os.path.join(os.path.expanduser("~"), ".cache", "actorbus"), "llama")
SERVER = os.path.join(CACHE, "build", "bin", "llama-server")
MODEL = os.path.join(CACHE, "tiny-qwen-tools.gguf")
META = os.path.join(CACHE, "tiny-qwen-tools.json")
CONFIG = os.path.join(ROOT, "examples", "agents", "agents.json")
SHORT_N = 4  # the short server's token limit (-n): shorter than every chain
PARIS = {"city": "Paris", "temp_c": 18, "sky": "sunny"}  # get_weather's answer (agents_demo.c)
# What names the error of an answer cut by the token limit (issue 10: its own code, not a
# success and not a transport failure); one of these words in a model_ code.
CUT_WORDS = ("trunc", "length", "max_tokens", "incomplete", "cut")


# ---------------------------------------------------------------- the counting proxy

class Proxy:
    """A TCP proxy on a free loopback port in front of one server. For each client
    connection it opens one to the server and copies both ways; when the server closes its
    side, it passes the FIN on at once (with the last bytes when they came together) and
    keeps reading the client: a request that comes after that was written into a connection
    the client had been told was closed, and never reaches the server (wasted). Counts the
    request heads passed on and the response heads that came back."""
    HEAD = b"POST /v1/chat/completions "
    RESP = b"HTTP/1.1 "

    def __init__(self, upstream_port):
        self.upstream = ("127.0.0.1", upstream_port)
        self.lock = threading.Lock()
        self.n = {"requests": 0, "answered": 0, "wasted": 0, "connections": 0,
                  "server_closes": 0}
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def counts(self):
        with self.lock:
            return dict(self.n)

    def _add(self, key, k=1):
        with self.lock:
            self.n[key] += k

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(c,), daemon=True).start()

    @staticmethod
    def _count(tail, data, pat):
        """Occurrences of pat in data, also across the previous chunk's tail; the new tail."""
        seen = tail + data
        return seen.count(pat) - tail.count(pat), seen[-(len(pat) - 1):]

    @staticmethod
    def _eof_waiting(s):
        try:
            return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False

    def _pipe(self, client):
        self._add("connections")
        try:
            up = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        # Blocking mode, driven by select: a socket with a timeout waits for readability
        # before a recv, MSG_DONTWAIT or not, so _eof_waiting would sit out the server's
        # keep-alive timeout and see the close it caused as the server's own.
        up.settimeout(None)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, "client")
        sel.register(up, selectors.EVENT_READ, "up")
        up_open, ctail, utail = True, b"", b""
        try:
            while True:
                for key, _ in sel.select(timeout=120):
                    data = key.fileobj.recv(65536)
                    if key.data == "client":
                        if not data:
                            return
                        if not up_open:  # written after the server's FIN reached the client
                            self._add("wasted", max(1, data.count(self.HEAD)))
                            return
                        k, ctail = self._count(ctail, data, self.HEAD)
                        self._add("requests", k)
                        up.sendall(data)
                        continue
                    if data:
                        k, utail = self._count(utail, data, self.RESP)
                        self._add("answered", k)
                        client.sendall(data)
                        if not self._eof_waiting(up):
                            continue
                    up_open = False
                    self._add("server_closes")
                    sel.unregister(up)
                    client.shutdown(socket.SHUT_WR)
        except OSError:
            return
        finally:
            sel.close()
            up.close()
            client.close()


# ---------------------------------------------------------------- llama-server

class LlamaServer:
    def __init__(self, name, extra=()):
        self.port = abtest.free_port()
        self.log_path = os.path.join(abtest.tmpdir(), "llama-%s.log" % name)
        log = open(self.log_path, "wb")
        # Not in abtest's process list: the servers live through all the tests (abtest kills
        # its processes after each); they die with this process and at exit. One thread: on
        # a loaded machine two threads that wait for each other made a token cost 0.5 s
        # instead of 3-17 ms.
        self.proc = subprocess.Popen(
            [SERVER, "-m", MODEL, "--jinja", "--host", "127.0.0.1", "--port", str(self.port),
             "-c", "8192", "-np", "2", "-t", "1", "-tb", "1", "--temp", "0", "--no-webui",
             "--no-warmup"]
            + list(extra), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=abtest._die_with_parent)
        log.close()
        atexit.register(self.stop)
        abtest.wait_until(lambda: self.proc.poll() is not None or self.healthy(), 120,
                          "llama-server %s to answer /health" % name, every=0.2)
        assert self.proc.poll() is None, "llama-server exited:\n" + self.log()[-4000:]
        self.proxy = Proxy(self.port)
        self.base_url = "http://127.0.0.1:%d/v1" % self.proxy.port

    def healthy(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % self.port,
                                        timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


_servers = {}


def servers():
    """The two servers, started on first use and kept for all the tests."""
    if not _servers:
        _servers["default"] = LlamaServer("default")
        _servers["short"] = LlamaServer("short", ["-n", str(SHORT_N)])
    return _servers


# ---------------------------------------------------------------- broker, workers, agents

def meta():
    with open(META) as f:
        return json.load(f)


def config():
    """examples/agents/agents.json with its models pointed at the servers, and variants of its
    LLM agents: streamed or not, on the default or the short server."""
    cfg = json.load(open(CONFIG))
    s = servers()
    cfg["models"] = {name: {"base_url": srv.base_url, "model": "tiny", "timeout_ms": 20000}
                     for name, srv in s.items()}
    by_name = {a["name"]: a for a in cfg["agents"]}
    assistant, guide = by_name["assistant"], by_name["culture_researcher"]
    variants = [("assistant_batch", assistant, {"stream": False}),
                ("guide", guide, {"stream": True}),
                ("assistant_short", assistant, {"model": "short", "stream": True}),
                ("assistant_short_batch", assistant, {"model": "short", "stream": False}),
                ("guide_short", guide, {"model": "short", "stream": True}),
                ("guide_short_batch", guide, {"model": "short", "stream": False})]
    for name, base, change in variants:
        a = dict(base, name=name, **change)
        a.pop("output_key", None)
        cfg["agents"].append(a)
    path = os.path.join(abtest.tmpdir(), "agents-llama.json")
    json.dump(cfg, open(path, "w"))
    return path


def start():
    path = config()
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    # 1 s of silence before a worker counts as lost (abtest's default is 0.3 s): this test is
    # not about heartbeats, and two llama-servers share the loaded machine with it.
    b = Broker(heartbeat_ms=200, liveness=5).start()
    extra = ["--plugin", os.environ["ACTOR_PLUGIN_AGENTS"], "--agents", path]
    for name in ("w1", "w2"):
        abtest.RealWorker(b, name, capacity=8, extra=extra, env=env).start()
    b.wait_workers(["w1", "w2"])
    return b


def run(b, qid, agent, inp, session):
    c = b.client()
    c.send(query(qid, agent, inp, session=session, timeout_ms=30000))
    msgs = c.collect([qid], timeout=40)[qid]
    c.close()
    return [m["event"] for m in msgs[:-1]], msgs[-1]


def session_get(b, sid):
    c = b.client()
    _, r = c.call({"v": 1, "type": "session.get", "id": "g-" + sid, "session": sid,
                   "events": 1000})
    c.close()
    assert r["type"] == "result", r
    return r["output"]


def parts(events, kind):
    return [p[kind] for e in events if isinstance(e, dict)
            for p in (e.get("content") or {}).get("parts", ()) if kind in p]


def texts(events, partial):
    return [p["text"] for e in events if isinstance(e, dict) and bool(e.get("partial")) == partial
            for p in (e.get("content") or {}).get("parts", ()) if "text" in p]


class Calls:
    """What one server's proxy counted during a test, against the model calls made."""

    def __init__(self, name):
        self.proxy = servers()[name].proxy
        self.before = self.proxy.counts()

    def check(self, model_calls):
        now = self.proxy.counts()
        got = {k: now[k] - self.before[k] for k in now}
        assert got["wasted"] == 0, ("requests written into connections the server had "
                                    "closed", got)
        assert got["requests"] == got["answered"] == model_calls, (
            "requests sent, requests answered and model calls differ", got, model_calls)
        return got


# ---------------------------------------------------------------- the tests

def test_text_answer_streamed_and_not():
    m = meta()
    b = start()
    calls = Calls("default")
    events, end = run(b, "t1", "guide", "What should I see in Paris?", "text-1")
    assert end["type"] == "result" and end["output"] == m["text"], end
    partial = texts(events, True)
    assert len(partial) >= 2 and "".join(partial) == m["text"], events
    assert texts(events, False) == [m["text"]], events
    events, end = run(b, "t2", "culture_researcher", "What should I see in Paris?", "text-2")
    assert end["type"] == "result" and end["output"] == m["text"], end
    assert texts(events, True) == [] and texts(events, False) == [m["text"]], events
    assert session_get(b, "text-2")["state"]["research:culture"] == m["text"]
    calls.check(2)
    b.stop()


def check_tool_run(m, events, end):
    assert end["type"] == "result" and end["output"] == m["answer"], end
    assert parts(events, "function_call") and all(
        c["name"] == "get_weather" and c["args"] == m["tool_args"]
        for c in parts(events, "function_call")), events
    assert len(parts(events, "function_call")) == 1, events
    resp = parts(events, "function_response")
    assert [(r["name"], r["response"]) for r in resp] == [("get_weather", PARIS)], resp
    # the tool's event comes between the call and the answer
    kinds = [k for e in events if isinstance(e, dict) and not e.get("partial")
             for p in (e.get("content") or {}).get("parts", ()) for k in p
             if k in ("function_call", "function_response", "text")]
    assert kinds == ["function_call", "function_response", "text"], kinds


def test_tool_call_runs_the_c_tool_then_answers():
    m = meta()
    b = start()
    calls = Calls("default")
    events, end = run(b, "a1", "assistant", "What is the weather in Paris?", "tool-1")
    check_tool_run(m, events, end)
    assert "".join(texts(events, True)) == m["answer"], events
    assert session_get(b, "tool-1")["state"]["last_answer"] == m["answer"]
    events, end = run(b, "a2", "assistant_batch", "What is the weather in Paris?", "tool-2")
    check_tool_run(m, events, end)
    assert texts(events, True) == [], events
    calls.check(4)
    b.stop()


def test_second_turn_sees_the_first():
    m = meta()
    b = start()
    calls = Calls("default")
    events, end = run(b, "s1", "assistant", "What is the weather in Paris?", "turns-1")
    check_tool_run(m, events, end)
    # The model answers AGAIN only when ANSWER is in its prompt: the first turn, from the
    # session's history (without it, it would call the tool again).
    events, end = run(b, "s2", "assistant", "And what should I pack?", "turns-1")
    assert end["type"] == "result" and end["output"] == m["again"], end
    assert parts(events, "function_call") == [], events
    stored = [e["event"] for e in session_get(b, "turns-1")["events"]]
    assert sum(1 for t in texts(stored, False) if t == m["answer"]) == 1, stored
    calls.check(3)
    b.stop()


def is_cut_code(code):
    return isinstance(code, str) and code.startswith("model_") and \
        any(w in code for w in CUT_WORDS)


def check_cut(m, events, end, chain_text):
    """An answer cut by the token limit: an error naming it, never a result, and the partial
    text kept in an event."""
    assert end["type"] == "error", ("an answer cut by the token limit is not a success", end)
    assert is_cut_code(end.get("code")), ("the code does not name the cut", end)
    # the final (not partial) event of the model's step keeps what it said before the cut
    kept = [t for t in texts(events, False) if t and chain_text.startswith(t)]
    assert kept and max(len(t) for t in kept) < len(chain_text), ("no event keeps the partial "
                                                                  "text", events)


def test_token_limit_is_an_error_with_the_partial_text():
    m = meta()
    b = start()
    calls = Calls("short")
    for qid, agent in (("l1", "guide_short"), ("l2", "guide_short_batch")):
        events, end = run(b, qid, agent, "What should I see in Paris?", "limit-" + qid)
        check_cut(m, events, end, m["text"])
    calls.check(2)
    b.stop()


def test_a_cut_tool_call_is_never_run():
    m = meta()
    b = start()
    calls = Calls("short")
    for qid, agent in (("c1", "assistant_short"), ("c2", "assistant_short_batch")):
        events, end = run(b, qid, agent, "What is the weather in Paris?", "cut-" + qid)
        assert parts(events, "function_response") == [], ("a cut tool call ran", events)
        assert end["type"] == "error", ("a cut tool call is not a success", end)
        assert is_cut_code(end.get("code")), ("the code does not name the cut", end)
    calls.check(2)
    b.stop()


KEEPALIVE_RUNS = 50  # tool runs: 100 model calls, the figure issue 10 asks for


def test_keep_alive_no_request_into_a_closed_connection():
    """Fifty tool runs one after the other (100 model calls, streamed): llama-server closes
    the connection after each streamed reply; the client must notice before reusing it."""
    m = meta()
    b = start()
    calls = Calls("default")
    c = b.client()
    for i in range(KEEPALIVE_RUNS):  # one at a time: each may reuse a pooled connection
        qid = "k%d" % i
        c.send(query(qid, "assistant", "What is the weather in Paris?", session="ka-%d" % i,
                     timeout_ms=30000))
        end = c.collect([qid], timeout=40)[qid][-1]
        assert end["type"] == "result" and end["output"] == m["answer"], end
    c.close()
    got = calls.check(2 * KEEPALIVE_RUNS)
    print("keep-alive: %s" % got, flush=True)
    b.stop()


def main():
    for k in ("ACTOR_BROKER", "ACTOR_WORKER", "ACTOR_PLUGIN_AGENTS"):
        if not os.path.isfile(os.environ.get(k, "")):
            abtest.skip("%s is not set to a file" % k)
    missing = [p for p in (SERVER, MODEL, META) if not os.path.isfile(p)]
    if missing and os.environ.get("ACTOR_LLAMA") == "1":
        subprocess.run([os.path.join(HERE, "make_llama_cache.sh")], check=True)
        missing = [p for p in (SERVER, MODEL, META) if not os.path.isfile(p)]
    if missing:
        abtest.skip("no llama-server cache (%s); make it with tests/compat/make_llama_cache.sh"
                    % ", ".join(missing))
    try:
        servers()
    except Exception:
        for s in _servers.values():
            print(s.log()[-3000:])
        raise
    abtest.run_tests(globals())


if __name__ == "__main__":
    main()
