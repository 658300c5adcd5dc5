"""Limits in actor-broker: past --max-queue a query gets `overloaded`, so does one past a
client's --max-client-inflight (other clients unaffected), a second in-flight query with the
same id from the same client gets `duplicate_id`, and --max-workers bounds the worker table."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, FakeWorker, query, start_workers  # noqa: E402


def test_overloaded_past_max_queue():
    b = Broker("--max-queue", "3", "--fair-share-from", "100").start()  # one client fills it
    (w,) = start_workers(b, ["w1"], capacity=2)
    c = b.client()
    for i in range(5):  # two run, three wait
        c.send(query(i, "sleep", {"ms": 1500}))
    w.wait_stats(lambda s: s.get("works", 0) == 2)
    abtest.wait_until(lambda: b.status()["queued"] == 3, 5, "three queued")
    c.send(query("over", "sleep", {"ms": 1}))
    r = c.recv()
    assert r["type"] == "error" and r["code"] == "overloaded" and r["id"] == "over", r
    assert "max-queue" in r["message"], r
    got = c.collect(range(5), timeout=10)
    assert all(m[-1]["type"] == "result" for m in got.values()), got
    _, term = c.call(query("after", "echo", 1))  # room again
    assert term["output"] == 1
    b.stop()


def test_overloaded_past_max_client_inflight():
    b = Broker("--max-client-inflight", "2").start()
    start_workers(b, ["w1"], capacity=8)
    c, other = b.client(), b.client()
    c.send(query(1, "sleep", {"ms": 400}))
    c.send(query(2, "sleep", {"ms": 400}))
    c.send(query(3, "sleep", {"ms": 1}))
    r = c.recv()
    assert r["id"] == 3 and r["code"] == "overloaded", r
    assert "max-client-inflight" in r["message"], r
    _, term = other.call(query(1, "echo", "other"))  # another client is not limited by c
    assert term["output"] == "other"
    got = c.collect([1, 2])
    assert all(m[-1]["type"] == "result" for m in got.values())
    _, term = c.call(query(3, "echo", 3))
    assert term["output"] == 3
    b.stop()


def test_duplicate_id_in_flight():
    b = Broker().start()
    start_workers(b, ["w1"])
    c = b.client()
    c.send(query("d", "sleep", {"ms": 300}))
    c.send(query("d", "echo", "second"))
    r = c.recv()
    assert r["type"] == "error" and r["code"] == "duplicate_id" and r["id"] == "d", r
    r = c.recv(5)
    assert r["type"] == "result" and r["output"]["slept_ms"] == 300, r  # the first one, once
    c.expect_quiet(0.3)
    _, term = c.call(query("d", "echo", "reused"))  # free again once answered
    assert term["output"] == "reused"
    other = b.client()  # ids are per client
    c.send(query("e", "sleep", {"ms": 200}))
    _, term = other.call(query("e", "echo", "other e"))
    assert term["output"] == "other e"
    assert c.recv()["id"] == "e"
    b.stop()


def test_max_workers_bounds_the_worker_table():
    b = Broker("--max-workers", "1").start()
    start_workers(b, ["w1"])
    FakeWorker(b, "w2").start()
    abtest.wait_until(lambda: "event=worker_refused" in b.log(), 5, "the refusal")
    st = b.status()
    assert [w["name"] for w in st["workers"]] == ["w1"], st
    _, term = b.client().call(query(1, "echo", 1))
    assert term["output"] == 1
    b.stop()


def test_max_jobs_bounds_the_job_table():
    b = Broker("--max-jobs", "2").start()
    start_workers(b, ["w1"], capacity=1)
    c = b.client()
    c.send(query(1, "sleep", {"ms": 300}))
    c.send(query(2, "sleep", {"ms": 300}))
    c.send(query(3, "sleep", {"ms": 300}))
    r = c.recv()
    assert r["id"] == 3 and r["code"] == "overloaded" and "max-jobs" in r["message"], r
    assert all(m[-1]["type"] == "result" for m in c.collect([1, 2]).values())
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
