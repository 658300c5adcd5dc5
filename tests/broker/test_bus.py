"""The bus of actor-broker: a subscriber sees a query's events and result under
query.<agent>.<session or -> (the client's maps plus agent, session, job, worker,
invocation, accepted_ms and ts_ms), rejected queries'
errors too; a client `publish` reaches subscribers as [topic][{v, type:"event", topic,
data}]; what a publisher sends to the SUB endpoint comes out of PUB unchanged."""
import os
import sys

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, Subscriber, pack, query, start_workers  # noqa: E402


def test_subscriber_sees_query_events_and_result():
    # no startup grace: the query for an unknown agent below is refused, not held as a job
    b = Broker("--startup-grace-ms", "0").start()
    start_workers(b, ["w1"])
    sub = Subscriber(b.pub, b"query.").wait_joined(b, "query.")
    c = b.client()
    events, term = c.call(query("q", "events", {"n": 2}, session="s1"))
    got = [sub.recv() for _ in range(3)]
    assert [t for t, _ in got] == ["query.events.s1"] * 3, got
    watch = ("job", "worker", "invocation", "accepted_ms", "ts_ms")
    for mine, (_, theirs) in zip(events + [term], got):
        seen = {k: v for k, v in theirs.items() if k not in watch}
        assert seen == dict(mine, agent="events", session="s1"), (mine, theirs)
        # what a watcher needs to draw the query (tools/web): one job, its worker, its
        # invocation, accepted before it was published
        assert theirs["worker"] == "w1" and theirs["job"] == got[0][1]["job"], theirs
        assert theirs["invocation"].startswith("i-"), theirs
        assert 0 < theirs["accepted_ms"] <= theirs["ts_ms"], theirs
    # no session: "-"; REQ clients' events are published too
    r = b.client("req")
    r.send(query("r", "events", {"n": 1}))
    assert r.recv()["type"] == "result"
    t1, m1 = sub.recv()
    t2, m2 = sub.recv()
    assert t1 == t2 == "query.events.-", (t1, t2)
    assert m1["type"] == "event" and m1["agent"] == "events" and "session" not in m1, m1
    assert m2["type"] == "result" and m2["id"] == "r", m2
    # a refused query's error is published too
    c.call(query("u", "nope", session="s2"))
    t, m = sub.recv()
    assert t == "query.nope.s2" and m["code"] == "unknown_agent" and m["agent"] == "nope", m
    assert "ts_ms" in m and "job" not in m and "worker" not in m, m  # no job was made
    sub.close()
    b.stop()


def test_publish_reaches_a_subscriber():
    b = Broker().start()
    sub = Subscriber(b.pub, b"news").wait_joined(b, "news.")
    c = b.client()
    c.send({"v": 1, "type": "publish", "topic": "news.today", "data": {"x": [1, 2]}, "id": 9})
    assert c.recv() == {"v": 1, "type": "result", "id": 9, "output": None}
    t, m = sub.recv()
    assert t == "news.today", t
    assert m == {"v": 1, "type": "event", "topic": "news.today", "data": {"x": [1, 2]}}, m
    c.send({"v": 1, "type": "publish", "topic": "news.none"})  # no data, no id
    assert c.recv() == {"v": 1, "type": "result", "id": None, "output": None}
    assert sub.recv() == ("news.none", {"v": 1, "type": "event", "topic": "news.none",
                                        "data": None})
    b.stop()


def test_publisher_on_the_sub_endpoint_is_forwarded():
    b = Broker().start()
    sub = Subscriber(b.pub, b"ext.")
    pub = abtest.ctx().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(b.sub)
    body = pack({"v": 1, "type": "event", "topic": "ext.a", "data": 1})
    abtest.wait_until(lambda: pub.send_multipart([b"ext.a", body]) or sub.sock.poll(100), 5,
                      "a forwarded message")
    t, m = sub.recv()
    assert t == "ext.a" and m["data"] == 1, (t, m)
    pub.send_multipart([b"ext.bad"])  # not [topic][body]: dropped, logged
    pub.send_multipart([b"ext.b", b"opaque bytes"])  # bodies are forwarded as they are
    assert sub.sock.poll(5000) and sub.sock.recv_multipart() == [b"ext.b", b"opaque bytes"]
    abtest.wait_until(lambda: "event=bus_dropped" in b.log(), 5, "the drop to be logged")
    pub.close(0)
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
