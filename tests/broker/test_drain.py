"""SIGTERM drains actor-broker: it stops accepting queries (`shutting_down`), lets the
accepted ones finish (queued ones included) up to --drain-ms, answers the rest with an error,
tells the workers `disconnect` and exits 0. SIGTERM drains the real actor-worker too: its
running jobs finish up to its --drain-ms, the rest are answered; every accepted query ends with
one terminal reply."""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, query, real_worker_available, start_workers  # noqa: E402


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


def test_broker_sigterm_drain_ends_every_query_once():
    b = Broker("--drain-ms", "600").start()
    start_workers(b, ["w1", "w2"], capacity=2)
    c = b.client()
    ids = ["d%d" % i for i in range(8)]
    for i, q in enumerate(ids):  # 4 short, 4 longer than the drain limit
        c.send(query(q, "sleep", {"ms": 100 if i % 2 == 0 else 5000}))
    abtest.wait_until(lambda: (lambda st: st["in_flight"] + st["queued"] == 8)(b.status()), 5,
                      "the queries to arrive")
    os.kill(b.proc.pid, signal.SIGTERM)
    got = c.collect(ids, timeout=15)
    kinds = [got[q][-1].get("code", "result") for q in ids]
    assert set(kinds) <= {"result", "shutting_down"}, kinds
    assert kinds.count("result") >= 2, kinds  # the short ones running at the signal finished
    c.expect_quiet(0.3)
    assert b.proc.wait(10) == 0
    b.check_clean()


def test_worker_sigterm_drain_finishes_or_answers_every_query():
    if not real_worker_available():
        abtest.skip("real worker not built (ACTOR_WORKER)")
    b = Broker("--drain-ms", "5000").start()
    (w,) = start_workers(b, ["rw"], real=True, capacity=4, extra=["--drain-ms", "500"])
    c = b.client()
    ids = ["short1", "short2", "long1", "long2"]
    for q in ids:
        c.send(query(q, "sleep", {"ms": 100 if q.startswith("short") else 10000}))
    abtest.wait_until(lambda: b.status()["in_flight"] == 4, 5, "the queries to run")
    # The broker counts a job once its work is sent; the worker holds it once it has read it
    # (a SIGTERM before then drains nothing and every query ends worker_lost). `tasks` goes
    # down the same connection after the work, so its reply counts what the worker read.
    obs = b.client()
    abtest.wait_until(lambda: obs.call({"v": 1, "type": "tasks", "id": "t", "worker": "rw"})
                      [1]["output"]["running_jobs"] == 4, 5, "the worker to hold the queries")
    w.kill(signal.SIGTERM)
    got = c.collect(ids, timeout=15)
    assert got["short1"][-1]["type"] == "result" and got["short2"][-1]["type"] == "result", got
    for q in ("long1", "long2"):
        assert got[q][-1]["type"] == "error", got[q]
        assert got[q][-1]["code"] in ("cancelled", "shutting_down", "worker_lost"), got[q]
    c.expect_quiet(0.3)
    assert w.proc.wait(10) == 0, w.log()[-2000:]
    abtest.wait_until(lambda: not b.status()["workers"], 5, "the worker to leave")
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
