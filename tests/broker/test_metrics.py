"""Observability of actor-broker and actor-worker: /metrics scraped with a raw socket after
known traffic (counts by agent and outcome, histogram counts that add up, gauges, bytes),
bad HTTP requests answered 400/404/405/431 while the broker keeps serving, a slow scraper
that does not block queries, the worker's own /metrics, `--log-format json` lines that parse
as JSON, the `tasks` request (and `actorctl tasks`), `actorctl status` and `actorctl top`.
Env: ACTOR_BROKER, ACTOR_WORKER, ACTORCTL."""
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, RealWorker, query, start_workers, wait_until  # noqa: E402


def http(port, raw, timeout=5.0):
    """Sends raw bytes to 127.0.0.1:port and reads until the server closes; returns
    (status, headers text, body text)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(), body.decode()


def scrape(port):
    status, head, body = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200, (status, body)
    assert "text/plain; version=0.0.4" in head, head
    m = re.search(r"Content-Length: (\d+)", head)
    assert m and int(m.group(1)) == len(body.encode()), head
    return parse_prom(body)


def parse_prom(text):
    """{(name, frozenset(labels)): value}; checks every line is HELP, TYPE or a sample."""
    out = {}
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = sample.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def get(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0)


def broker_with_metrics(*args):
    port = abtest.free_port()
    b = Broker("--metrics", "tcp://127.0.0.1:%d" % port, *args).start()
    return b, port


def test_broker_metrics_count_queries_by_agent_and_outcome():
    b, port = broker_with_metrics()
    start_workers(b, ["w1"], capacity=4)
    c = b.client()
    for i in range(5):
        _, t = c.call(query("e%d" % i, "echo", i))
        assert t["type"] == "result", t
    for i in range(3):
        _, t = c.call(query("f%d" % i, "fail", i))
        assert t["code"] == "tool_error", t
    _, t = c.call(query("u", "nobody", 1))
    assert t["code"] == "unknown_agent", t
    _, t = c.call(query("s", "sleep", {"ms": 20}))
    assert t["type"] == "result", t
    m = scrape(port)
    assert get(m, "actorbus_broker_queries_total", agent="echo", outcome="ok") == 5, m
    assert get(m, "actorbus_broker_queries_total", agent="fail", outcome="tool_error") == 3
    assert get(m, "actorbus_broker_queries_total", agent="nobody", outcome="unknown_agent") == 1
    assert get(m, "actorbus_broker_queries_total", agent="sleep", outcome="ok") == 1
    assert get(m, "actorbus_broker_errors_total", code="tool_error") == 3
    assert get(m, "actorbus_broker_errors_total", code="unknown_agent") == 1
    # histogram: per agent, cumulative buckets, +Inf == count == the queries answered
    for agent, n in (("echo", 5), ("fail", 3), ("nobody", 1), ("sleep", 1)):
        h = "actorbus_broker_query_duration_seconds"
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in m.items()
                          if k[0] == h + "_bucket" and dict(k[1]).get("agent") == agent))
        assert len(buckets) == 19, buckets
        assert all(a[1] <= b_[1] for a, b_ in zip(buckets, buckets[1:])), buckets
        assert buckets[-1] == (float("inf"), n), buckets
        assert get(m, h + "_count", agent=agent) == n
    # the sleep took at least 20 ms: not in the buckets below 0.01 s
    assert get(m, "actorbus_broker_query_duration_seconds_bucket", agent="sleep",
               le="0.01") == 0, m
    assert get(m, "actorbus_broker_query_duration_seconds_sum", agent="sleep") >= 0.02
    assert get(m, "actorbus_broker_workers") == 1
    assert get(m, "actorbus_broker_capacity") == 4
    assert get(m, "actorbus_broker_worker_capacity", worker="w1") == 4
    assert get(m, "actorbus_broker_in_flight") == 0
    assert get(m, "actorbus_broker_queued") == 0
    assert get(m, "actorbus_broker_received_messages_total", socket="clients") >= 10
    assert get(m, "actorbus_broker_received_bytes_total", socket="clients") > 0
    assert get(m, "actorbus_broker_sent_messages_total", socket="workers") >= 9
    assert get(m, "actorbus_broker_metrics_requests_total", status="200") == 0  # this one
    assert get(scrape(port), "actorbus_broker_metrics_requests_total", status="200") == 1
    st = b.status()  # the status reply's added fields agree
    assert st["answered"] == 10 and st["errors"] == 4, st
    assert st["uptime_ms"] >= 0 and st["draining"] is False, st
    b.stop()


def test_metrics_show_in_flight_and_queue_depth():
    b, port = broker_with_metrics()
    (w,) = start_workers(b, ["w1"], capacity=1)
    c = b.client()
    c.send(query("a", "sleep", {"ms": 5000}))
    c.send(query("b", "sleep", {"ms": 10}))
    w.wait_stats(lambda s: s.get("works") == 1)
    wait_until(lambda: b.status()["queued"] == 1, 5, "the second query to queue")
    m = scrape(port)
    assert get(m, "actorbus_broker_in_flight") == 2, m
    assert get(m, "actorbus_broker_queued") == 1
    assert get(m, "actorbus_broker_worker_in_flight", worker="w1") == 1
    assert get(m, "actorbus_broker_worker_jobs") == 1
    op = b.client()  # an operator's cancel, from another connection
    assert op.call({"v": 1, "type": "cancel", "id": "a"})[1]["output"] == {"cancelled": True}
    got = c.collect(["a", "b"], timeout=10)
    assert got["a"][-1]["code"] == "cancelled" and got["b"][-1]["type"] == "result", got
    m = scrape(port)
    assert get(m, "actorbus_broker_queries_total", agent="sleep", outcome="cancelled") == 1
    assert get(m, "actorbus_broker_queries_total", agent="sleep", outcome="ok") == 1
    b.stop()


def test_bad_http_requests_get_errors_and_the_broker_keeps_serving():
    b, port = broker_with_metrics("--metrics-max-request", "256")
    start_workers(b, ["w1"])
    c = b.client()
    cases = [
        (b"garbage\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /other HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 400 + b"\r\n\r\n", 431),
        (b"\x00\x01\x02\xff\r\n\r\n", 400),
    ]
    for raw, want in cases:
        status, _, body = http(port, raw)
        assert status == want, (raw[:40], status, body)
        _, t = c.call(query("after-%d" % want, "echo", want))  # still serving
        assert t["type"] == "result", t
    # a request split over several TCP segments is read whole
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for part in (b"GET /met", b"rics HTT", b"P/1.1\r\n", b"\r\n"):
        s.sendall(part)
        time.sleep(0.05)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200 OK"), data[:100]
    m = scrape(port)
    for st, n in (("400", 3 + 1), ("404", 1), ("405", 1), ("431", 1), ("200", 1)):
        assert get(m, "actorbus_broker_metrics_requests_total", status=st) == n, (st, m)
    assert "level=warn event=panic" not in b.log()
    b.stop()


def test_idle_scrapers_do_not_block_queries_and_the_oldest_makes_room():
    b, port = broker_with_metrics("--metrics-max-conns", "2")
    start_workers(b, ["w1"])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    wait_until(lambda: "metrics" in b.log(), 5, "the log")
    c = b.client()
    _, t = c.call(query("q", "echo", 1))  # the broker does not wait for idle scrapers
    assert t["type"] == "result", t
    # The table is full: the idle connection that waited longest goes, the newcomer is served
    status, _, _ = http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == 200, status
    assert idle[0].recv(100) == b""  # closed without an answer
    wait_until(lambda: "event=metrics_evicted" in b.log(), 5, "the eviction in the log")
    for s in idle:
        s.close()
    b.stop()


def _scrape_ok(port):
    try:
        scrape(port)
        return True
    except (AssertionError, OSError):
        return False


def test_metrics_flag_errors_and_off_by_default():
    b = Broker().start()
    assert "socket=metrics" not in b.log()
    b.stop()
    exe = os.environ["ACTOR_BROKER"]
    p = subprocess.run([exe, "--log-format", "xml"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "log-format" in p.stderr, p
    port = abtest.free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    b2 = Broker("--metrics", "tcp://127.0.0.1:%d" % port)
    b2.proc = abtest.spawn(b2.argv(), "broker-busy-%d.log" % port)
    assert b2.proc.wait(10) != 0
    assert "socket=metrics" in b2.log() and "bind_failed" in b2.log(), b2.log()
    blocker.close()


def test_broker_json_logs_parse_as_json():
    b, port = broker_with_metrics("--log-format", "json")
    start_workers(b, ["w1"])
    c = b.client()
    c.send_frames([b"\xc1"])  # a bad request: a warn line with a quoted message
    assert c.recv(5)["code"] == "bad_request"
    http(port, b"nonsense\r\n\r\n")
    b.stop()
    lines = [l for l in b.log().splitlines() if l.strip()]
    assert len(lines) >= 5, lines
    events = []
    for line in lines:
        obj = json.loads(line)
        assert {"ts", "level", "event"} <= set(obj), obj
        events.append(obj)
    names = [e["event"] for e in events]
    for want in ("listening", "started", "worker_ready", "reply_error", "metrics_bad_request"):
        assert want in names, names
    started = next(e for e in events if e["event"] == "started")
    assert isinstance(started["max_msg"], int), started
    bad = next(e for e in events if e["event"] == "reply_error")
    assert bad["code"] == "bad_request" and isinstance(bad["message"], str), bad


# ---------------------------------------------------------------- worker, tasks, actorctl

def need_real():
    if not abtest.real_worker_available() or not os.environ.get("ACTORCTL"):
        abtest.skip("ACTOR_WORKER or ACTORCTL not set")


def ctl(b, *args, timeout=30):
    p = subprocess.run([os.environ["ACTORCTL"], "--broker", b.clients] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_worker_metrics_count_jobs_by_agent_and_outcome():
    need_real()
    b = Broker().start()
    wport = abtest.free_port()
    w = RealWorker(b, "w1", extra=["--metrics", "tcp://127.0.0.1:%d" % wport]).start()
    b.wait_workers(["w1"])
    c = b.client()
    for i in range(4):
        _, t = c.call(query("e%d" % i, "echo", i))
        assert t["type"] == "result", t
    _, t = c.call(query("s", "sleep", {"ms": 20}))
    assert t["type"] == "result", t
    c.send(query("long", "sleep", {"ms": 10000}))
    wait_until(lambda: get(scrape(wport), "actorbus_worker_jobs_running") == 1, 5, "running")
    op = b.client()
    assert op.call({"v": 1, "type": "cancel", "id": "long"})[1]["output"] == {"cancelled": True}
    got = c.collect(["long"], timeout=10)
    assert got["long"][-1]["code"] == "cancelled", got
    wait_until(lambda: get(scrape(wport), "actorbus_worker_jobs_running") == 0, 5, "idle")
    m = scrape(wport)
    assert get(m, "actorbus_worker_jobs_total", agent="echo", outcome="ok") == 4, m
    assert get(m, "actorbus_worker_jobs_total", agent="sleep", outcome="ok") == 1
    assert get(m, "actorbus_worker_jobs_total", agent="sleep", outcome="cancelled") == 1
    assert get(m, "actorbus_worker_job_duration_seconds_count", agent="echo") == 4
    assert get(m, "actorbus_worker_job_duration_seconds_bucket", agent="echo",
               le="+Inf") == 4
    assert get(m, "actorbus_worker_capacity") == 4
    assert get(m, "actorbus_worker_connected") == 1
    assert get(m, "actorbus_worker_loop_tasks_spawned_total") >= 6
    assert get(m, "actorbus_worker_received_messages_total") >= 6
    status, _, _ = http(wport, b"GET /nope HTTP/1.1\r\n\r\n")
    assert status == 404
    status, _, _ = http(wport, b"bad\r\n\r\n")
    assert status == 400
    _, t = c.call(query("after", "echo", 1))  # still working
    assert t["type"] == "result", t
    b.stop()


def test_worker_json_logs_parse_as_json():
    need_real()
    b = Broker().start()
    w = RealWorker(b, "w1", extra=["--log-format", "json", "--log-level", "debug"]).start()
    b.wait_workers(["w1"])
    c = b.client()
    _, t = c.call(query("e", "echo", {"quote": "a\"b"}))
    assert t["type"] == "result", t
    abtest.kill_proc(w.proc, abtest.signal.SIGTERM, 10)
    lines = [l for l in w.log().splitlines() if l.strip()]
    assert len(lines) >= 3, lines
    for line in lines:
        obj = json.loads(line)
        assert {"ts", "level", "event"} <= set(obj), obj
    names = [json.loads(l)["event"] for l in lines]
    assert "worker_start" in names and "connect" in names, names
    b.stop()


def test_tasks_shows_a_worker_task_waiting_in_sleep():
    need_real()
    b = Broker().start()
    RealWorker(b, "w1").start()
    b.wait_workers(["w1"])
    c = b.client()
    c.send(query("nap", "sleep", {"ms": 20000}))
    answers = []

    def sleeping_task():  # the broker counts the job before the worker has started it
        t = c.call({"v": 1, "type": "tasks", "id": "t1", "worker": "w1"})[1]
        answers.append(t)
        assert t["type"] == "result" and t["id"] == "t1", t
        return [x for x in t["output"]["tasks"]
                if x["name"] == "sleep" and x["state"] == "waiting"]
    sleeping = wait_until(sleeping_task, 5, "the sleep task waiting")
    out = answers[-1]["output"]
    assert out["worker"] == "w1" and out["running_jobs"] == 1, out
    assert len(sleeping) == 1, out
    assert sleeping[0]["state"] == "waiting" and sleeping[0]["waits_on"] == "sleep", sleeping
    assert sleeping[0]["waiting_ms"] >= 0 and sleeping[0]["job"] >= 1, sleeping
    # the worker did not stop: the sleep is still running and other queries are served
    _, e = c.call(query("e", "echo", 1))
    assert e["type"] == "result", e
    # unknown worker, missing field
    t = c.call({"v": 1, "type": "tasks", "id": "t2", "worker": "nobody"})[1]
    assert t["type"] == "error" and t["code"] == "not_found", t
    t = c.call({"v": 1, "type": "tasks", "id": "t3"})[1]
    assert t["code"] == "bad_request" and "worker" in t["message"], t
    # actorctl tasks
    rc, out, err = ctl(b, "tasks", "w1")
    assert rc == 0, (out, err)
    line = [l for l in out.splitlines() if " sleep " in l + " "]
    assert line and "waiting" in line[0] and "sleep" in line[0], out
    rc, out, err = ctl(b, "--json", "tasks", "w1")
    assert rc == 0 and json.loads(out)["type"] == "result", (out, err)
    rc, out, err = ctl(b, "tasks", "nobody")
    assert rc == 1 and "not_found" in err, (out, err)
    c.send({"v": 1, "type": "cancel", "id": "nap"})
    b.stop()


def test_tasks_of_a_lost_worker_end_with_worker_lost():
    b = Broker().start()
    (w,) = start_workers(b, ["w1"])
    c = b.client()
    c.send({"v": 1, "type": "tasks", "id": "t1", "worker": "w1"})
    time.sleep(0.1)
    w.kill()
    t = c.recv(5)
    assert t["type"] == "error" and t["code"] in ("worker_lost", "timeout"), t
    c.expect_quiet(0.3)  # exactly one answer
    b.stop()


def test_actorctl_status_and_top():
    need_real()
    b = Broker().start()
    RealWorker(b, "w1", capacity=3).start()
    RealWorker(b, "w2", capacity=5).start()
    b.wait_workers(["w1", "w2"])
    c = b.client()
    for i in range(3):
        c.call(query("e%d" % i, "echo", i))
    rc, out, err = ctl(b, "status")
    assert rc == 0, err
    assert "2 workers" in out and "capacity 8" in out and "in flight 0" in out, out
    assert "answered 3" in out, out
    assert re.search(r"^w1\s+3\s+0\b", out, re.M) and re.search(r"^w2\s+5\s+0\b", out, re.M), out
    rc, out, err = ctl(b, "top", "--count", "2", "--interval", "100")
    assert rc == 0, err
    assert out.count("\x1b[H") == 2, repr(out[:200])  # two frames, each from the top
    assert out.count("2 workers") == 2 and "rate" in out, out
    rc, out, err = ctl(b, "top", "--count", "0")
    assert rc == 2, (out, err)
    b.stop()


def test_tasks_reply_counts_once_in_sent_traffic():
    need_real()
    b, port = broker_with_metrics()
    RealWorker(b, "w1").start()
    b.wait_workers(["w1"])
    c = b.client()
    name = "actorbus_broker_sent_messages_total"
    before = get(scrape(port), name, socket="clients")
    t = c.call({"v": 1, "type": "tasks", "id": "t1", "worker": "w1"})[1]
    assert t["type"] == "result", t
    assert get(scrape(port), name, socket="clients") - before == 1  # the one reply
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
