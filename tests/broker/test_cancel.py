"""Cancellation and deadlines in actor-broker: a client `cancel` answers the query with
`cancelled` once and reaches the worker (which cleans up: its event shows on the bus);
timeout_ms shorter than the work gives `timeout` once, cancels the work on the worker and
travels to it as the time left; a queued query can time out or be cancelled before it runs."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, Subscriber, query, start_workers, wait_until  # noqa: E402


def _started(w, n=1):
    return w.wait_stats(lambda s: s.get("works", 0) >= n, 5, "work to start")


def test_cancel_reaches_the_worker_and_the_client_gets_cancelled_once():
    b = Broker().start()
    (w,) = start_workers(b, ["w1"])
    bus = Subscriber(b.pub, b"query.sleep.").wait_joined(b, "query.sleep.")
    c = b.client()
    c.send(query("c1", "sleep", {"ms": 5000}))
    _started(w)
    c.send({"v": 1, "type": "cancel", "id": "c1"})
    first, second = c.recv(), c.recv()
    assert first["type"] == "error" and first["code"] == "cancelled" and first["id"] == "c1"
    assert second == {"v": 1, "type": "result", "id": "c1", "output": {"cancelled": True}}
    st = w.wait_stats(lambda s: s["cancels"] and s["done"] == 1, 5, "the cancel")
    assert len(st["cancels"]) == 1, st
    # the worker's cleanup event still reaches the bus; the client hears nothing more
    seen = []
    abtest.wait_until(lambda: seen.extend(bus.drain(0.1)) or
                      any(m.get("event") == {"cleanup": True} for _, m in seen), 5,
                      "the cleanup event on the bus")
    assert sum(1 for _, m in seen if m["type"] == "error") == 1, seen  # one terminal there too
    c.expect_quiet(0.3)
    # the credit came back: the worker takes new work
    _, term = c.call(query("c2", "echo", 2))
    assert term["output"] == 2
    st = b.status()
    assert st["in_flight"] == 0, st
    b.stop()


def test_cancel_of_an_unknown_or_finished_query():
    b = Broker().start()
    start_workers(b, ["w1"])
    c = b.client()
    c.send({"v": 1, "type": "cancel", "id": "never"})
    assert c.recv() == {"v": 1, "type": "result", "id": "never",
                        "output": {"cancelled": False}}
    c.call(query("done", "echo", 1))
    c.send({"v": 1, "type": "cancel", "id": "done"})
    assert c.recv()["output"] == {"cancelled": False}
    # Another connection (an operator's actorctl) may cancel an id that is in flight for
    # exactly one client; an id two clients use is refused, and neither query is touched.
    other, third = b.client(), b.client()
    c.send(query("mine", "sleep", {"ms": 5000}))
    wait_until(lambda: b.status()["in_flight"] == 1, 10, "the query to start")
    other.send({"v": 1, "type": "cancel", "id": "mine"})
    assert other.recv()["output"] == {"cancelled": True}
    got = c.collect(["mine"])["mine"]
    assert [m["type"] for m in got] == ["error"] and got[0]["code"] == "cancelled", got
    c.send(query("shared", "sleep", {"ms": 300}))
    third.send(query("shared", "sleep", {"ms": 300}))
    wait_until(lambda: b.status()["in_flight"] == 2, 10, "both queries to start")
    other.send({"v": 1, "type": "cancel", "id": "shared"})
    refused = other.recv()
    assert refused["type"] == "error" and refused["code"] == "bad_request", refused
    assert c.collect(["shared"])["shared"][-1]["type"] == "result"
    assert third.collect(["shared"])["shared"][-1]["type"] == "result"
    b.stop()


def test_cancel_of_a_queued_query_never_reaches_a_worker():
    b = Broker().start()
    (w,) = start_workers(b, ["w1"], capacity=1)
    c = b.client()
    c.send(query("run", "sleep", {"ms": 1500}))
    c.send(query("wait", "sleep", {"ms": 1500}))
    _started(w)
    c.send({"v": 1, "type": "cancel", "id": "wait"})
    assert c.recv()["code"] == "cancelled"  # the query's terminal, then the cancel's reply
    assert c.recv() == {"v": 1, "type": "result", "id": "wait", "output": {"cancelled": True}}
    got = c.collect(["run"])
    assert got["run"][-1]["type"] == "result", got
    st = w.wait_stats(lambda s: s["done"] == 1)
    assert st["works"] == 1 and st["cancels"] == [], st
    b.stop()


def test_timeout_gives_timeout_once_and_cancels_the_work():
    b = Broker().start()
    (w,) = start_workers(b, ["w1"])
    c = b.client()
    c.send(query("t1", "sleep", {"ms": 3000}, timeout_ms=300))
    got = c.collect(["t1"], timeout=5)
    term = got["t1"][-1]
    assert term["type"] == "error" and term["code"] == "timeout", term
    c.expect_quiet(0.5)
    st = w.wait_stats(lambda s: len(s["cancels"]) == 1, 5, "the cancel")
    (job,) = st["timeouts"].keys()
    assert 0 < st["timeouts"][job] <= 300, st  # the time left travelled with the work
    assert st["cancels"] == [int(job)], st
    b.stop()


def test_queued_query_times_out_without_running():
    b = Broker().start()
    (w,) = start_workers(b, ["w1"], capacity=1)
    c = b.client()
    c.send(query("long", "sleep", {"ms": 1000}))
    c.send(query("short", "sleep", {"ms": 10}, timeout_ms=200))
    got = c.collect(["long", "short"], timeout=5)
    assert got["short"][-1]["code"] == "timeout", got
    assert got["long"][-1]["type"] == "result", got
    st = w.wait_stats(lambda s: s["done"] == 1)
    assert st["works"] == 1, st
    c.send(query("zero", "echo", 0, timeout_ms=0))  # already due: timeout, never dispatched
    assert c.recv()["code"] == "timeout"
    b.stop()


def test_worker_that_ignores_cancel_gives_its_credit_back_after_the_grace():
    b = Broker("--drain-ms", "300").start()
    (w,) = start_workers(b, ["w1"], capacity=1, extra=["--ignore-cancel"])
    c = b.client()
    c.send(query("a", "sleep", {"ms": 5000}))
    _started(w)
    c.send({"v": 1, "type": "cancel", "id": "a"})
    assert c.recv()["code"] == "cancelled"
    assert c.recv()["output"] == {"cancelled": True}
    # the worker keeps the job, but after drain-ms the broker takes the credit back
    c.send(query("b", "echo", "b"))
    assert c.collect(["b"], timeout=5)["b"][-1]["output"] == "b"
    assert "cancel_grace_over" in b.log()
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
