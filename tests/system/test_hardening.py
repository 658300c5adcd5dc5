"""Hardening (issue 11, part B) with real broker and actor-worker processes on loopback:
deadlines that would overflow, nested fanouts on a small worker, the worker's watchdog and
poisoned queries, systemd's notify protocol, error replies that stay UTF-8, NUL in names and
escaped /metrics labels, saturating capacity, empty sessions, bad-input logs that are rate
limited and queries of a client that went away. Env: ACTOR_BROKER, ACTOR_WORKER,
ACTOR_PLUGIN_HANG (tests/plugins/hang.c)."""
import os
import socket
import sys
import time

import msgpack
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import (Broker, Client, RealWorker, pack, query, start_workers, wait_until,  # noqa: E402
                    tmpdir)

NEAR_2_63 = 2 ** 63 - 1


def need_worker():
    if not abtest.real_worker_available():
        abtest.skip("ACTOR_WORKER is not set")


def strict(b):
    """Decodes as a strict client does (Python's default: str must be UTF-8)."""
    return msgpack.unpackb(b, raw=False)


# ---------------------------------------------------------------- 1: deadlines

def test_timeout_near_2_63_neither_crashes_nor_times_out():
    """A timeout_ms near 2^63 is held to the longest timeout (saturating), not summed into an
    overflow: the query runs to its result on broker and worker, and both stay up."""
    need_worker()
    b = Broker().start()
    start_workers(b, ["w1"], real=True)
    c = b.client()
    for i, t in enumerate((NEAR_2_63, NEAR_2_63 - 1, 2 ** 62, 2 ** 40 + 1)):
        _, r = c.call(query("t%d" % i, "sleep", {"ms": 5}, timeout_ms=t), timeout=20)
        assert r["type"] == "result", r
    # And one that really times out still does.
    _, r = c.call(query("short", "sleep", {"ms": 5000}, timeout_ms=50), timeout=20)
    assert r["type"] == "error" and r["code"] == "timeout", r
    assert b.status()["workers"][0]["name"] == "w1"
    b.stop()


def test_worker_clamps_the_timeout_of_work():
    """The worker holds work.timeout_ms to the longest timeout itself: a broker (here a fake
    one) that passes 2^63-1 through does not make it overflow its deadline."""
    need_worker()
    sock = abtest.ctx().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = abtest.free_port()
    sock.bind("tcp://127.0.0.1:%d" % port)
    w = abtest.spawn([os.environ["ACTOR_WORKER"], "--broker", "tcp://127.0.0.1:%d" % port,
                      "--name", "wt"], "worker-clamp.log")
    assert sock.poll(10000), "no ready"
    ident, body = sock.recv_multipart()
    assert strict(body)["type"] == "ready"
    sock.send_multipart([ident, pack({"v": 1, "type": "work", "job": 1, "agent": "sleep",
                                      "input": {"ms": 5}, "timeout_ms": NEAR_2_63,
                                      "attempt": 1})])
    deadline = time.monotonic() + 20
    got = None
    while time.monotonic() < deadline and got is None:
        if not sock.poll(500):
            continue
        m = strict(sock.recv_multipart()[1])
        if m.get("job") == 1 and m["type"] in ("result", "error"):
            got = m
    assert got and got["type"] == "result", got
    assert w.poll() is None, "the worker died: %s" % abtest.read_log(w)[-2000:]
    sock.close(0)


# ---------------------------------------------------------------- 11: nested parallelism

def test_fanout_of_fanouts_of_fanouts_on_one_small_worker_ends_and_a_bystander_runs():
    """Three levels of fanout on one worker of capacity 16: 16 fanouts of 4 fanouts of 2
    sleeps. Jobs waiting on their sub-queries lend their slots (worker --max-lent), so the
    grandchildren run: the top query ends with every leaf's output, and an echo sent while
    the fanouts hold every slot is answered too."""
    need_worker()
    b = Broker().start()
    start_workers(b, ["w1"], real=True, capacity=16)
    leaf = {"agent": "sleep", "inputs": [{"ms": 20}, {"ms": 20}]}
    mid = {"agent": "fanout", "inputs": [leaf] * 4}
    top = {"agent": "fanout", "inputs": [mid] * 16}
    c = b.client()
    c.send(query("top", "fanout", top, timeout_ms=60000))
    # Wait until the mid level holds the worker (its slots are all taken or lent).
    wait_until(lambda: b.status()["in_flight"] >= 16, 20, "the fanouts to fill the worker")
    by = b.client()
    by.send(query("bystander", "echo", "hi", timeout_ms=60000))
    r = by.recv(60)
    assert r["type"] == "result" and r["output"] == "hi", r
    got = c.collect(["top"], timeout=90)["top"]
    term = got[-1]
    assert term["type"] == "result", term
    out = term["output"]
    assert len(out) == 16 and all(len(m) == 4 for m in out), out
    assert all(len(l) == 2 for m in out for l in m), out
    assert b.status()["in_flight"] == 0
    b.stop()


# ---------------------------------------------------------------- 12: watchdog, poison

def need_hang():
    need_worker()
    p = os.environ.get("ACTOR_PLUGIN_HANG")
    if not p or not os.path.isfile(p):
        abtest.skip("ACTOR_PLUGIN_HANG is not set")
    return p


def test_watchdog_ends_a_worker_whose_task_never_yields():
    """A plugin agent that spins holds the loop: after --watchdog-ms the worker logs the task
    (named after its agent) with its stack and exits 70 for its supervisor to restart."""
    plugin = need_hang()
    b = Broker().start()
    w = start_workers(b, ["w1"], real=True, extra=["--plugin", plugin,
                                                    "--watchdog-ms", "300"])[0]
    c = b.client()
    c.send(query("s", "spin", None))
    wait_until(lambda: w.proc.poll() is not None, 30, "the watchdog to end the worker")
    assert w.proc.returncode == 70, w.proc.returncode
    log = w.log()
    assert "event=watchdog task=spin" in log, log[-2000:]
    assert "stack of the task holding the loop" in log, log[-2000:]
    r = c.recv(20)
    assert r["id"] == "s" and r["type"] == "error" and r["code"] == "worker_lost", r
    b.stop()


def test_an_idempotent_query_that_kills_its_workers_ends_poisoned():
    """An idempotent query whose worker is lost --poison-after (2) times ends `poisoned` and
    is not retried on the third worker, which goes on answering."""
    plugin = need_hang()
    b = Broker("--poison-after", "2", "--max-retries", "5").start()
    ws = start_workers(b, ["w1", "w2", "w3"], real=True,
                       extra=["--plugin", plugin, "--watchdog-ms", "300", "--capacity", "1"])
    c = b.client()
    c.send(query("p", "spin", None, idempotent=True))
    r = c.recv(60)
    assert r["id"] == "p" and r["type"] == "error" and r["code"] == "poisoned", r
    wait_until(lambda: sum(w.proc.poll() is not None for w in ws) >= 2, 10, "two exits")
    dead = [w for w in ws if w.proc.poll() is not None]
    assert len(dead) == 2, [w.proc.returncode for w in ws]
    _, r = c.call(query("e", "echo", "still here"), timeout=20)
    assert r["type"] == "result" and r["output"] == "still here", r
    b.stop()


def test_worker_speaks_systemds_notify_protocol():
    """Under systemd (NOTIFY_SOCKET, WATCHDOG_USEC) the worker sends READY=1 and then
    WATCHDOG=1 again and again from its loop."""
    need_worker()
    path = os.path.join(tmpdir(), "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    b = Broker().start()
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
    RealWorker(b, "w1", env=env).start()
    got = []
    while len([g for g in got if g == b"WATCHDOG=1"]) < 3:
        got.append(s.recv(256))
    assert b"READY=1" in got, got
    s.close()
    b.stop()


# ---------------------------------------------------------------- raw peers

def spack(m):
    """Packs str that may hold bytes that are not UTF-8 (written as surrogate escapes)."""
    return msgpack.packb(m, use_bin_type=True, unicode_errors="surrogateescape")


class RawWorker:
    """A DEALER on the worker socket that sends whatever the test says."""

    def __init__(self, broker):
        self.sock = abtest.ctx().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(broker.workers)

    def send(self, m):
        self.sock.send(spack(m))

    def recv(self, timeout=5.0, skip=("heartbeat", "budget")):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0 and self.sock.poll(int(left * 1000)), "nothing from the broker"
            m = strict(self.sock.recv())
            if m.get("type") not in skip:
                return m


def ready(name, agents, capacity=1):
    return {"v": 1, "type": "ready", "name": name, "capacity": capacity, "agents": agents,
            "heartbeat_ms": 100000}


def http_get(port, path="/metrics"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return body


# ---------------------------------------------------------------- 3: UTF-8 in error replies

def test_error_replies_are_utf8_whatever_the_request_held():
    """An unknown type that is not UTF-8, or long enough that the quote in the message is
    cut inside a character, still gets an error a strict msgpack decoder reads; so does an
    agent's error whose code and message are not UTF-8."""
    b = Broker().start()
    c = b.client()
    for t in ("\udcff\udcfe", "a" * 39 + "\u00e9" * 4, "\u20ac" * 30):
        c.sock.send(spack({"v": 1, "type": t, "id": 1}))
        r = strict(c.sock.recv()) if c.sock.poll(5000) else None
        assert r and r["type"] == "error" and r["code"] == "bad_request", r
    w = RawWorker(b)
    w.send({"v": 1, "type": "\udcff" * 50})
    r = w.recv()
    assert r["type"] == "error" and r["code"] == "bad_request", r
    b.stop()


def test_an_agent_error_that_is_not_utf8_reaches_the_client_cleaned():
    plugin = need_hang()
    b = Broker().start()
    start_workers(b, ["w1"], real=True, extra=["--plugin", plugin])
    c = b.client()
    c.send(query("u", "bad_utf8", None))
    assert c.sock.poll(20000)
    r = strict(c.sock.recv())
    assert r["type"] == "error" and r["code"] == "plugin_error", r
    assert r["message"].startswith("bad ?? bytes"), r
    b.stop()


# ---------------------------------------------------------------- 2: NUL in names, labels

def test_nul_in_names_is_refused_and_metrics_labels_stay_parseable():
    """A query or a ready naming an agent with a NUL is refused as bad_request; names with
    quotes, backslashes and newlines are escaped in /metrics, whose every line still parses."""
    import re
    port = abtest.free_port()
    b = Broker("--metrics", "tcp://127.0.0.1:%d" % port).start()
    c = b.client()
    _, r = c.call(query("n", "a\x00b", 1))
    assert r["type"] == "error" and r["code"] == "bad_request" and "NUL" in r["message"], r
    w = RawWorker(b)
    w.send(ready("w\x00x", ["echo"]))
    r = w.recv()
    assert r["type"] == "error" and r["code"] == "bad_request" and "NUL" in r["message"], r
    w.send(ready("w1", ["ok", "bad\x00agent"]))
    r = w.recv()
    assert r["type"] == "error" and r["code"] == "bad_request" and "NUL" in r["message"], r
    assert b.status()["workers"] == []
    odd = 'q"u\\o\nte\u00e9'
    _, r = c.call(query("o", odd, 1))  # unknown agent: a series with this name
    assert r["code"] == "unknown_agent", r
    text = http_get(port).decode("utf-8")
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
                        r'(\{[a-zA-Z_]\w*="(?:[^"\\\n]|\\[\\"n])*"'
                        r'(,[a-zA-Z_]\w*="(?:[^"\\\n]|\\[\\"n])*")*\})? \S+$')
    for line in text.splitlines():
        if line.startswith("# "):
            continue
        assert sample.match(line), "unparseable /metrics line %r" % line
    assert 'agent="q\\"u\\\\o\\nte\u00e9"' in text, text
    assert "\x00" not in text
    b.stop()


# ---------------------------------------------------------------- 4: sums, sessions, budget

def test_capacity_sum_saturates_instead_of_wrapping():
    port = abtest.free_port()
    b = Broker("--metrics", "tcp://127.0.0.1:%d" % port).start()
    big = 2 ** 64 - 1
    ws = [RawWorker(b) for _ in range(2)]
    for i, w in enumerate(ws):
        w.send(ready("big%d" % i, ["echo"], capacity=big))
    b.wait_workers(["big0", "big1"])
    st = b.status()
    assert st["capacity"] == big, st["capacity"]
    assert "actorbus_broker_capacity %d" % big in http_get(port).decode()
    b.stop()


def test_an_empty_session_is_a_bad_request():
    b = Broker().start()
    w = RawWorker(b)  # kept: its socket must stay open
    w.send(ready("w1", ["echo"]))
    b.wait_workers(["w1"])
    _, r = b.client().call(query("e", "echo", 1, session=""))
    assert r["type"] == "error" and r["code"] == "bad_request" and "session" in r["message"], r
    b.stop()


def test_budget_acquire_with_a_backend_that_is_not_utf8_is_denied_without_a_budget():
    b = Broker().start()
    w = RawWorker(b)
    w.send(ready("w1", ["echo"]))
    b.wait_workers(["w1"])
    w.send({"v": 1, "type": "budget.acquire", "req": 7, "backend": "\udcffx"})
    r = w.recv(skip=("heartbeat", "budget"))
    assert r["type"] == "budget.deny" and r["req"] == 7 and r["code"] == "bad_request", r
    w.send({"v": 1, "type": "budget.acquire", "req": 8, "backend": "fine"})
    r = w.recv()
    assert r["type"] == "budget.grant" and r["req"] == 8, r
    b.stop()


# ---------------------------------------------------------------- 21: logs, gone clients

def test_bad_input_log_lines_are_rate_limited():
    """300 bad frames are all answered, but at most --log-bad-input lines a second are
    logged; the rest are counted in one reply_error_suppressed line."""
    b = Broker("--log-bad-input", "5").start()
    c = b.client()
    t0 = time.monotonic()
    for _ in range(300):
        c.sock.send(b"\x92\x01\x02")
    for _ in range(300):
        assert strict(c.sock.recv()) if c.sock.poll(10000) else None
    seconds = time.monotonic() - t0
    time.sleep(1.1)  # a new second: the next line reports what was left out
    c.sock.send(b"\x92\x01\x02")
    assert c.sock.poll(10000)
    c.sock.recv()
    log = b.log()
    lines = log.count("event=reply_error ")
    assert lines <= 5 * (int(seconds) + 3), (lines, seconds)
    assert "event=reply_error_suppressed" in log, log[-2000:]
    b.stop()


def test_a_client_that_disconnects_gets_its_queries_cancelled():
    """A client (generated routing id) that closes its socket has its queries ended
    `cancelled` and stopped on the worker; one with an explicit routing id keeps its query
    running, since it may come back and resend."""
    need_worker()
    b = Broker("--drain-ms", "300").start()
    start_workers(b, ["w1"], real=True, capacity=8)
    keep = abtest.ctx().socket(zmq.DEALER)
    keep.setsockopt(zmq.LINGER, 0)
    keep.setsockopt(zmq.ROUTING_ID, b"comes-back")
    keep.connect(b.clients)
    keep.send(pack(query("k", "sleep", {"ms": 60000})))
    c = b.client()
    for i in range(3):
        c.send(query(i, "sleep", {"ms": 60000}))
    wait_until(lambda: b.status()["in_flight"] == 4, 20, "four sleeps running")
    keep.close(0)
    c.close()
    wait_until(lambda: b.status()["in_flight"] == 1, 20, "the gone client's queries to end")
    st = b.status()
    assert st["in_flight"] == 1 and st["errors"] >= 3, st
    assert "event=client_gone" in b.log()
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
