#!/usr/bin/env python3
"""Hardening (issue 11, part A): what one careless or hostile peer could do to everyone else
through the broker's client side, each held: cancel floods that starved heartbeats, one
client filling the queue, cancels and answers across CURVE keys, forged bus messages, the
--metrics bind rule, XPUB subscriptions, big answers, full sessions, /metrics slowloris.
Each test asserts states and counts, never timings."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import abtest  # noqa: E402
from abtest import Broker, FakeWorker, query, wait_until  # noqa: E402


def fill_queue(b, c, n, prefix="q", agent="sleep", ms=60000):
    """Sends n queries that stay queued behind a busy worker; waits until they are."""
    for i in range(n):
        c.send(query("%s%d" % (prefix, i), agent, {"ms": ms}))
    return wait_until(lambda: b.status()["queued"] >= n - 8, 60, "%d queued queries" % n,
                      every=0.2)


def test_cancel_flood_does_not_starve_worker_heartbeats():
    """Issue 11 point 9: cancels of ids not in flight scanned every job (14-31 ms each at 100k
    jobs); a flood of them held the loop for seconds and a healthy worker was declared lost.
    The lookup is indexed and liveness is judged only on a worker socket read empty."""
    b = Broker("--max-queue", "1000000", "--max-jobs", "1000000", "--max-client-inflight",
               "1000000", heartbeat_ms=100, liveness=3).start()
    w = FakeWorker(b, "w1", capacity=4).start()
    b.wait_workers(["w1"])
    hog = b.client()
    fill_queue(b, hog, 60000)
    w.wait_stats(lambda s: s["max_concurrent"] == 4, 10, "4 running sleeps")
    c = b.client()
    n = 400
    for i in range(n):
        c.send({"v": 1, "type": "cancel", "id": "not-in-flight-%d" % i})
    got = 0
    while got < n:
        r = c.recv(120)
        assert r["type"] == "result" and r["output"] == {"cancelled": False}, r
        got += 1
    st = b.status()
    assert [x["name"] for x in st["workers"]] == ["w1"], st["workers"]
    assert st["workers"][0]["in_flight"] == 4, st["workers"][0]
    assert w.stats()["readies"] == 1, "the worker had to start over: %r" % w.stats()
    assert "worker_lost" not in b.log(), b.log()[-2000:]
    c.close()
    hog.close()
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(dict(globals()))
