"""End to end: actor-broker, real actor-workers and actorctl on free loopback ports. Echo round
trips and exit codes, --json output, usage errors, status, publish/subscribe, sleeps that
overlap over two workers, fanout spread over both, cancel reaching the worker (its cleanup
event on the bus), timeout, kill -9 of a worker mid-query (exactly one terminal), broker
restart (workers come back), plugin loading and the SIGTERM drain of a worker.
Env: ACTOR_BROKER, ACTOR_WORKER, ACTORCTL, ACTOR_PLUGIN_HELLO."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, RealWorker, Subscriber, query, wait_until, read_log  # noqa: E402


def actorctl_exe():
    exe = os.environ.get("ACTORCTL")
    assert exe and os.path.isfile(exe), "set ACTORCTL to the actorctl binary"
    return exe


def ctl_argv(b, args):
    return [actorctl_exe(), "--broker", b.clients, "--pub", b.pub] + list(args)


def ctl(b, *args, timeout=30):
    """Runs actorctl to the end: (exit code, stdout, stderr)."""
    p = subprocess.run(ctl_argv(b, args) if b else [actorctl_exe()] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Background:
    """actorctl running while the test does other things; killed at the end like the rest."""

    def __init__(self, b, *args):
        self.proc = subprocess.Popen(ctl_argv(b, args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.proc.log_path = os.devnull
        abtest._procs.append(self.proc)

    def finish(self, timeout=30):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def workers(b, names, *extra, capacity=4):
    ws = [RealWorker(b, n, capacity=capacity, extra=["--log-level", "debug"] + list(extra)).start()
          for n in names]
    b.wait_workers(names)
    return ws


def check_clean(*procs):
    for p in procs:
        text = p.log()
        for mark in abtest.SANITIZER_MARKS:
            assert mark not in text, "log has %r:\n%s" % (mark, text[-4000:])


def hello_plugin():
    path = os.environ.get("ACTOR_PLUGIN_HELLO")
    assert path and os.path.isfile(path), "set ACTOR_PLUGIN_HELLO to hello.so"
    return path


# ---------------------------------------------------------------- actorctl itself


def test_actorctl_echo_round_trip_and_exit_codes():
    b = Broker().start()
    ws = workers(b, ["w1"])
    rc, out, err = ctl(b, "query", "echo", '{"a": [1, 2.5, null, true], "b": "x"}')
    assert rc == 0 and json.loads(out) == {"a": [1, 2.5, None, True], "b": "x"}, (rc, out, err)
    rc, out, err = ctl(b, "query", "echo", "not json at all")  # falls back to a string
    assert rc == 0 and json.loads(out) == "not json at all", (rc, out, err)
    rc, out, err = ctl(b, "query", "echo")  # no input: nil
    assert rc == 0 and out.strip() == "null", (rc, out, err)
    rc, out, err = ctl(b, "query", "nope", "1")
    assert rc == 1 and out == "" and "unknown_agent" in err, (rc, out, err)
    b.stop()
    check_clean(*ws)


def test_actorctl_json_prints_one_line_per_message():
    b = Broker().start()
    ws = workers(b, ["w1"])
    rc, out, err = ctl(b, "--json", "--id", "job-7", "query", "fanout",
                       '{"agent": "echo", "inputs": [10, 20, 30]}')
    assert rc == 0, (rc, out, err)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [m["type"] for m in lines] == ["event"] * 3 + ["result"], lines
    assert all(m["id"] == "job-7" and m["v"] == 1 for m in lines), lines
    assert [m["seq"] for m in lines[:3]] == [1, 2, 3], lines
    assert sorted(m["event"]["done"] for m in lines[:3]) == [0, 1, 2], lines
    assert lines[-1]["output"] == [10, 20, 30], lines
    rc, out, err = ctl(b, "--json", "query", "nope")
    assert rc == 1 and json.loads(out)["code"] == "unknown_agent", (rc, out, err)
    b.stop()
    check_clean(*ws)


def test_actorctl_usage_errors_exit_2():
    cases = [([], "no command"), (["frobnicate"], "frobnicate"), (["query"], "query"),
             (["query", "a", "b", "c"], "too many"),
             (["--timeout", "soon", "status"], "--timeout"), (["--bogus", "status"], "--bogus"),
             (["cancel"], "cancel"), (["status", "x"], "status"),
             (["--count", "0", "subscribe"], "--count")]
    for args, what in cases:
        rc, out, err = ctl(None, *args)
        assert rc == 2 and what in err, (args, rc, err)
    rc, out, err = ctl(None, "--help")
    assert rc == 0 and all(c in out for c in ("query", "publish", "subscribe", "status",
                                                "cancel", "--json", "--timeout")), out


def test_actorctl_without_a_broker_says_so():
    port = abtest.free_port()
    rc, out, err = ctl(None, "--broker", "tcp://127.0.0.1:%d" % port, "--timeout", "300",
                       "status")
    assert rc == 1 and "no reply" in err and str(port) in err, (rc, err)


def test_actorctl_status_lists_workers():
    b = Broker().start()
    ws = workers(b, ["wa", "wb"], capacity=3)
    rc, out, err = ctl(b, "status")
    assert rc == 0, (rc, out, err)
    assert "2 workers" in out and "capacity 6" in out, out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == {"wa", "wb"} and rows["wa"][1] == "3" and "echo," in rows["wa"], out
    rc, out, err = ctl(b, "--json", "status")
    st = json.loads(out)
    assert st["type"] == "result" and {w["name"] for w in st["output"]["workers"]} == {"wa", "wb"}, st
    b.stop()
    check_clean(*ws)


def test_actorctl_publish_and_subscribe():
    b = Broker().start()
    sub = Background(b, "--json", "--count", "2", "--timeout", "20000", "subscribe", "news.")
    deadline = time.monotonic() + 15
    while sub.proc.poll() is None and time.monotonic() < deadline:
        rc, _, err = ctl(b, "publish", "news.today", '{"headline": "hi"}')  # until it listens
        assert rc == 0, err
        ctl(b, "publish", "other.topic", "ignored")
        time.sleep(0.1)
    rc, out, err = sub.finish()
    assert rc == 0, (rc, out, err)
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2 and all(m["topic"] == "news.today" for m in lines), lines
    assert lines[0]["message"]["data"] == {"headline": "hi"}, lines
    b.stop()


# ---------------------------------------------------------------- real workers


def test_sleep_queries_overlap_over_two_workers():
    b = Broker().start()
    ws = workers(b, ["wa", "wb"], capacity=1)
    qs = [Background(b, "query", "sleep", '{"ms": 800}') for _ in range(2)]
    outs = []
    for q in qs:
        rc, out, err = q.finish()
        assert rc == 0, (rc, out, err)
        outs.append(json.loads(out))
    assert {o["worker"] for o in outs} == {"wa", "wb"}, outs
    assert all(o["slept_ms"] == 800 for o in outs), outs
    assert max(o["start_ms"] for o in outs) < min(o["end_ms"] for o in outs), outs
    b.stop()
    check_clean(*ws)


def test_fanout_spreads_over_both_workers():
    b = Broker().start()
    ws = workers(b, ["wa", "wb"], capacity=3)
    inputs = [{"ms": 300}] * 5
    rc, out, err = ctl(b, "--json", "query", "fanout",
                       json.dumps({"agent": "sleep", "inputs": inputs}))
    assert rc == 0, (rc, out, err)
    lines = [json.loads(line) for line in out.splitlines()]
    result = lines[-1]["output"]
    assert len(result) == 5 and {o["worker"] for o in result} == {"wa", "wb"}, result
    assert sorted(m["event"]["done"] for m in lines[:-1]) == [0, 1, 2, 3, 4], lines
    b.stop()
    check_clean(*ws)


def test_cancel_reaches_the_worker_and_its_cleanup_is_on_the_bus():
    b = Broker().start()
    ws = workers(b, ["w1"])
    sub = Subscriber(b.pub, b"")
    c = b.client()
    wait_until(lambda: (c.send({"v": 1, "type": "publish", "topic": "warm", "id": 1}),
                        sub.sock.poll(100))[1], 10, "the bus subscription")
    rc, out, err = ctl(b, "--cancel-after", "300", "query", "sleep", '{"ms": 20000}')
    assert rc == 1 and "error cancelled" in err, (rc, out, err)
    def cleanup_seen():
        for topic, m in sub.drain(0.2):
            if topic.startswith("query.sleep") and m.get("event") == {"cleanup": True}:
                return m
        return None
    m = wait_until(cleanup_seen, 10, "the cleanup event on the bus")
    assert m["agent"] == "sleep" and m["type"] == "event", m
    assert "event=job_cancel" in ws[0].log()
    sub.close()
    c.close()
    b.stop()
    check_clean(*ws)


def test_timeout_ends_the_query():
    b = Broker().start()
    ws = workers(b, ["w1"])
    t0 = time.monotonic()
    rc, out, err = ctl(b, "--timeout", "300", "query", "sleep", '{"ms": 20000}')
    assert rc == 1 and "error timeout" in err, (rc, out, err)
    assert time.monotonic() - t0 < 10
    # The worker is free again: its job was cancelled, not left running.
    wait_until(lambda: b.status()["in_flight"] == 0, 10, "in_flight back to 0")
    rc, out, err = ctl(b, "query", "echo", "1")
    assert rc == 0 and out.strip() == "1", (rc, out, err)
    b.stop()
    check_clean(*ws)


def test_killed_worker_gives_exactly_one_terminal():
    b = Broker().start()
    ws = workers(b, ["w1"])
    c = b.client()
    c.send(query("q1", "sleep", {"ms": 20000}))
    wait_until(lambda: b.status()["in_flight"] == 1, 10, "the query to reach the worker")
    ws[0].kill(signal.SIGKILL)
    got = c.collect(["q1"], timeout=15)
    term = got["q1"][-1]
    assert term["type"] == "error" and term["code"] == "worker_lost", got
    c.expect_quiet(0.5)
    c.close()
    b.stop()


def test_workers_come_back_after_a_broker_restart():
    b = Broker().start()
    ws = workers(b, ["wa", "wb"])
    b.kill()
    time.sleep(0.2)
    b2 = Broker(ports=b.ports).start()
    b2.wait_workers(["wa", "wb"], timeout=15)
    rc, out, err = ctl(b2, "query", "echo", '"back"')
    assert rc == 0 and json.loads(out) == "back", (rc, out, err)
    assert all("event=connect" in w.log() and "connection=2" in w.log() for w in ws)
    b2.stop()
    check_clean(*ws)


def test_worker_loads_hello_plugin():
    b = Broker().start()
    ws = workers(b, ["w1"], "--plugin", hello_plugin())
    rc, out, err = ctl(b, "--json", "query", "hello", '{"name": "Ada"}')
    assert rc == 0, (rc, out, err)
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["event"] == {"greeting": "hello, Ada"}, lines
    assert lines[-1]["output"] == {"greeting": "hello, Ada", "worker": "w1"}, lines
    b.stop()
    check_clean(*ws)


def test_sigterm_drains_a_real_worker():
    b = Broker().start()
    ws = workers(b, ["w1"])
    q = Background(b, "query", "sleep", '{"ms": 1000}')
    # On the worker, not only in flight at the broker: a SIGTERM while the work is still in
    # transit drains an empty worker, and the query ends worker_lost.
    wait_until(lambda: "event=job_start" in ws[0].log(), 10, "the query to reach the worker")
    ws[0].proc.send_signal(signal.SIGTERM)
    rc, out, err = q.finish()
    assert rc == 0 and json.loads(out)["slept_ms"] == 1000, (rc, out, err)
    assert ws[0].proc.wait(15) == 0, ws[0].log()[-3000:]
    log = ws[0].log()
    assert "event=drain" in log and "event=worker_exit code=0" in log, log[-3000:]
    wait_until(lambda: not b.status()["workers"], 10, "the worker to leave the status")
    b.stop()
    check_clean(*ws)


def test_actorctl_cancel_id_from_another_process():
    b = Broker().start()
    ws = workers(b, ["w1"])
    q = Background(b, "--id", "long-one", "query", "sleep", '{"ms": 20000}')
    wait_until(lambda: b.status()["in_flight"] == 1, 10, "the query to reach the worker")
    rc, out, err = ctl(b, "cancel", "long-one")
    assert rc == 0 and out == "cancelled long-one\n", (rc, out, err)
    rc, out, err = q.finish()
    assert rc == 1 and "error cancelled" in err, (rc, out, err)
    # Cancelling it again finds nothing in flight.
    rc, out, err = ctl(b, "cancel", "long-one")
    assert rc == 1 and "not in flight" in out, (rc, out, err)
    b.stop()
    check_clean(*ws)


if __name__ == "__main__":
    abtest.run_tests(globals())
