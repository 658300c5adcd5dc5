"""Bad input to actor-broker (PROTOCOL.md, "Bad input": the broker MUST validate every message,
answer what it can address with an `error` naming the problem, log it, and keep serving).
Every malformed kind gets its error, and a good query right after it still works."""
import os
import sys

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, pack, query, start_workers  # noqa: E402

MAX_MSG = 65536


def _nested(depth):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


# (what, frames sent by a DEALER, expected code, words the message must contain)
CASES = [
    ("not msgpack", [b"\xc1\xc1\xc1"], "bad_request", "0xc1"),
    ("text", [b"hello world"], "bad_request", "trailing"),
    ("truncated", [pack(query("t", "echo", "x"))[:-2]], "bad_request", "offset"),
    ("msgpack non-map", [pack([1, 2, 3])], "bad_request", "not a map"),
    ("string", [pack("query")], "bad_request", "not a map"),
    ("wrong type of agent", [pack({"v": 1, "type": "query", "id": "x", "agent": 5})],
     "bad_request", "agent"),
    ("wrong type of id", [pack({"v": 1, "type": "query", "id": [1], "agent": "echo"})],
     "bad_request", "id"),
    ("wrong type of timeout", [pack(query("x", "echo", timeout_ms="soon"))],
     "bad_request", "timeout_ms"),
    ("negative timeout", [pack(query("x", "echo", timeout_ms=-5))], "bad_request",
     "timeout_ms"),
    ("missing agent", [pack({"v": 1, "type": "query", "id": "x"})], "bad_request", "agent"),
    ("missing id", [pack({"v": 1, "type": "query", "agent": "echo"})], "bad_request", "id"),
    ("missing v", [pack({"type": "query", "id": "x", "agent": "echo"})], "bad_request", "'v'"),
    ("missing type", [pack({"v": 1, "id": "x"})], "bad_request", "type"),
    ("unknown type", [pack({"v": 1, "type": "launch", "id": "x"})], "bad_request", "launch"),
    ("worker type from a client", [pack({"v": 1, "type": "ready", "name": "n", "capacity": 1,
                                         "agents": ["echo"]})], "bad_request", "ready"),
    ("unknown version", [pack({"v": 2, "type": "query", "id": "x", "agent": "echo"})],
     "unsupported_version", "2"),
    ("just over max-msg", [pack(query("big", "echo", "x" * (MAX_MSG + 100)))], "too_large",
     "max-msg"),
    ("deep nesting", [pack(query("deep", "echo", _nested(100)))], "too_large", "deeper"),
    ("huge map header", [b"\xdd\xff\xff\xff\xff"], None, "elements"),
    ("huge map count", [b"\xdf\xff\xff\xff\xff"], None, "elements"),
    ("huge string header", [b"\xdb\xff\xff\xff\xff"], "bad_request", "remain"),
    ("id too long", [pack(query("i" * 300, "echo"))], "too_large", "id"),
    ("agent name too long", [pack(query("x", "a" * 200))], "bad_request", "agent"),
    ("extra frames", [pack(query("x", "echo")), b"extra"], "bad_request", "2 frames"),
    ("empty frame", [b""], "bad_request", "empty"),
    ("cancel without id", [pack({"v": 1, "type": "cancel", "job": 3})], "bad_request", "id"),
    ("field twice", [b"\x84\xa1v\x01\xa4type\xa6status\xa2id\x01\xa2id\x02"], "bad_request",
     "twice"),
]

# Cases whose id could be read before the message failed: the error names the request.
KEEP_ID = {what: "x" for what in ("wrong type of agent", "wrong type of timeout",
                                  "negative timeout", "missing agent", "missing v", "missing type",
                                  "unknown type", "unknown version", "agent name too long")}


def test_an_error_after_the_id_was_read_carries_the_id():
    b = Broker().start()
    c = b.client()
    c.send({"v": 1, "type": "session.list", "id": "page-0", "limit": 0})
    r = c.recv()
    assert r["type"] == "error" and r["code"] == "bad_request" and "limit" in r["message"], r
    assert r["id"] == "page-0", r
    c.send({"v": 1, "type": "query", "id": 7, "agent": "echo", "timeout_ms": "soon"})
    r = c.recv()
    assert r["type"] == "error" and r["id"] == 7 and "timeout_ms" in r["message"], r
    b.stop()


def _good_query_works(c, n):
    _, term = c.call(query("good%d" % n, "echo", n))
    assert term == {"v": 1, "type": "result", "id": "good%d" % n, "output": n}, term


def test_every_malformed_kind_gets_an_error_and_the_broker_keeps_serving():
    # Every line logged: more than the default --log-bad-input (20 a second) come at once.
    b = Broker("--max-msg", str(MAX_MSG), "--log-bad-input", "100000").start()
    start_workers(b, ["w1"])
    c = b.client()
    for n, (what, frames, code, words) in enumerate(CASES):
        c.send_frames(frames)
        frames_back = c.recv_frames()
        assert len(frames_back) == 1, (what, frames_back)
        r = abtest.unpack(frames_back[0])
        assert r["type"] == "error", (what, r)
        # the request's id once the message was a map with a readable id; else nil
        assert r["id"] == KEEP_ID.get(what), (what, r)
        if code:
            assert r["code"] == code, (what, r)
        else:
            assert r["code"] in ("bad_request", "too_large"), (what, r)
        assert words in r["message"], (what, r)
        _good_query_works(c, n)
    c.expect_quiet(0.2)
    log = b.log()
    assert log.count("event=reply_error") >= len(CASES), "a log line per bad message"
    b.stop()


def test_errors_for_valid_requests_carry_their_id():
    b = Broker().start()
    start_workers(b, ["w1"])
    c = b.client()
    _, term = c.call(query("sess", "echo", session="s" * 300))
    assert term["code"] == "bad_request" and term["id"] == "sess", term
    assert "session" in term["message"], term
    for field in ("agent", "session"):  # names the broker passes on must be UTF-8
        m = query("u8", "echo", session="ok")
        m[field] = b"\xff\xfe"  # packed as a msgpack str (raw), not as bin
        c.send_frames([msgpack.packb(m, use_bin_type=False)])
        r = c.recv()
        assert r["code"] == "bad_request" and r["id"] == "u8", r
        assert field in r["message"] and "UTF-8" in r["message"], r
    c.send({"v": 1, "type": "work", "id": 5, "job": 1, "agent": "echo", "attempt": 1})
    r = c.recv()
    assert r["code"] == "bad_request" and "work" in r["message"], r
    _good_query_works(c, 1)
    b.stop()


def test_req_style_bad_input_is_answered_in_kind():
    b = Broker().start()
    start_workers(b, ["w1"])
    c = b.client()
    c.send_frames([b"", pack(query("x", "echo")), b"extra"])  # REQ envelope, extra frame
    frames = c.recv_frames()
    assert frames[0] == b"" and len(frames) == 2, frames
    r = abtest.unpack(frames[1])
    assert r["code"] == "bad_request" and "2 frames" in r["message"], r
    c.send_frames([b"", b""])  # REQ envelope, empty body
    frames = c.recv_frames()
    assert frames[0] == b"" and abtest.unpack(frames[1])["code"] == "bad_request", frames
    req = b.client("req")
    req.send({"v": 1, "type": "query", "id": 1})
    r = req.recv()
    assert r["code"] == "bad_request" and "agent" in r["message"], r
    req.send(query("ok", "echo", "fine"))  # the REQ socket is back in step
    assert req.recv()["output"] == "fine"
    _good_query_works(c, 2)
    b.stop()


def test_message_far_over_the_limit_costs_only_that_connection():
    b = Broker("--max-msg", str(MAX_MSG)).start()
    start_workers(b, ["w1"])
    c = b.client()
    c.send(query("huge", "echo", "x" * (4 * MAX_MSG)))  # past the socket's own limit
    c.expect_quiet(0.5)  # ZeroMQ drops the connection: nothing to answer
    c2 = b.client()
    _good_query_works(c2, 1)
    _good_query_works(c, 2)  # the DEALER reconnected by itself
    b.stop()


def _recv_past_heartbeats(w):
    """The next message to a registered worker that is not a heartbeat (the broker answers
    ready with one, and sends one whenever it has sent nothing else for an interval)."""
    while True:
        m = w.recv()
        if m["type"] != "heartbeat":
            return m


def test_bad_worker_messages_are_answered_and_ignored():
    b = Broker("--max-msg", str(MAX_MSG)).start()
    start_workers(b, ["w1"])
    w = abtest.Client(b.workers)  # a raw DEALER on the worker socket
    w.send_frames([b"\xc1"])
    r = w.recv()
    assert r["type"] == "error" and r["code"] == "bad_request", r
    w.send({"v": 1, "type": "heartbeat"})  # a stranger that never said ready
    assert w.recv()["type"] == "disconnect"
    w.send({"v": 1, "type": "ready", "name": "", "capacity": 1, "agents": ["echo"]})
    r = w.recv()
    assert r["code"] == "bad_request" and "name" in r["message"], r
    w.send_frames([msgpack.packb({"v": 1, "type": "ready", "name": b"\xc3\x28", "capacity": 1,
                                  "agents": ["echo"]}, use_bin_type=False)])
    r = w.recv()
    assert r["code"] == "bad_request" and "UTF-8" in r["message"], r
    w.send({"v": 1, "type": "ready", "name": "raw", "capacity": 0, "agents": ["echo"]})
    r = w.recv()
    assert r["code"] == "bad_request" and "capacity" in r["message"], r
    w.send({"v": 1, "type": "ready", "name": "raw", "capacity": 1, "agents": ["rawonly"]})
    b.wait_workers(["w1", "raw"])
    w.send({"v": 1, "type": "result", "job": 999999, "output": 1})  # no such job: ignored
    w.send({"v": 1, "type": "work", "job": 1, "agent": "echo", "attempt": 1})
    r = _recv_past_heartbeats(w)
    assert r["code"] == "bad_request" and "work" in r["message"], r
    c = b.client()
    _good_query_works(c, 1)
    # a result over max-msg (within the socket's slack) becomes too_large for its client
    c.send(query("big", "rawonly"))
    work = _recv_past_heartbeats(w)
    assert work["type"] == "work" and work["agent"] == "rawonly", work
    w.send({"v": 1, "type": "result", "job": work["job"], "output": "y" * (MAX_MSG + 10)})
    term = c.recv()
    assert term["code"] == "too_large" and term["id"] == "big", term
    _good_query_works(c, 2)
    w.close()
    b.stop()


def _mutants(rng, n):
    """n bad messages: random bytes, valid messages with random bytes changed, cut short or
    grown, and random frame counts."""
    seeds = [pack(query("g", "echo", {"k": [1, 2, "x"]}, session="s", timeout_ms=50)),
             pack({"v": 1, "type": "ready", "name": "g", "capacity": 2, "agents": ["zz"]}),
             pack({"v": 1, "type": "result", "job": 1, "output": [1, {"a": None}]}),
             pack({"v": 1, "type": "event", "job": 2, "event": "e"}),
             pack({"v": 1, "type": "cancel", "id": "g"}),
             pack({"v": 1, "type": "publish", "topic": "t", "data": 1}),
             pack({"v": 1, "type": "credit", "capacity": 3})]
    out = []
    for _ in range(n):
        kind = rng.randrange(4)
        if kind == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:
            body = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            if kind == 2:
                body = body[:rng.randrange(len(body))]
            elif kind == 3:
                body += bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
            body = bytes(body)
        frames = [body] * rng.choice([1, 1, 1, 2, 3]) if rng.random() < 0.9 else [b"", body]
        out.append(frames)
    return out


def test_random_garbage_on_both_sockets_while_serving():
    import random
    rng = random.Random(int(os.environ.get("ABTEST_SEED", "4")))
    b = Broker("--max-msg", str(MAX_MSG)).start()
    start_workers(b, ["w1", "w2"], capacity=4)
    bad_client, bad_worker, c = b.client(), abtest.Client(b.workers), b.client()
    sent = []
    for n, frames in enumerate(_mutants(rng, 3000)):
        (bad_client if n % 2 else bad_worker).send_frames(frames)
        if n % 100 == 0:
            c.send(query(n, "echo", n))
            sent.append(n)
    got = c.collect(sent, timeout=30)
    for n in sent:  # a garbage `ready` may have registered a bogus worker that never answers
        term = got[n][-1]
        assert term.get("output") == n or term.get("code") == "worker_lost", term
    # garbage workers go silent and are dropped; then everything works as before
    abtest.wait_until(lambda: {w["name"] for w in b.status()["workers"]} == {"w1", "w2"}, 10,
                      "only the real workers left")
    for n in range(5):
        _good_query_works(c, n)
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
