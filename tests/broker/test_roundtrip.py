"""Round trips through actor-broker with fake workers: DEALER gets events then the result,
REQ gets only the terminal, status, unknown_agent, a worker's own queries (fanout), the config
file."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, query, start_workers  # noqa: E402


def test_dealer_gets_events_then_result():
    b = Broker().start()
    start_workers(b, ["w1"])
    c = b.client()
    events, term = c.call(query("q1", "events", {"n": 3}))
    assert [e["type"] for e in events] == ["event"] * 3, events
    assert [e["seq"] for e in events] == [1, 2, 3], events
    assert [e["event"] for e in events] == [{"i": 0}, {"i": 1}, {"i": 2}], events
    assert all(e["id"] == "q1" for e in events)
    assert term == {"v": 1, "type": "result", "id": "q1", "output": {"n": 3}}, term
    events, term = c.call(query(7, "echo", {"x": [1, 2]}))
    assert events == [] and term["id"] == 7 and term["output"] == {"x": [1, 2]}, term
    c.expect_quiet()
    b.stop()


def test_req_gets_only_the_terminal():
    b = Broker().start()
    start_workers(b, ["w1"])
    c = b.client("req")
    for i in range(3):  # REQ lockstep: one request, exactly one reply, again
        c.send(query("r%d" % i, "events", {"n": 4}))
        frames = c.recv_frames()
        assert len(frames) == 1
        r = abtest.unpack(frames[0])
        assert r["type"] == "result" and r["id"] == "r%d" % i and r["output"] == {"n": 4}, r
    b.stop()


def test_dealer_with_delimiter_is_served_like_req():
    b = Broker().start()
    start_workers(b, ["w1"])
    c = b.client()
    c.send_frames([b"", abtest.pack(query("d1", "events", {"n": 2}))])
    frames = c.recv_frames()
    assert frames[0] == b"" and len(frames) == 2, frames
    r = abtest.unpack(frames[1])
    assert r["type"] == "result" and r["id"] == "d1", r
    c.expect_quiet()
    b.stop()


def test_unknown_agent():
    b = Broker().start()
    start_workers(b, ["w1"], agents=("echo",))
    c = b.client()
    _, term = c.call(query("u1", "nope"))
    assert term["type"] == "error" and term["code"] == "unknown_agent", term
    assert term["id"] == "u1" and "nope" in term["message"], term
    _, term = c.call(query("u2", "sleep", {"ms": 1}))  # hosted by nobody here
    assert term["code"] == "unknown_agent", term
    b.stop()


def test_status_shows_workers_capacity_in_flight_queued():
    b = Broker().start()
    start_workers(b, ["w1", "w2"], capacity=3)
    c = b.client()
    for i in range(8):
        c.send(query(i, "sleep", {"ms": 1500}))
    st = abtest.wait_until(lambda: (lambda s: s if s["queued"] == 2 else None)(b.status()),
                           5, "two queued")
    assert st["capacity"] == 6 and st["in_flight"] == 6 and st["clients"] == 1, st
    ws = sorted(st["workers"], key=lambda w: w["name"])
    assert [w["name"] for w in ws] == ["w1", "w2"], ws
    assert all(w["capacity"] == 3 and w["in_flight"] == 3 for w in ws), ws
    assert sorted(ws[0]["agents"]) == sorted(abtest.ALL_AGENTS), ws
    got = c.collect(range(8))
    assert all(m[-1]["type"] == "result" for m in got.values())
    st = b.status()
    assert st["in_flight"] == 0 and st["queued"] == 0 and st["clients"] == 0, st
    b.stop()


def test_worker_queries_other_agents_through_the_broker():
    b = Broker().start()
    ws = start_workers(b, ["w1", "w2"], capacity=2)
    c = b.client()
    events, term = c.call(query("f", "fanout", {"agent": "echo", "inputs": [1, "two", [3]]}))
    assert term["type"] == "result" and term["output"] == [1, "two", [3]], term
    assert sorted(e["event"]["done"] for e in events) == [0, 1, 2], events
    # a child that fails fails the parent
    _, term = c.call(query("g", "fanout", {"agent": "fail", "inputs": [1]}))
    assert term["type"] == "error" and term["code"] == "tool_error", term
    # a worker's query for an agent nobody hosts gets unknown_agent back on its socket
    _, term = c.call(query("h", "fanout", {"agent": "nope", "inputs": [1]}))
    assert term["code"] == "unknown_agent", term
    assert sum(w.stats().get("over_capacity", 0) for w in ws) == 0
    b.stop()


def test_config_file_sets_flags_and_flags_win():
    ports = {k: abtest.free_port() for k in ("clients", "workers", "pub", "sub")}
    path = os.path.join(abtest.tmpdir(), "broker.conf")
    with open(path, "w") as f:
        f.write("# test config\n")
        for k, p in ports.items():
            f.write("%s = tcp://127.0.0.1:%d\n" % (k, p))
        f.write("max-queue = 0   # no queue at all\nlog-level = debug\n")
    b = Broker("--config", path, "--max-queue", "1", ports=ports)
    b.start()
    start_workers(b, ["w1"], capacity=1)
    c = b.client()
    c.send(query(1, "sleep", {"ms": 500}))
    c.send(query(2, "sleep", {"ms": 10}))   # queued: the flag (1) beats the file (0)
    c.send(query(3, "sleep", {"ms": 10}))   # over max-queue
    got = c.collect([1, 2, 3])
    assert got[1][-1]["type"] == "result" and got[2][-1]["type"] == "result", got
    assert got[3][-1]["code"] == "overloaded", got
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
