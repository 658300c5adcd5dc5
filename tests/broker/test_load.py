"""Load through actor-broker: a thousand concurrent queries over two fake workers are all
answered exactly once, no worker ever holds more work than its declared capacity, and sleep
queries run at the same time on both workers (shown by the intervals they report)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, query, start_workers  # noqa: E402


def test_thousand_concurrent_queries_answered_exactly_once():
    b = Broker().start()
    ws = start_workers(b, ["w1", "w2"], capacity=8)
    c = b.client()
    ids = list(range(1000))
    for i in ids:
        if i % 2:
            c.send(query(i, "echo", {"n": i}))
        else:
            c.send(query("s%d" % i, "sleep", {"ms": 5}))
    keys = [i if i % 2 else "s%d" % i for i in ids]
    got = c.collect(keys, timeout=60)
    assert len(got) == 1000
    for k, msgs in got.items():
        assert len(msgs) == 1, msgs  # echo and sleep emit no events: the terminal only
        assert msgs[0]["type"] == "result", msgs
        if isinstance(k, int):
            assert msgs[0]["output"] == {"n": k}, msgs
    c.expect_quiet(0.5)
    st = [w.wait_stats(lambda s: s.get("done", 0) > 0 and s.get("works") == s.get("done"))
          for w in ws]
    assert sum(s["works"] for s in st) == 1000, st
    assert all(s["works"] > 0 for s in st), "both workers took work: %r" % st
    assert all(s["over_capacity"] == 0 for s in st), st
    b.stop()


def test_credit_is_respected():
    b = Broker().start()
    ws = [abtest.FakeWorker(b, "small", capacity=2).start(),
          abtest.FakeWorker(b, "big", capacity=5).start()]
    b.wait_workers(["small", "big"])
    c = b.client()
    for i in range(60):
        c.send(query(i, "sleep", {"ms": 30}))
    got = c.collect(range(60), timeout=30)
    assert all(m[-1]["type"] == "result" for m in got.values()), got
    small = ws[0].wait_stats(lambda s: s.get("works", 0) == s.get("done", -1) > 0)
    big = ws[1].wait_stats(lambda s: s.get("works", 0) == s.get("done", -1) > 0)
    assert small["over_capacity"] == 0 and big["over_capacity"] == 0, (small, big)
    assert small["max_concurrent"] == 2, small   # full, never over
    assert big["max_concurrent"] == 5, big
    assert small["works"] + big["works"] == 60
    b.stop()


def test_sleeps_overlap_across_two_workers():
    b = Broker().start()
    start_workers(b, ["w1", "w2"], capacity=1)
    c = b.client()
    c.send(query("a", "sleep", {"ms": 400}))
    c.send(query("b", "sleep", {"ms": 400}))
    got = c.collect(["a", "b"])
    a, bb = got["a"][-1]["output"], got["b"][-1]["output"]
    assert {a["worker"], bb["worker"]} == {"w1", "w2"}, (a, bb)
    # the intervals overlap: each started before the other ended
    assert a["start_ms"] < bb["end_ms"] and bb["start_ms"] < a["end_ms"], (a, bb)
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
