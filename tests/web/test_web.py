"""The web console (tools/web, actor-web) against a real broker and two fake workers on
loopback. The test_http_* functions speak HTTP themselves: the /api answers, the stream of a
query, the refusals (another site's Host, a form's POST, sizes, a missing token, too many
live pages) and a query cancelled when its page goes away. test_browser_console drives a
headless Chromium over the DevTools protocol (cdp.py): the overview shows both workers, a
query sent from the page shows its events and result, the fanout's timeline shows children
on two workers overlapping, a session page shows the state the agent wrote and deletes it,
a worker's tasks show, and an event whose text holds <script> is shown as text and never
runs. Screenshots of each page go to $ACTOR_WEB_SHOTS (the build tree's web-screenshots/).
Run with the names of the functions to run only those; the browser test exits 77 (skipped)
when chromium is missing and cannot be installed, or does not start here."""
import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
# Reused here: the CURVE broker of tests/broker/test_security.py and the agents file of
# tests/system/test_agents_example.py.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "broker"))
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import abtest  # noqa: E402
from abtest import ADK_AGENTS, Broker, query, skip, start_workers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WEB = os.environ.get("ACTOR_WEB", "")
SCRIPT = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"


class Web:
    """actor-web on a free port, talking to broker b."""
    n = 0

    def __init__(self, b, *extra, env=None):
        Web.n += 1
        if not (WEB and os.path.isfile(WEB)):
            skip("set ACTOR_WEB to the actor-web binary")
        self.proc = abtest.spawn([WEB, "--listen", "127.0.0.1:0", "--broker", b.clients,
                                  "--pub", b.pub] + list(extra),
                                 "web-%d-%d.log" % (b.ports["clients"], Web.n), env=env)

        def url():
            for line in abtest.read_log(self.proc).splitlines():
                if "serving http://" in line:
                    return line.split()[2].rstrip("/")
            return None
        self.url = abtest.wait_until(url, 10, "actor-web to listen")
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self):
        """SIGTERM: it must exit 0 with a clean log (under ASan: no leak, no error)."""
        rc = abtest.kill_proc(self.proc, signal.SIGTERM)
        log = abtest.read_log(self.proc)
        assert rc == 0 and not any(m in log for m in abtest.SANITIZER_MARKS), (rc, log)

    def http(self, path, body=None, headers=None, method=None):
        """(status, parsed JSON or text, headers) of one request."""
        req = urllib.request.Request(self.url + path, data=body, headers=headers or {},
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                status, data, h = r.status, r.read().decode(), r.headers
        except urllib.error.HTTPError as e:
            status, data, h = e.code, e.read().decode(), e.headers
        try:
            return status, json.loads(data), h
        except ValueError:
            return status, data, h

    def raw(self, data):
        """A socket that sent data; the caller reads and closes it."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(data)
        return s

    def query_lines(self, body):
        st, text, _ = self.http("/api/query", json.dumps(body).encode(), {"X-Actor-Web": "1"})
        assert st == 200, (st, text)
        if not isinstance(text, str):  # one line only: it parsed as a whole
            return [text]
        return [json.loads(l) for l in text.splitlines() if l]


def read_until(s, marker, limit=1 << 20):
    got = b""
    while marker not in got and len(got) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def fanout_input(children=3, ms=700):
    """The fake workers' scripted agent: an event with a state change and <script> in its
    text, then `children` sub-invocations in parallel, each emitting at its start and
    sleeping ms."""
    return {"emit": [{"content": {"role": "model", "parts": [{"text": SCRIPT}]},
                      "actions": {"state_delta": {"city": "Lisbon", "nights": 3}}}],
            "children": [{"agent": "adk", "branch": "trip.leg%d" % i,
                          "input": {"emit": [{"content": {"role": "model", "parts": [
                              {"text": "leg %d" % i}]}}], "ms": ms}}
                         for i in range(children)]}


# ---------------------------------------------------------------- HTTP

def test_http_api_answers_from_the_broker_and_streams_a_query():
    b = Broker().start()
    start_workers(b, ["w1", "w2"], agents=ADK_AGENTS)
    web = Web(b)
    st, s, _ = web.http("/api/status")
    assert st == 200 and s["type"] == "result" and s["id"], s
    assert sorted(w["name"] for w in s["output"]["workers"]) == ["w1", "w2"], s
    lines = web.query_lines({"agent": "adk", "session": "s1", "input": fanout_input(2, 50)})
    assert lines[0]["type"] == "accepted" and lines[0]["id"].startswith("web-"), lines
    types = [m["type"] for m in lines[1:]]
    assert types[-1] == "result" and set(types[:-1]) == {"event"}, types
    seqs = [m["seq"] for m in lines[1:-1]]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 3, seqs  # children's too
    assert lines[1]["event"]["content"]["parts"][0]["text"] == SCRIPT, lines[1]
    # the bus as the pages get it: every run of the invocation, on its worker
    inv = lines[1]["event"]["invocation_id"]

    def runs():
        st, bus, _ = web.http("/api/bus")
        ms = [m["msg"] for m in bus if m["msg"] and m["msg"].get("invocation") == inv]
        ends = {m["job"] for m in ms if m["type"] in ("result", "error")}
        return ms if len(ends) == 3 else None
    ms = abtest.wait_until(runs, 10, "the invocation's three runs on the bus")
    assert all(m["worker"] in ("w1", "w2") and m["accepted_ms"] <= m["ts_ms"] for m in ms), ms
    st, later, _ = web.http("/api/bus?after=%d" % 10 ** 9)
    assert st == 200 and later == [], later
    # sessions: listed, read with the state the agent wrote, deleted
    st, page, _ = web.http("/api/sessions?limit=10")
    assert [x["session"] for x in page["output"]["sessions"]] == ["s1"], page
    st, one, _ = web.http("/api/session?id=s1&events=5")
    assert one["output"]["state"] == {"city": "Lisbon", "nights": 3}, one
    st, gone, _ = web.http("/api/session/delete?id=s1", b"", {"X-Actor-Web": "1"})
    assert gone["output"] == {"deleted": True}, gone
    st, one, _ = web.http("/api/session?id=s1")
    assert one["type"] == "error" and one["code"] == "not_found", one
    # an error of the broker comes back as the broker said it
    lines = web.query_lines({"agent": "nope"})
    assert lines[-1]["type"] == "error" and lines[-1]["code"] == "unknown_agent", lines
    web.stop()
    b.stop()


def test_http_requests_another_site_could_make_are_refused():
    b = Broker().start()
    web = Web(b, "--max-request", "2048", "--max-sse", "1", "--request-timeout", "500")
    st, body, h = web.http("/")
    assert st == 200 and "<title>actorbus console</title>" in body, st
    assert "script-src 'self'" in h["Content-Security-Policy"], dict(h)
    # a page of another site whose name was rebound to 127.0.0.1 sends its own Host
    st, e, _ = web.http("/api/status", headers={"Host": "evil.example:%d" % web.port})
    assert st == 403 and e["code"] == "forbidden", (st, e)
    # a form or an image cannot send X-Actor-Web, nor GET what changes something
    st, e, _ = web.http("/api/session/delete?id=s1", b"")
    assert st == 405, (st, e)
    st, e, _ = web.http("/api/query?agent=echo")
    assert st == 405, (st, e)
    # sizes and garbage
    st, e, _ = web.http("/api/query", b"x" * 4000, {"X-Actor-Web": "1"})
    assert st == 413, (st, e)
    s = web.raw(b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n")
    assert read_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 431"), "long head"
    s.close()
    s = web.raw(b"BAD\x01 / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 400"), "garbage"
    s.close()
    # a request that never ends does not keep its connection
    s = web.raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert read_until(s, b"never") == b"", "a stalled request was not closed"
    s.close()
    st, e, _ = web.http("/api/query", b"[1]", {"X-Actor-Web": "1"})
    assert st == 400 and "JSON object" in e["message"], (st, e)
    # live pages are bounded
    host = "Host: 127.0.0.1:%d\r\n" % web.port
    s1 = web.raw(("GET /events HTTP/1.1\r\n%s\r\n" % host).encode())
    assert b"200 OK" in read_until(s1, b"retry:"), "first stream"
    s2 = web.raw(("GET /events HTTP/1.1\r\n%s\r\n" % host).encode())
    assert read_until(s2, b"\r\n\r\n").startswith(b"HTTP/1.1 503"), "second stream"
    s1.close()
    s2.close()
    web.stop()
    b.stop()


def test_http_an_answer_over_max_buffer_is_refused_and_a_slow_stream_cut():
    b = Broker().start()
    start_workers(b, ["w1"], agents=ADK_AGENTS)
    web = Web(b, "--max-buffer", "65536")
    big = {"emit": [{"content": {"role": "model", "parts": [{"text": "x" * 100000}]}}]}
    _, term = b.client().call(query("big", "adk", big, session="big"))
    assert term["type"] == "result", term
    st, e, _ = web.http("/api/session?id=big")
    assert st == 502 and e["code"] == "too_large", (st, e)
    st, one, _ = web.http("/api/session?id=big&events=0")
    assert st == 200 and one["output"]["events_total"] == 2, one
    # a live page that cannot take a bus message over its buffer loses its stream
    s = web.raw(("GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % web.port).encode())
    assert b"retry:" in read_until(s, b"retry:"), "stream"
    b.client().call(query("big2", "adk", big, session="big"))
    got = read_until(s, b"never", limit=1 << 22)
    assert b"x" * 1000 not in got, "the message was sent past --max-buffer"
    s.close()
    web.stop()
    b.stop()


def test_http_off_loopback_needs_a_token():
    b = Broker().start()
    if not (WEB and os.path.isfile(WEB)):
        skip("set ACTOR_WEB to the actor-web binary")
    p = abtest.spawn([WEB, "--listen", "0.0.0.0:0", "--broker", b.clients], "web-open.log")
    assert p.wait(10) == 2 and "token" in abtest.read_log(p), abtest.read_log(p)
    path = os.path.join(abtest.tmpdir(), "web.token")
    with open(path, "w") as f:
        f.write("s3cret-token\n")
    web = Web(b, "--token-file", path)
    st, e, _ = web.http("/api/status")
    assert st == 401 and e["code"] == "unauthorized", (st, e)
    st, e, _ = web.http("/api/status", headers={"X-Actor-Token": "s3cret-tokeN"})
    assert st == 401, (st, e)
    st, s, _ = web.http("/api/status", headers={"X-Actor-Token": "s3cret-token"})
    assert st == 200 and s["type"] == "result", (st, s)
    st, s, _ = web.http("/api/status?token=s3cret-token")  # EventSource cannot send headers
    assert st == 200 and s["type"] == "result", (st, s)
    b.stop()


def test_http_a_long_query_streams_to_its_end_and_one_whose_page_goes_away_is_cancelled():
    b = Broker().start()
    w = start_workers(b, ["w1"])[0]
    web = Web(b, "--request-timeout", "300")
    # a query may stream for longer than --request-timeout, to its end
    lines = web.query_lines({"agent": "sleep", "input": {"ms": 800}})
    assert lines[-1]["type"] == "result" and lines[-1]["output"]["slept_ms"] == 800, lines
    body = json.dumps({"agent": "sleep", "input": {"ms": 60000}}).encode()
    s = web.raw(b"POST /api/query HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Actor-Web: 1\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (web.port, len(body), body))
    assert b'"accepted"' in read_until(s, b"accepted"), "accepted"
    w.wait_stats(lambda st: st["works"] == 2, what="the sleep to start")
    s.close()
    w.wait_stats(lambda st: len(st["cancels"]) == 1, what="the cancel after the page left")
    st, status, _ = web.http("/api/status")
    assert status["output"]["in_flight"] == 0, status
    web.stop()
    b.stop()


def test_http_talks_curve_to_a_curve_broker():
    from test_security import SecureBroker, keypair, write_pair
    mine = keypair()
    b = SecureBroker(clients=[mine[0]]).start()
    key = write_pair("web", mine)
    web = Web(b, "--curve-server-key", b.pub_path, "--curve-key", key)
    st, s, _ = web.http("/api/status")
    assert st == 200 and s["type"] == "result", (st, s)
    # the bus too: a refused query's error is published, and the console's ring has it
    # (again until the SUB's subscription has reached the broker)
    def on_bus():
        lines = web.query_lines({"agent": "nope"})
        assert lines[-1]["code"] == "unknown_agent", lines
        return any(m["msg"]["agent"] == "nope" for m in web.http("/api/bus")[1])
    abtest.wait_until(on_bus, 15, "the error on the bus over CURVE", every=0.2)
    # a key the broker does not know gets nothing: the request times out, or finds no
    # connection to send on once the handshake was refused
    other = Web(b, "--curve-server-key", b.pub_path, "--request-timeout", "300")
    st, e, _ = other.http("/api/status")
    assert (st, e["code"]) in ((504, "timeout"), (502, "unreachable")), (st, e)
    web.stop()
    other.stop()
    b.stop()


# ---------------------------------------------------------------- the browser

def shots_dir():
    return os.environ.get("ACTOR_WEB_SHOTS") or os.path.join(abtest.tmpdir(), "shots")


def start_browser():
    import cdp
    exe = cdp.install_chromium(REPO)
    try:
        return cdp.Browser.start(os.path.join(abtest.tmpdir(), "chromium-profile"), exe)
    except cdp.Unavailable as e:
        skip(str(e))


def test_browser_console():
    b = Broker().start()
    # Two slots each: the root holds one, so its three parallel children need both workers.
    start_workers(b, ["w1", "w2"], agents=ADK_AGENTS, capacity=2)
    real = None  # the real worker, with examples/agents when that plugin is built
    plugin = os.environ.get("ACTOR_PLUGIN_AGENTS", "")
    if abtest.real_worker_available():
        extra = []
        if os.path.isfile(plugin):
            from test_agents_example import config_without_llm
            extra = ["--plugin", plugin, "--agents", config_without_llm()]
        real = abtest.RealWorker(b, "w3", capacity=4, extra=extra).start()
        b.wait_workers(["w1", "w2", "w3"])
        real.trip = bool(extra)
    web = Web(b)
    browser = start_browser()
    shots = shots_dir()
    page = browser.open(web.url + "/#overview")
    # 1. the overview shows both workers, by itself (the status comes over /events)
    names = page.wait("(() => { const n = [...document.querySelectorAll("
                      "'#workers-table tbody tr')].map(r => r.dataset.worker);"
                      " return n.includes('w1') && n.includes('w2') && n; })()",
                      what="both workers on the overview")
    assert "w1" in names and "w2" in names, names
    page.wait("document.getElementById('conn').textContent === 'live'")
    page.screenshot(os.path.join(shots, "overview.png"))
    # 2. a query from the page: its events as they come, then the result
    page.eval("location.hash = 'query'")
    page.eval("(() => { const v = (id, x) => document.getElementById(id).value = x;"
              " v('q-agent', 'adk'); v('q-session', 'trip-1');"
              " v('q-input', %s); document.getElementById('q-send').click(); })()"
              % json.dumps(json.dumps(fanout_input())))
    # a second invocation on the same session, from another client, waits for the lock
    page.wait("document.querySelectorAll('#q-events li').length > 0", what="the first event")
    other = b.client()
    other.send(query("second", "adk", {"emit": [{"content": {"role": "model", "parts": [
        {"text": "second"}]}}]}, session="trip-1"))
    page.wait("document.getElementById('q-result').dataset.type", timeout=30,
              what="the query's result on the page")
    assert page.eval("document.getElementById('q-result').dataset.type") == "result"
    texts = page.eval("[...document.querySelectorAll('#q-events li')].map(l => l.textContent)")
    assert any(SCRIPT in t for t in texts), texts  # shown as text ...
    assert sum("leg " in t for t in texts) == 3, texts  # the children's events too
    assert page.eval("window.__pwned === undefined"), "an event's script ran"  # ... not run
    assert page.eval("document.querySelectorAll('script').length") == 1
    assert page.eval("document.querySelectorAll('#q-events img').length") == 0
    page.screenshot(os.path.join(shots, "query.png"))
    # 3. its timeline: the children on two workers, overlapping in time
    inv = inv1 = page.eval("document.getElementById('q-meta').dataset.inv")
    assert inv and inv.startswith("i-"), inv
    page.eval("location.hash = 'timeline/%s'" % inv)
    bars = page.wait("(() => { const b = [...document.querySelectorAll('#tl .bar.run')]"
                     ".map(e => Object.assign({}, e.dataset));"
                     " return b.length === 4 && b; })()", what="four runs on the timeline")
    kids = [x for x in bars if x["branch"]]
    assert len(kids) == 3 and {k["worker"] for k in kids} == {"w1", "w2"}, bars
    overlap = [(a, c) for a in kids for c in kids if a["worker"] != c["worker"] and
               int(a["start"]) < int(c["end"]) and int(c["start"]) < int(a["end"])]
    assert overlap, kids
    root = [x for x in bars if not x["branch"]][0]
    assert all(int(root["start"]) <= int(k["start"]) and int(k["end"]) <= int(root["end"])
               for k in kids), bars
    page.screenshot(os.path.join(shots, "timeline.png"), height=340)
    # the second invocation waited on the session lock: accepted before the first ended,
    # started after; its bar shows the wait
    got = other.collect(["second"])["second"]
    assert got[-1]["type"] == "result", got
    inv2 = got[0]["event"]["invocation_id"]
    page.eval("location.hash = 'timeline/%s'" % inv2)
    run2 = page.wait("(() => { const b = document.querySelector('#tl .bar.run');"
                     " return b && document.querySelector('#tl .bar.wait') &&"
                     " Object.assign({}, b.dataset); })()", what="the waiting invocation")
    assert int(run2["accepted"]) < int(root["end"]) <= int(run2["start"]), (run2, root)
    page.screenshot(os.path.join(shots, "timeline-lock.png"), height=340)
    page.eval("location.hash = 'overview'")
    page.wait("document.querySelectorAll('#bus-table tbody tr').length >= 8")
    page.screenshot(os.path.join(shots, "overview-live.png"))
    # 4. the session: in the list, its state as the agent wrote it, its events as text
    page.eval("location.hash = 'session/trip-1'")
    state = page.wait("(() => { const s = document.getElementById('s-state');"
                      " return s && s.textContent; })()", what="the session's state")
    assert json.loads(state) == {"city": "Lisbon", "nights": 3}, state
    page.wait("document.querySelector('#s-table tr[data-session=\"trip-1\"]') !== null",
              what="trip-1 in the session list")
    evs = page.eval("document.getElementById('s-events').textContent")
    assert SCRIPT in evs and page.eval("window.__pwned === undefined"), evs
    page.screenshot(os.path.join(shots, "sessions.png"))
    page.eval("document.getElementById('s-delete').click()")
    page.eval("document.getElementById('s-delete').click()")  # armed, then confirmed
    page.wait("(() => { const d = document.getElementById('s-deleted');"
              " return d && d.textContent === 'deleted trip-1'; })()", what="the delete")
    c = b.client()
    _, term = c.call({"v": 1, "type": "session.get", "id": "g", "session": "trip-1"})
    assert term["type"] == "error" and term["code"] == "not_found", term
    # 5. the runtime's own parallel agent (examples/agents' trip): its steps inside the root's
    # run, its two parallel children as runs of their own, the state it wrote
    if real and real.trip:
        page.eval("location.hash = 'query'")
        page.eval("(() => { const v = (id, x) => document.getElementById(id).value = x;"
                  " v('q-agent', 'trip'); v('q-session', 'trip-real'); v('q-input', 'Tokyo');"
                  " document.getElementById('q-send').click(); })()")
        page.wait("document.getElementById('q-result').dataset.type === 'result'", timeout=30,
                  what="trip's result")
        inv = page.eval("document.getElementById('q-meta').dataset.inv")
        page.eval("location.hash = 'timeline/%s'" % inv)
        got = page.wait("(() => { const r = [...document.querySelectorAll('#tl .bar.run')]"
                        ".map(e => e.dataset.agent).sort(); const s = [...document."
                        "querySelectorAll('#tl .seg')].map(e => e.dataset.author);"
                        " return r.length === 3 && s.length >= 2 && {runs: r, segs: s}; })()",
                        what="trip's runs and steps")
        assert got["runs"] == ["time_now", "trip", "weather_now"], got
        assert "plan_trip" in got["segs"] and "summarize" in got["segs"], got
        page.screenshot(os.path.join(shots, "timeline-trip.png"), height=340)
        page.eval("location.hash = 'session/trip-real'")
        state = json.loads(page.wait("(() => { const s = document.getElementById('s-state');"
                                     " return s && s.textContent; })()"))
        assert state["city"] == "Tokyo" and state["weather"]["fact"]["temp_c"] == 24, state
    # 6. a page opened later draws the first timeline from what the console kept (/api/bus)
    later = browser.open(web.url + "/#timeline/" + inv1)
    later.wait("document.querySelectorAll('#tl .bar.run').length === 4",
               what="the first timeline in a page opened later")
    # 7. a worker's tasks (the real worker answers `tasks`; the fake ones do not)
    if real:
        page.eval("location.hash = 'workers/w3'")
        meta = page.wait("(() => { const m = document.getElementById('w-meta').textContent;"
                         " return m.startsWith('w3 ') && m; })()", what="w3's tasks")
        assert "running jobs" in meta, meta
        page.screenshot(os.path.join(shots, "workers.png"))
    assert page.exceptions() == [] and later.exceptions() == [], page.exceptions()
    browser.close()
    print("screenshots in " + shots, flush=True)
    web.stop()
    b.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        sys.argv = [sys.argv[0]] + [n for n in list(globals()) if n.startswith("test_http_")]
    abtest.run_tests(globals())
