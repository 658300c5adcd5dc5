"""SIGTERM drains actor-broker: it stops accepting queries (`shutting_down`), lets the
accepted ones finish (queued ones included) up to --drain-ms, answers the rest with an error,
tells the workers `disconnect` and exits 0."""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, query, start_workers  # noqa: E402


def _sigterm(b):
    os.kill(b.proc.pid, signal.SIGTERM)


def test_sigterm_lets_in_flight_queries_finish_and_refuses_new_ones():
    b = Broker("--drain-ms", "5000").start()
    (w,) = start_workers(b, ["w1"], capacity=1)
    c = b.client()
    c.send(query("running", "sleep", {"ms": 2000}))
    c.send(query("queued", "sleep", {"ms": 100}))
    w.wait_stats(lambda s: s.get("works") == 1)
    _sigterm(b)
    abtest.wait_until(lambda: "event=draining" in b.log(), 5, "the drain to start")
    late = b.client()
    _, term = late.call(query("late", "echo", 1))
    assert term["code"] == "shutting_down" and term["id"] == "late", term
    st = b.status()  # still answered while draining
    assert st["in_flight"] == 1 and st["queued"] == 1, st
    got = c.collect(["running", "queued"], timeout=10)
    assert got["running"][-1]["type"] == "result", got
    assert got["queued"][-1]["type"] == "result", got
    assert b.proc.wait(10) == 0, b.log()
    b.check_clean()
    w.wait_stats(lambda s: s["disconnects"] >= 1, 5, "the disconnect")


def test_drain_limit_answers_the_rest_and_cancels_them():
    b = Broker("--drain-ms", "300").start()
    (w,) = start_workers(b, ["w1"], capacity=2)
    c = b.client("req")
    c.send(query("slow", "sleep", {"ms": 10000}))
    w.wait_stats(lambda s: s.get("works") == 1)
    _sigterm(b)
    r = c.recv(5)
    assert r["type"] == "error" and r["code"] == "shutting_down" and r["id"] == "slow", r
    assert b.proc.wait(10) == 0, b.log()
    b.check_clean()
    st = w.wait_stats(lambda s: len(s["cancels"]) == 1 and s["disconnects"] >= 1, 5,
                      "the cancel and the disconnect")
    assert st["done"] == 1, st
    assert "event=drain_timeout unanswered=1" in b.log()


def test_idle_broker_exits_at_once_and_second_signal_stops_a_drain():
    b = Broker("--drain-ms", "60000").start()
    start_workers(b, ["w1"])
    assert b.stop() == 0  # nothing in flight: no wait
    b2 = Broker("--drain-ms", "60000").start()
    start_workers(b2, ["w2"])
    c = b2.client()
    c.send(query("forever", "sleep", {"ms": 60000}))
    abtest.wait_until(lambda: b2.status()["in_flight"] == 1, 5, "the query to run")
    _sigterm(b2)
    abtest.wait_until(lambda: "event=draining" in b2.log(), 5, "the drain to start")
    _sigterm(b2)
    assert c.recv(5)["code"] == "shutting_down"
    assert b2.proc.wait(10) == 0
    b2.check_clean()


if __name__ == "__main__":
    abtest.run_tests(globals())
