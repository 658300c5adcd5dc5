"""Lifecycle: a client with an explicit routing id that resends a query id gets it answered
once (attached to the running query, during a drain too, or the remembered answer within
--dedup-window-ms, also after a broker restart with --sessions), within the bounds
--dedup-max sets. Drains themselves are test_drain.py's."""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, Client, query, start_workers  # noqa: E402
import zmq  # noqa: E402


class IdClient(Client):
    """A DEALER (or REQ) with an explicit routing id: the broker recognises it again."""

    def __init__(self, endpoint, rid, kind="dealer"):
        self.kind = kind
        self.sock = abtest.ctx().socket(zmq.DEALER if kind == "dealer" else zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, rid)
        self.sock.connect(endpoint)


def _works_exactly(c, w, n):
    """Asserts the worker ran exactly n jobs: one more query, answered after every earlier
    one reached the worker, makes the count n + 1 (a stray rerun would make it more)."""
    _, t = c.call(query("settle-%d" % n, "echo", n))
    assert t["type"] == "result", t
    st = w.wait_stats(lambda s: s["works"] >= n + 1, 5, "the settle query")
    assert st["works"] == n + 1, st


def _terminals(msgs):
    return [m for m in msgs if abtest.is_terminal(m)]


def test_resend_while_running_is_attached_and_runs_once():
    b = Broker().start()
    (w,) = start_workers(b, ["w1"], capacity=2)
    c = IdClient(b.clients, b"client-A")
    c.send(query("q1", "sleep", {"ms": 400}))
    w.wait_stats(lambda s: s["works"] == 1, 5, "the query to run")
    c.send(query("q1", "sleep", {"ms": 400}))  # the same id again, same connection
    got = c.collect(["q1"], timeout=10)
    assert got["q1"][-1]["type"] == "result", got
    c.expect_quiet(0.5)
    _works_exactly(c, w, 1)
    # A new connection under the same routing id (the client restarted) is attached too and
    # gets the one answer on the new connection.
    c.send(query("q2", "sleep", {"ms": 600}))
    w.wait_stats(lambda s: s["works"] == 3, 5, "q2 to run")
    c.close()
    c2 = IdClient(b.clients, b"client-A")
    c2.send(query("q2", "sleep", {"ms": 600}))
    got = c2.collect(["q2"], timeout=10)
    assert got["q2"][-1]["type"] == "result", got
    c2.expect_quiet(0.5)
    _works_exactly(c2, w, 3)
    b.stop()


def test_anonymous_client_still_gets_duplicate_id_and_reruns():
    b = Broker().start()
    (w,) = start_workers(b, ["w1"], capacity=2)
    c = b.client()  # libzmq generates its routing id: no dedup
    c.send(query("a", "sleep", {"ms": 300}))
    w.wait_stats(lambda s: s["works"] == 1, 5, "the query to run")
    _, term = c.call(query("a", "echo", 1))
    assert term["code"] == "duplicate_id", term
    got = c.collect(["a"], timeout=10)
    assert got["a"][-1]["type"] == "result", got
    _, again = c.call(query("a", "echo", 2))
    assert again["type"] == "result" and again["output"] == 2, again
    _works_exactly(c, w, 2)
    b.stop()


def test_resend_after_answer_gets_the_same_reply():
    b = Broker().start()
    (w,) = start_workers(b, ["w1"])
    c = IdClient(b.clients, b"client-B")
    _, first = c.call(query("r1", "sleep", {"ms": 10}))
    assert first["type"] == "result", first
    _, second = c.call(query("r1", "sleep", {"ms": 10}))
    assert second == first, (first, second)
    _, err1 = c.call(query("r2", "fail", "x"))
    _, err2 = c.call(query("r2", "fail", "x"))
    assert err1["type"] == "error" and err2 == err1, (err1, err2)
    _works_exactly(c, w, 2)
    # The same id from another client is another query.
    other = IdClient(b.clients, b"client-C")
    _, third = other.call(query("r1", "sleep", {"ms": 10}))
    assert third["type"] == "result" and third != first, third
    # A REQ client gets the remembered reply in its own envelope.
    r = IdClient(b.clients, b"client-B", kind="req")
    _, fourth = r.call(query("r1", "sleep", {"ms": 10}))
    assert fourth == first, fourth
    _works_exactly(r, w, 4)  # r took client-B's routing id over from c
    b.stop()


def test_window_and_entry_bound_forget_answers():
    b = Broker("--dedup-window-ms", "300", "--dedup-max", "2").start()
    (w,) = start_workers(b, ["w1"])
    c = IdClient(b.clients, b"client-D")
    for i in ("x1", "x2", "x3"):
        assert c.call(query(i, "echo", i))[1]["type"] == "result"
    assert c.call(query("x3", "echo", "x3"))[1]["output"] == "x3"  # remembered
    _works_exactly(c, w, 3)
    assert c.call(query("x1", "echo", "x1"))[1]["output"] == "x1"  # evicted: runs again
    _works_exactly(c, w, 5)  # the first settle query, and x1 again
    abtest.time.sleep(0.6)  # past the window: every answer forgotten
    assert c.call(query("x3", "echo", "x3"))[1]["output"] == "x3"
    _works_exactly(c, w, 7)  # x3 again, after two settle queries
    b.stop()


def test_broker_restart_with_sessions_answers_once():
    path = os.path.join(abtest.tmpdir(), "restart.db")
    b = Broker("--sessions", path).start()
    (w,) = start_workers(b, ["w1"], capacity=4)
    c = IdClient(b.clients, b"client-E")
    _, done = c.call(query("done", "sleep", {"ms": 10}))
    assert done["type"] == "result", done
    c.send(query("running", "sleep", {"ms": 800}))
    w.wait_stats(lambda s: s["works"] == 2, 5, "the second query to run")
    b.kill()  # SIGKILL: the running query's answer never leaves
    b2 = Broker("--sessions", path, ports=b.ports).start()
    b2.wait_workers(["w1"])  # the worker came back by itself
    assert "loaded=1" in b2.log(), b2.log()
    # The client resends what it had not been answered and what it is unsure of.
    c.send(query("done", "sleep", {"ms": 10}))
    c.send(query("running", "sleep", {"ms": 50}))
    got = c.collect(["done", "running"], timeout=10)
    assert _terminals(got["done"]) == [done], got
    assert got["running"][-1]["type"] == "result", got
    c.expect_quiet(0.5)
    # done was not run again; running ran again, once, on the new broker.
    _works_exactly(c, w, 3)
    b2.stop()


def test_resend_during_a_drain_is_attached_not_refused():
    b = Broker("--drain-ms", "5000").start()
    (w,) = start_workers(b, ["w1"], capacity=1)
    c = IdClient(b.clients, b"client-F")
    c.send(query("slow", "sleep", {"ms": 500}))
    w.wait_stats(lambda s: s["works"] == 1, 5, "the query to run")
    os.kill(b.proc.pid, signal.SIGTERM)
    abtest.wait_until(lambda: "event=draining" in b.log(), 5, "the drain to start")
    c.send(query("slow", "sleep", {"ms": 500}))  # unsure: resend
    got = c.collect(["slow"], timeout=10)
    assert _terminals(got["slow"])[0]["type"] == "result", got
    c.expect_quiet(0.3)
    assert b.proc.wait(10) == 0
    b.check_clean()


if __name__ == "__main__":
    abtest.run_tests(globals())
