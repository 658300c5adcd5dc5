"""Invocations and sessions in the broker (proto/PROTOCOL.md, "Invocations and sessions" and
"Agent events") against a REAL actor-broker and FAKE workers (abtest.py's scripted `adk`
agent): the session lock (one invocation per session, arrival order, bounded waiters,
deadlines and cancels while waiting, released when a worker is lost), state and history in
work, the user's event first, events and their state_delta stored, sub-invocations (parent)
forwarded to the root client and stored with their branch, and a session that survives a
broker restart. Assertions are on order, counts and states, never on wall-clock time.
Env: ACTOR_BROKER."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import ADK_AGENTS, Broker, FakeWorker  # noqa: E402


def setup(*args, workers=("w1",), capacity=4):
    b = Broker(*args).start()
    ws = [FakeWorker(b, n, capacity=capacity, agents=ADK_AGENTS).start() for n in workers]
    b.wait_workers(workers)
    return b, ws


def adk(id, session=None, input=None, **kw):
    if session is not None:
        kw["session"] = session
    return abtest.query(id, "adk", input if input is not None else {}, **kw)


def gate():
    """A path the adk agent waits for (wait_file); returns (path, open_it)."""
    path = os.path.join(abtest.tmpdir(), "gate-%d" % time.monotonic_ns())

    def open_it():
        with open(path, "w"):
            pass
    return path, open_it


def call_ok(c, m, timeout=20.0):
    events, r = c.call(m, timeout)
    assert r["type"] == "result", r
    return events, r["output"]


def session_get(c, session, events=100):
    _, r = c.call({"v": 1, "type": "session.get", "id": "g", "session": session,
                   "events": events})
    return r


def until_event(c, pred, what, timeout=20.0):
    """Receives until a message matches pred; returns the messages up to and with it."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "never got %s; got %r" % (what, got)
        m = c.recv(left)
        got.append(m)
        if pred(m):
            return got


def mark(text):
    return {"content": {"role": "model", "parts": [{"text": text}]}}


def is_mark(m, qid, text):
    ev = m.get("event") if m.get("type") == "event" else None
    return (m.get("id") == qid and isinstance(ev, dict) and
            ev.get("content", {}).get("parts") == [{"text": text}])


# ---------------------------------------------------------------- state and events


def test_state_delta_applies_and_nil_deletes():
    b, _ = setup()
    c = b.client()
    delta1 = {"a": 1, "b": 2, "temp:t": 1, "user:lang": "en"}
    _, out1 = call_ok(c, adk("q1", "s1", {"emit": [{"actions": {"state_delta": delta1}}]}))
    assert out1["state"] == {}, out1
    _, out2 = call_ok(c, adk("q2", "s1", {"emit": [{"actions": {"state_delta":
                                                                 {"a": None, "c": 3}}}]}))
    assert out2["state"] == {"a": 1, "b": 2, "user:lang": "en"}, out2  # temp: not stored
    r = session_get(c, "s1")
    assert r["type"] == "result", r
    assert r["output"]["state"] == {"b": 2, "c": 3, "user:lang": "en"}, r
    assert r["output"]["app"] == "default" and r["output"]["user"] == "", r
    b.stop()


def test_user_event_is_first_and_history_excludes_it():
    b, _ = setup()
    c = b.client()
    _, out1 = call_ok(c, adk("q1", "s1", {"emit": [mark("one")]}, app="shop", user="ann"))
    assert re.fullmatch(r"i-[0-9a-f]{16}", out1["invocation"]), out1
    assert out1["history"] == [], out1  # a new session: nothing before this invocation
    r = session_get(c, "s1")["output"]
    assert (r["app"], r["user"]) == ("shop", "ann"), r
    first, second = r["events"]
    assert first["author"] == "user" and first["invocation"] == out1["invocation"], first
    assert re.fullmatch(r"e-[0-9a-f]{16}", first["id"]), first
    assert first["event"]["content"] == {"role": "user", "parts": [
        {"data": {"emit": [mark("one")]}}]}, first  # a non-string input is data
    assert second["author"] == "adk" and second["event"]["content"]["parts"] == [
        {"text": "one"}], second
    # A string input is text; the next invocation's history holds the first one's events
    # and not its own user event.
    _, out2 = call_ok(c, abtest.query("q2", "adk", "hello", session="s1", app="shop"))
    assert out2["invocation"] != out1["invocation"], out2
    assert [e["seq"] for e in out2["history"]] == [1, 2], out2["history"]
    r = session_get(c, "s1")["output"]
    assert r["events_total"] == 3, r
    third = r["events"][2]
    assert third["author"] == "user" and third["invocation"] == out2["invocation"], third
    assert third["event"]["content"]["parts"] == [{"text": "hello"}], third
    # Another app or user than the session's: not_found, and nothing was appended.
    _, e = c.call(adk("q3", "s1", app="bank"))
    assert e["type"] == "error" and e["code"] == "not_found", e
    assert session_get(c, "s1")["output"]["events_total"] == 3
    b.stop()


def test_history_goes_only_to_agents_whose_workers_ask_for_it():
    b = Broker().start()
    FakeWorker(b, "w1", agents=ADK_AGENTS, extra=["--no-history"]).start()
    b.wait_workers(["w1"])
    c = b.client()
    call_ok(c, adk("q1", "s1", {"emit": [mark("one")]}))
    _, out = call_ok(c, adk("q2", "s1"))
    assert "history" not in out, out  # no history_agents in its ready: none read or sent
    assert session_get(c, "s1")["output"]["events_total"] == 3  # the session is whole
    b.stop()


def test_history_is_bounded_by_events_and_bytes():
    b, _ = setup("--history-events", "3", "--history-bytes", "100000")
    c = b.client()
    for i in range(3):  # 2 events each: the user's and the agent's
        call_ok(c, adk("q%d" % i, "s1", {"emit": [mark("m%d" % i)]}))
    _, out = call_ok(c, adk("q9", "s1"))
    assert [e["seq"] for e in out["history"]] == [4, 5, 6], out["history"]
    b.stop()
    b2, _ = setup("--history-bytes", "0")
    c2 = b2.client()
    call_ok(c2, adk("q1", "s1", {"emit": [mark("x")]}))
    _, out = call_ok(c2, adk("q2", "s1"))
    assert out["history"] == [], out
    b2.stop()


def test_partial_plain_and_authorless_events_are_streamed_not_stored():
    b, _ = setup()
    c = b.client()
    emit = [{"raw": {"progress": 1}}, {"raw": "text"}, dict(mark("p"), partial=True),
            mark("final")]
    events, _ = call_ok(c, adk("q1", "s1", {"emit": emit}))
    assert len(events) == 4, events
    assert [e["seq"] for e in events] == [1, 2, 3, 4], events
    r = session_get(c, "s1")["output"]
    assert [e["author"] for e in r["events"]] == ["user", "adk"], r["events"]
    assert r["events"][1]["event"]["content"]["parts"] == [{"text": "final"}], r
    b.stop()


def test_refused_delta_gives_state_rejected_and_the_query_goes_on():
    b, _ = setup()
    c = b.client()
    bad = {"actions": {"state_delta": {"ok": 1, "": 2}}}
    events, out = call_ok(c, adk("q1", "s1", {"emit": [bad, mark("after")]}))
    kinds = [(e["event"].get("author"), e["event"].get("error_code")) for e in events]
    assert kinds == [("adk", None), ("broker", "state_rejected"), ("adk", None)], events
    assert "empty" in events[1]["event"]["error_message"], events[1]
    assert [e["seq"] for e in events] == [1, 2, 3], events
    r = session_get(c, "s1")["output"]
    assert r["state"] == {}, r  # nothing of the refused delta
    assert [e["author"] for e in r["events"]] == ["user", "adk"], r["events"]
    b.stop()


# ---------------------------------------------------------------- the session lock


def test_one_session_never_overlaps_while_two_sessions_do_must():
    b, _ = setup(workers=("w1", "w2"), capacity=1)
    c = b.client()
    # Two sessions: each holds until the gate opens, and the gate opens only once both have
    # started, so they ran at the same time (on the two workers).
    path, open_it = gate()
    c.send(adk("a", "s1", {"emit": [mark("start")], "wait_file": path}))
    c.send(adk("b", "s2", {"emit": [mark("start")], "wait_file": path}))
    seen = set()
    until_event(c, lambda m: (is_mark(m, m.get("id"), "start") and seen.add(m["id"]) is None
                              and seen == {"a", "b"}), "both sessions started")
    open_it()
    got = c.collect(["a", "b"])
    assert {got["a"][-1]["output"]["worker"], got["b"][-1]["output"]["worker"]} == {"w1", "w2"}
    # One session: the second query starts only after the first is answered, even though a
    # worker is free for it.
    path, open_it = gate()
    c.send(adk("c", "s3", {"emit": [mark("start")], "emit_end": [mark("end")],
                           "wait_file": path}))
    until_event(c, lambda m: is_mark(m, "c", "start"), "c started")
    c.send(adk("d", "s3", {"emit": [mark("start")], "emit_end": [mark("end")]}))
    assert b.status()["in_flight"] == 1  # d waits for the lock, not for a worker
    time.sleep(0.3)  # room for a wrong dispatch to show; the assertions are on order only
    open_it()
    got = c.collect(["c", "d"])
    # The session's log: all of c's events, then all of d's.
    r = session_get(c, "s3")["output"]
    stream = [(e["invocation"], e["author"], e["event"].get("content", {}).get("parts"))
              for e in r["events"]]
    inv_c, inv_d = got["c"][-1]["output"]["invocation"], got["d"][-1]["output"]["invocation"]
    assert [s[0] for s in stream] == [inv_c] * 3 + [inv_d] * 3, stream
    assert [s[1] for s in stream] == ["user", "adk", "adk"] * 2, stream
    b.stop()


def test_one_session_order_on_the_client_stream():
    b, _ = setup(workers=("w1", "w2"), capacity=2)
    c = b.client()
    path, open_it = gate()
    c.send(adk("c", "s3", {"emit": [mark("start")], "wait_file": path}))
    until_event(c, lambda m: is_mark(m, "c", "start"), "c started")
    c.send(adk("d", "s3", {"emit": [mark("start")]}))
    c.send(adk("e", "s3", {"emit": [mark("start")]}))
    time.sleep(0.3)
    open_it()
    seq = []
    while len([m for m in seq if abtest.is_terminal(m)]) < 3:
        seq.append(c.recv(20))
    labels = [(m["id"], m["type"]) for m in seq]
    assert labels == [("c", "result"), ("d", "event"), ("d", "result"), ("e", "event"),
                      ("e", "result")], labels
    b.stop()


def test_waiters_are_bounded_then_overloaded_must():
    b, _ = setup("--max-session-waiters", "2")
    c = b.client()
    path, open_it = gate()
    c.send(adk("a", "s1", {"emit": [mark("start")], "wait_file": path}))
    until_event(c, lambda m: is_mark(m, "a", "start"), "a started")
    c.send(adk("b", "s1"))
    c.send(adk("c", "s1"))
    _, r = c.call(adk("d", "s1"))
    assert r["id"] == "d" and r["type"] == "error" and r["code"] == "overloaded", r
    assert "max-session-waiters" in r["message"], r
    _, r = c.call(adk("x", "s2"))  # another session is not held up
    assert r["type"] == "result", r
    st = b.status()  # status (and /metrics) show the busy session and its line
    assert (st["sessions_locked"], st["session_waiters"]) == (1, 2), st
    open_it()
    got = c.collect(["a", "b", "c"])
    assert all(got[i][-1]["type"] == "result" for i in "abc"), got
    st = b.status()
    assert (st["sessions_locked"], st["session_waiters"]) == (0, 0), st
    b.stop()


def test_waiting_query_can_be_cancelled_and_keeps_its_deadline():
    b, ws = setup()
    c = b.client()
    path, open_it = gate()
    c.send(adk("a", "s1", {"emit": [mark("start")], "wait_file": path}))
    until_event(c, lambda m: is_mark(m, "a", "start"), "a started")
    c.send(adk("b", "s1"))
    c.send(adk("t", "s1", timeout_ms=50))
    c.send(adk("z", "s1"))
    c.send({"v": 1, "type": "cancel", "id": "b"})
    got = [c.recv(10) for _ in range(3)]  # b's error, the cancel's answer, t's timeout
    kinds = sorted((m["id"], m["type"], m.get("code") or str(m.get("output"))) for m in got)
    assert kinds == [("b", "error", "cancelled"), ("b", "result", "{'cancelled': True}"),
                     ("t", "error", "timeout")], got
    open_it()
    got = c.collect(["a", "z"])
    assert got["z"][-1]["type"] == "result", got["z"]
    # The worker ran a and z only: b and t never reached it.
    st = ws[0].wait_stats(lambda s: s["done"] >= 2)
    assert st["works"] == 2, st
    r = session_get(c, "s1")["output"]
    assert [e["author"] for e in r["events"]] == ["user", "adk", "user"], r["events"]
    b.stop()


def test_lost_worker_releases_the_session():
    b = Broker().start()
    w1 = FakeWorker(b, "w1", capacity=1, agents=ADK_AGENTS).start()
    b.wait_workers(["w1"])
    c = b.client()
    path, _ = gate()  # never opened
    c.send(adk("a", "s1", {"emit": [mark("start")], "wait_file": path}))
    until_event(c, lambda m: is_mark(m, "a", "start"), "a started on w1")
    c.send(adk("b", "s1"))
    w2 = FakeWorker(b, "w2", capacity=1, agents=ADK_AGENTS).start()
    b.wait_workers(["w1", "w2"])
    w1.kill()
    got = c.collect(["a", "b"])
    assert got["a"][-1]["code"] == "worker_lost", got["a"]
    assert got["b"][-1]["type"] == "result" and got["b"][-1]["output"]["worker"] == "w2", got
    del w2
    b.stop()


def test_retried_invocation_keeps_one_user_event():
    b = Broker().start()
    w1 = FakeWorker(b, "w1", capacity=1, agents=ADK_AGENTS).start()
    b.wait_workers(["w1"])
    c = b.client()
    path, open_it = gate()
    c.send(adk("a", "s1", {"emit": [mark("try")], "wait_file": path}, idempotent=True))
    until_event(c, lambda m: is_mark(m, "a", "try"), "a started on w1")
    FakeWorker(b, "w2", capacity=1, agents=ADK_AGENTS).start()
    b.wait_workers(["w1", "w2"])
    w1.kill()
    open_it()
    msgs = c.collect(["a"])["a"]
    out = msgs[-1]["output"]
    assert out["attempt"] == 2 and out["worker"] == "w2", out
    assert out["history"] == [], out  # its own first attempt is not history
    r = session_get(c, "s1")["output"]
    assert [e["author"] for e in r["events"]] == ["user", "adk", "adk"], r["events"]
    b.stop()


def test_cancelled_root_frees_the_session_and_late_child_events_stay_out():
    b, (w,) = setup()
    c = b.client()
    path, open_it = gate()
    kid = {"branch": "r.k", "input": {"emit": [mark("early")], "wait_file": path,
                                       "emit_end": [mark("late")]}}
    c.send(adk("r", "s1", {"children": [kid]}))
    until_event(c, lambda m: is_mark(m, "r", "early"), "the child's first event")
    c.send({"v": 1, "type": "cancel", "id": "r"})
    got = sorted((m["type"], m.get("code")) for m in (c.recv(10), c.recv(10)))
    assert got == [("error", "cancelled"), ("result", None)], got  # the query, the cancel
    _, r = c.call(adk("n", "s1", {"emit": [mark("next")]}))  # runs: the lock is free
    assert r["type"] == "result" and r["id"] == "n", r
    open_it()
    # The child's late event is in: the worker ended r (cancelled), n and then the child,
    # and a later answer of the same worker comes after it on the worker's connection.
    w.wait_stats(lambda s: s["done"] >= 3, 20, "the child to end")
    call_ok(c, adk("after", "s2"))
    r = session_get(c, "s1")["output"]
    texts = [e["event"].get("content", {}).get("parts", [{}])[0].get("text")
             for e in r["events"]]
    assert "late" not in texts and "early" in texts and "next" in texts, texts
    b.stop()


def test_shutdown_answers_running_and_waiting_invocations():
    b, _ = setup("--drain-ms", "300")
    c = b.client()
    path, _ = gate()  # never opened
    c.send(adk("a", "s1", {"emit": [mark("start")], "wait_file": path}))
    until_event(c, lambda m: is_mark(m, "a", "start"), "a started")
    c.send(adk("b", "s1"))
    c.send(adk("c", "s1"))
    assert b.status()["in_flight"] == 1
    b.proc.send_signal(abtest.signal.SIGTERM)
    got = c.collect(["a", "b", "c"])
    assert {got[i][-1]["code"] for i in "abc"} == {"shutting_down"}, got
    b.stop()  # exits 0 with a clean log (sanitizer builds: no leak)


# ---------------------------------------------------------------- sub-invocations


def test_child_events_reach_the_root_client_in_order_and_are_stored_must():
    b, _ = setup(workers=("w1", "w2"))
    c = b.client()
    kids = [{"branch": "root.k%d" % i, "input": {"emit": [mark("k%d-1" % i), mark("k%d-2" % i),
                                                           {"actions": {"state_delta":
                                                                        {"k%d" % i: i}}}]}}
            for i in range(2)]
    events, out = call_ok(c, adk("r", "s1", {"emit": [{"actions": {"state_delta": {"x": 1}}}],
                                             "children": kids, "emit_end": [mark("done")]}))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
    assert all(e["id"] == "r" for e in events), events
    texts = [e["event"].get("content", {}).get("parts", [{}])[0].get("text") for e in events]
    for i in range(2):
        assert texts.index("k%d-1" % i) < texts.index("k%d-2" % i), texts
    assert texts[-1] == "done", texts
    for i, k in enumerate(out["children"]):
        assert k["invocation"] == out["invocation"] and k["branch"] == "root.k%d" % i, k
        assert k["session"] == "s1" and "history" not in k, k
        # The root's write before the dispatch is there; its own write comes later, and its
        # sibling's may or may not have been stored yet (they run at once).
        assert k["state"].get("x") == 1 and set(k["state"]) <= {"x", "k%d" % (1 - i)}, k
    assert len(out["child_events"]) == 6, out  # the calling worker still gets them
    r = session_get(c, "s1")["output"]
    assert r["state"] == {"x": 1, "k0": 0, "k1": 1}, r
    stored = [(e["author"], e["event"].get("branch")) for e in r["events"]]
    assert stored[0] == ("user", None) and stored[1] == ("adk", None), stored
    assert sorted(stored[2:8]) == sorted([("adk", "root.k0")] * 3 + [("adk", "root.k1")] * 3)
    assert stored[8] == ("adk", None), stored
    assert all(e["invocation"] == out["invocation"] for e in r["events"]), r["events"]
    b.stop()


def test_nested_child_forwards_to_the_top():
    b, _ = setup()
    c = b.client()
    grandchild = {"branch": "a.b.c", "input": {"emit": [mark("deep")]}}
    child = {"branch": "a.b", "input": {"children": [grandchild]}}
    events, out = call_ok(c, adk("r", "s1", {"children": [child]}))
    assert [e["event"]["content"]["parts"][0]["text"] for e in events] == ["deep"], events
    assert events[0]["id"] == "r" and events[0]["seq"] == 1, events
    deep = out["children"][0]["children"][0]
    assert deep["invocation"] == out["invocation"] and deep["branch"] == "a.b.c", deep
    r = session_get(c, "s1")["output"]
    assert [e["event"].get("branch") for e in r["events"]] == [None, "a.b.c"], r
    b.stop()


def test_child_without_session_in_root_forwards_only():
    b, _ = setup()
    c = b.client()
    events, out = call_ok(c, adk("r", None, {"children": [{"input": {"emit": [mark("k")]}}]}))
    assert len(events) == 1 and events[0]["id"] == "r", events
    assert "invocation" not in out and "session" not in out["children"][0], out
    b.stop()


def test_bad_parents_and_sessions_are_refused_must():
    b, _ = setup()
    c = b.client()
    kids = [{"session": "other", "input": {}}, {"parent": 987654321, "input": {}}]
    _, out = call_ok(c, adk("r", "s1", {"children": kids}))
    e0, e1 = out["children"]
    assert e0["error"]["code"] == "bad_request" and "session" in e0["error"]["message"], e0
    assert e1["error"]["code"] == "bad_request" and "parent" in e1["error"]["message"], e1
    _, r = c.call(adk("x", "s1", parent=1))
    assert r["type"] == "error" and r["code"] == "bad_request", r
    assert "parent" in r["message"], r
    b.stop()


# ---------------------------------------------------------------- persistence


def test_session_survives_a_broker_restart():
    path = os.path.join(abtest.tmpdir(), "inv-%d.db" % time.monotonic_ns())
    b, _ = setup("--sessions", path)
    c = b.client()
    _, out1 = call_ok(c, adk("q1", "s1", {"emit": [{"actions": {"state_delta": {"n": 1}}}]}))
    c.close()
    b.stop()
    b2 = Broker("--sessions", path, ports=b.ports).start()
    b2.wait_workers(["w1"])  # the same fake worker comes back with ready
    c2 = b2.client()
    _, out2 = call_ok(c2, adk("q2", "s1", {"emit": [{"actions": {"state_delta": {"n": 2}}}]}))
    assert out2["state"] == {"n": 1}, out2
    assert [e["invocation"] for e in out2["history"]] == [out1["invocation"]] * 2, out2
    r = session_get(c2, "s1")["output"]
    assert r["state"] == {"n": 2} and r["events_total"] == 4, r
    b2.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
