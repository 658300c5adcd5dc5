"""actor-broker with the real actor-worker (env ACTOR_WORKER; skipped when it is not built):
echo round trip for DEALER and REQ, sleeps overlapping on two workers, fanout calling other
agents through the broker, a cancel whose cleanup event reaches the bus, a killed worker."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, Subscriber, query, start_workers  # noqa: E402


def test_echo_round_trip_dealer_and_req():
    b = Broker().start()
    start_workers(b, ["r1"], real=True)
    c = b.client()
    events, term = c.call(query("e", "echo", {"a": [1, "x", None]}))
    assert events == [] and term["type"] == "result", term
    assert term["output"] == {"a": [1, "x", None]}, term
    r = b.client("req")
    r.send(query("e2", "echo", "hi"))
    assert r.recv()["output"] == "hi"
    b.stop()


def test_sleeps_overlap_on_two_real_workers():
    b = Broker().start()
    start_workers(b, ["r1", "r2"], real=True, capacity=1)
    c = b.client()
    c.send(query("a", "sleep", {"ms": 400}))
    c.send(query("b", "sleep", {"ms": 400}))
    got = c.collect(["a", "b"])
    a, bb = got["a"][-1]["output"], got["b"][-1]["output"]
    assert {a["worker"], bb["worker"]} == {"r1", "r2"}, (a, bb)
    assert a["start_ms"] < bb["end_ms"] and bb["start_ms"] < a["end_ms"], (a, bb)
    b.stop()


def test_fanout_calls_through_the_broker():
    b = Broker().start()
    start_workers(b, ["r1", "r2"], real=True, capacity=4)
    c = b.client()
    events, term = c.call(query("f", "fanout", {"agent": "echo", "inputs": [1, 2, 3, 4]}),
                          timeout=15)
    assert term["type"] == "result" and term["output"] == [1, 2, 3, 4], term
    assert sorted(e["event"]["done"] for e in events) == [0, 1, 2, 3], events
    b.stop()


def test_cancel_runs_cleanup_on_the_real_worker():
    b = Broker().start()
    start_workers(b, ["r1"], real=True)
    bus = Subscriber(b.pub, b"query.sleep.").wait_joined(b, "query.sleep.")
    c = b.client()
    c.send(query("c", "sleep", {"ms": 10000, "announce": True}))
    assert c.recv()["event"] == {"started": True}  # inside its sleep: cleanup must run
    c.send({"v": 1, "type": "cancel", "id": "c"})
    assert c.recv()["code"] == "cancelled"
    assert c.recv()["output"] == {"cancelled": True}
    seen = []
    abtest.wait_until(lambda: seen.extend(bus.drain(0.1)) or
                      any(m.get("event") == {"cleanup": True} for _, m in seen), 5,
                      "the cleanup event on the bus")
    abtest.wait_until(lambda: b.status()["in_flight"] == 0, 5, "the credit to come back")
    b.stop()


def test_killed_real_worker_loses_its_query():
    b = Broker().start()
    (w,) = start_workers(b, ["r1"], real=True)
    c = b.client()
    c.send(query("k", "sleep", {"ms": 10000}))
    abtest.wait_until(lambda: b.status()["in_flight"] == 1, 5, "the sleep to start")
    w.kill()
    got = c.collect(["k"], timeout=10)
    assert got["k"][-1]["code"] == "worker_lost", got
    b.stop()


if __name__ == "__main__":
    if not abtest.real_worker_available():
        abtest.skip("ACTOR_WORKER is not set or not built")
    abtest.run_tests(globals())
