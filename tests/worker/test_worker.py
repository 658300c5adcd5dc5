"""actor-worker against a FAKE broker written here (a ROUTER on a free loopback port), so that
every message the worker sends can be checked and every reply scripted: ready, heartbeats,
reconnects after `disconnect` and after silence, jobs (echo, sleep, hello.so), cancel with its
cleanup event, timeout_ms, sub-queries (fanout) answered out of order, SIGTERM drain, bad input
and bad flags. Env: ACTOR_WORKER (the binary), ACTOR_PLUGIN_HELLO (examples/plugin/hello.so)."""
import os
import signal
import sys
import time

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import pack, unpack, spawn, kill_proc, read_log, wait_until, free_port  # noqa: E402


class FakeBroker:
    """A ROUTER the worker connects to; the test plays the broker. Like a real broker it
    answers the worker's heartbeats (unless told to play dead), so the worker keeps the
    connection while a test waits."""

    def __init__(self, port=None, heartbeats=True):
        self.heartbeats = heartbeats
        self.sock = abtest.ctx().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.port = port or free_port()
        self.sock.bind("tcp://127.0.0.1:%d" % self.port)
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.ident = None
        self.lent = []  # capacities of the credits a job waiting on sub-queries sent

    def recv(self, timeout=5.0, skip_heartbeats=True):
        """The next message from a worker (heartbeats skipped); remembers its identity."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                raise AssertionError("the worker sent nothing within %.1fs" % timeout)
            frames = self.sock.recv_multipart()
            assert len(frames) == 2, "expected [identity][body], got %r" % (frames,)
            self.ident = frames[0]
            m = unpack(frames[1])
            assert m.get("v") == 1, m
            if m["type"] == "heartbeat" and self.heartbeats:
                try:
                    self.send({"type": "heartbeat"})
                except zmq.ZMQError:  # EHOSTUNREACH: it has just left
                    pass
            if skip_heartbeats and m["type"] == "heartbeat":
                continue
            if m["type"] == "credit" and m.get("capacity"):  # lending (worker --max-lent):
                self.lent.append(m["capacity"])              # the drain's credit is 0
                continue
            return m

    def expect(self, type_, timeout=5.0):
        m = self.recv(timeout)
        assert m["type"] == type_, "expected %s, got %r" % (type_, m)
        return m

    def send(self, m, ident=None):
        self.sock.send_multipart([ident or self.ident, pack(dict(m, v=1))])

    def send_raw(self, body):
        self.sock.send_multipart([self.ident, body])

    def work(self, job, agent, input=None, **kw):
        m = {"type": "work", "job": job, "agent": agent, "attempt": 1}
        if input is not None:
            m["input"] = input
        m.update(kw)
        self.send(m)

    def until_terminal(self, job, timeout=5.0, others=None):
        """Messages for job until its result/error: (events, terminal). Messages about other
        things go to the list others, when given."""
        events = []
        while True:
            m = self.recv(timeout)
            if m.get("job") != job:
                if others is not None:
                    others.append(m)
                continue
            if m["type"] == "event":
                events.append(m["event"])
            elif m["type"] in ("result", "error"):
                return events, m

    def expect_quiet(self, seconds=0.3):
        """Asserts nothing but heartbeats and lending credits comes for a while."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0 or not self.sock.poll(max(1, int(left * 1000))):
                break
            frames = self.sock.recv_multipart()
            self.ident = frames[0]
            m = unpack(frames[1])
            if m["type"] == "heartbeat":
                if self.heartbeats:
                    self.send({"type": "heartbeat"})
                continue
            if m["type"] == "credit" and m.get("capacity"):
                self.lent.append(m["capacity"])
                continue
            raise AssertionError("unexpected message: %r" % (m,))

    def close(self):
        self.sock.close(0)


def worker_exe():
    exe = os.environ.get("ACTOR_WORKER")
    assert exe and os.path.isfile(exe), "set ACTOR_WORKER to the actor-worker binary"
    return exe


def start_worker(fb, *args, name="w1", hb=200, capacity=4):
    argv = [worker_exe(), "--broker", fb.endpoint, "--name", name, "--heartbeat-ms", str(hb),
            "--capacity", str(capacity), "--log-level", "debug"] + list(args)
    return spawn(argv, "worker-%s-%d.log" % (name, fb.port))


def check_clean(p):
    text = read_log(p)
    for mark in abtest.SANITIZER_MARKS:
        assert mark not in text, "worker log has %r:\n%s" % (mark, text[-4000:])


def stop(p, fb):
    """SIGTERM: the worker must drain, say disconnect and exit 0 with a clean log."""
    p.send_signal(signal.SIGTERM)
    fb.expect("credit")
    fb.expect("disconnect")
    assert p.wait(10) == 0, read_log(p)[-3000:]
    check_clean(p)
    fb.close()


def hello_plugin():
    path = os.environ.get("ACTOR_PLUGIN_HELLO")
    assert path and os.path.isfile(path), "set ACTOR_PLUGIN_HELLO to hello.so"
    return path


# ---------------------------------------------------------------- connection


def test_worker_announces_itself_with_ready():
    fb = FakeBroker()
    p = start_worker(fb, capacity=7, name="alpha")
    r = fb.expect("ready")
    assert r["name"] == "alpha" and r["capacity"] == 7 and r["heartbeat_ms"] == 200, r
    assert {"echo", "sleep", "fanout"} <= set(r["agents"]), r
    stop(p, fb)


def test_worker_heartbeats_while_idle():
    fb = FakeBroker()
    p = start_worker(fb, hb=50)
    fb.expect("ready")
    beats = 0
    end = time.monotonic() + 2.0
    while beats < 3 and time.monotonic() < end:
        m = fb.recv(1.0, skip_heartbeats=False)  # answered: the broker stays alive
        assert m["type"] == "heartbeat", m
        beats += 1
    assert beats == 3
    stop(p, fb)


def test_worker_reconnects_after_disconnect():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    first = fb.ident
    fb.send({"type": "disconnect"})
    r = fb.expect("ready")
    assert fb.ident != first, "a fresh socket must say ready again"
    fb.work(1, "echo", "after")
    _, t = fb.until_terminal(1)
    assert t["type"] == "result" and t["output"] == "after", t
    stop(p, fb)


def test_worker_reconnects_when_broker_is_silent():
    fb = FakeBroker(heartbeats=False)
    p = start_worker(fb, hb=50)  # liveness 3: lost after 150 ms of silence
    fb.expect("ready")
    first = fb.ident
    r = fb.expect("ready", timeout=3.0)  # we never answer: it must start over
    assert fb.ident != first and r["name"] == "w1", r
    assert "broker_silent" in read_log(p)
    stop(p, fb)


def test_worker_survives_broker_restart():
    fb = FakeBroker()
    port = fb.port
    p = start_worker(fb, hb=50)
    fb.expect("ready")
    fb.close()
    time.sleep(0.3)
    fb = FakeBroker(port)  # a new broker on the same port knows nobody
    m = fb.recv(5.0, skip_heartbeats=False)
    if m["type"] == "heartbeat":
        fb.send({"type": "disconnect"})  # what a broker says to a worker it does not know
        m = fb.expect("ready")
    assert m["type"] == "ready", m
    fb.work(1, "echo", 1)
    assert fb.until_terminal(1)[1]["output"] == 1
    stop(p, fb)


# ---------------------------------------------------------------- jobs


def test_worker_answers_each_job_exactly_once():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(1, "echo", {"a": [1, 2.5, None, True, "x"]})
    fb.work(2, "echo")  # no input: nil
    fb.work(3, "nope", 1)
    got = {}
    while len(got) < 3:
        m = fb.recv()
        assert m["type"] in ("result", "error"), m
        assert m["job"] not in got, "second answer for job %r" % m["job"]
        got[m["job"]] = m
    assert got[1] == {"v": 1, "type": "result", "job": 1,
                      "output": {"a": [1, 2.5, None, True, "x"]}}, got[1]
    assert got[2]["type"] == "result" and got[2]["output"] is None, got[2]
    assert got[3]["type"] == "error" and got[3]["code"] == "unknown_agent", got[3]
    fb.expect_quiet()
    stop(p, fb)


def test_worker_runs_jobs_concurrently():
    fb = FakeBroker()
    p = start_worker(fb, capacity=4)
    fb.expect("ready")
    for j in range(1, 5):
        fb.work(j, "sleep", {"ms": 300})
    outs = [fb.until_terminal(j, 5)[1] for j in range(1, 5)]
    assert all(o["type"] == "result" for o in outs), outs
    starts = [o["output"]["start_ms"] for o in outs]
    ends = [o["output"]["end_ms"] for o in outs]
    assert all(o["output"]["slept_ms"] == 300 and o["output"]["worker"] == "w1" for o in outs)
    assert max(starts) < min(ends), "the four sleeps did not overlap: %r" % list(zip(starts, ends))
    stop(p, fb)


def test_worker_cancel_runs_cleanup_then_answers_cancelled():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(9, "sleep", {"ms": 10000})
    time.sleep(0.1)
    fb.send({"type": "cancel", "job": 9})
    events, t = fb.until_terminal(9)
    assert events == [{"cleanup": True}], events
    assert t["type"] == "error" and t["code"] == "cancelled", t
    fb.send({"type": "cancel", "job": 9})  # again, and for a job never seen: nothing happens
    fb.send({"type": "cancel", "job": 12345})
    fb.expect_quiet()
    stop(p, fb)


def test_worker_cancel_before_the_job_ran():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    work = pack({"v": 1, "type": "work", "job": 5, "agent": "sleep", "input": {"ms": 5000},
                 "attempt": 1})
    cancel = pack({"v": 1, "type": "cancel", "job": 5})
    fb.send_raw(work)
    fb.send_raw(cancel)  # likely read in the same pass, before the job's task ran
    events, t = fb.until_terminal(5)
    assert t["type"] == "error" and t["code"] == "cancelled", t
    fb.expect_quiet()
    stop(p, fb)


def test_worker_timeout_ms_becomes_the_job_deadline():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    t0 = time.monotonic()
    fb.work(3, "sleep", {"ms": 10000}, timeout_ms=200)
    events, t = fb.until_terminal(3)
    assert t["type"] == "error" and t["code"] == "timeout", t
    assert events == [{"cleanup": True}], events
    assert time.monotonic() - t0 < 5.0
    stop(p, fb)


def test_worker_job_that_waits_after_starting_inline_behaves_as_its_own_task():
    """A job runs inline on the connection's task until it first waits, then takes that task
    over (worker/README.md): what it emitted before the wait comes first, the connection is
    served while it waits (an echo behind it answers at once), `tasks` lists its task under
    its agent's name and job, a cancel reaches its wait and a timeout_ms bounds it."""
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(1, "sleep", {"ms": 10000, "announce": True})
    fb.work(2, "echo", {"x": 1})
    fb.work(3, "sleep", {"ms": 10000, "announce": True}, timeout_ms=300)
    others = []
    events, t = fb.until_terminal(2, others=others)
    assert t["type"] == "result" and t["output"] == {"x": 1}, t
    assert {"type": "event", "job": 1, "event": {"started": True}, "v": 1} in others, others
    events, t = fb.until_terminal(3)
    assert events == [{"started": True}, {"cleanup": True}], events
    assert t["type"] == "error" and t["code"] == "timeout", t
    fb.send({"type": "tasks", "job": 77})
    while True:
        m = fb.recv()
        if m["type"] == "tasks_reply" and m.get("job") == 77:
            break
    mine = [x for x in m["output"]["tasks"] if x.get("job") == 1]
    assert len(mine) == 1 and mine[0]["name"] == "sleep", m["output"]["tasks"]
    assert mine[0]["state"] == "waiting" and mine[0]["waits_on"] == "sleep", mine
    fb.send({"type": "cancel", "job": 1})
    events, t = fb.until_terminal(1)
    assert events == [{"cleanup": True}], events  # started came before the echo's result
    assert t["type"] == "error" and t["code"] == "cancelled", t
    fb.expect_quiet()
    stop(p, fb)


def test_worker_rejects_bad_input_to_sleep():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(1, "sleep", {"ms": "soon"})
    _, t = fb.until_terminal(1)
    assert t["type"] == "error" and t["code"] == "bad_input" and "ms" in t["message"], t
    stop(p, fb)


def test_worker_ignores_garbage_and_keeps_working():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.send_raw(b"\xc1not msgpack")
    fb.send_raw(pack({"v": 2, "type": "work", "job": 1, "agent": "echo", "attempt": 1}))
    fb.send_raw(pack({"v": 1, "type": "work", "agent": "echo"}))  # no job
    fb.sock.send_multipart([fb.ident, b"two", b"frames"])
    fb.work(2, "echo", "still here")
    _, t = fb.until_terminal(2)
    assert t["output"] == "still here", t
    assert "bad_message" in read_log(p)
    stop(p, fb)


# ---------------------------------------------------------------- sub-queries


def fanout_queries(fb, n):
    """Receives the n sub-queries of a fanout: {query id: input}."""
    qs = {}
    while len(qs) < n:
        m = fb.expect("query")
        assert isinstance(m["id"], int) and m["agent"] == "echo", m
        qs[m["id"]] = m["input"]
    return qs


def test_worker_fanout_calls_through_the_broker():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(1, "fanout", {"agent": "echo", "inputs": ["a", "b", "c"]})
    qs = fanout_queries(fb, 3)
    by_input = {v: k for k, v in qs.items()}
    # Answer out of order, with a child event and a reply for an id never sent.
    fb.send({"type": "result", "id": 999, "output": "stray"})
    fb.send({"type": "event", "id": by_input["c"], "seq": 1, "event": {"x": 1}})
    for inp in ("c", "a", "b"):
        fb.send({"type": "result", "id": by_input[inp], "output": inp.upper()})
    events, t = fb.until_terminal(1)
    assert t["type"] == "result" and t["output"] == ["A", "B", "C"], t
    assert events == [{"done": 2}, {"done": 0}, {"done": 1}], events
    fb.expect_quiet()
    stop(p, fb)


def test_worker_lends_the_slot_of_a_job_waiting_on_sub_queries():
    """While a fanout waits on its children the worker announces capacity + 1 (the job lends
    its slot, so nested agents cannot hold every slot), and capacity again once it ends."""
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(1, "fanout", {"agent": "echo", "inputs": ["a", "b"]})
    qs = fanout_queries(fb, 2)
    wait_until(lambda: fb.expect_quiet(0.05) or fb.lent, 10, "a lending credit")
    assert fb.lent == [5], fb.lent
    for q, inp in qs.items():
        fb.send({"type": "result", "id": q, "output": inp})
    _, t = fb.until_terminal(1)
    assert t["type"] == "result", t
    wait_until(lambda: fb.expect_quiet(0.05) or len(fb.lent) >= 2, 10, "the slot back")
    assert fb.lent == [5, 4], fb.lent
    stop(p, fb)


def test_worker_max_lent_0_lends_nothing():
    fb = FakeBroker()
    p = start_worker(fb, "--max-lent", "0")
    fb.expect("ready")
    fb.work(1, "fanout", {"agent": "echo", "inputs": ["a"]})
    for q, inp in fanout_queries(fb, 1).items():
        fb.send({"type": "result", "id": q, "output": inp})
    _, t = fb.until_terminal(1)
    assert t["type"] == "result", t
    fb.expect_quiet()
    assert fb.lent == [], fb.lent
    stop(p, fb)


def test_worker_fanout_fails_with_the_childs_error_and_cancels_the_rest():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(1, "fanout", {"agent": "echo", "inputs": [1, 2, 3]})
    qs = fanout_queries(fb, 3)
    ids = sorted(qs)
    fb.send({"type": "error", "id": ids[1], "code": "tool_error", "message": "boom"})
    others = []
    events, t = fb.until_terminal(1, others=others)
    assert t["type"] == "error" and t["code"] == "tool_error" and "boom" in t["message"], t
    assert events == [{"done": 1}], events
    cancels = {m["id"] for m in others if m["type"] == "cancel"}
    assert cancels == {ids[0], ids[2]}, others
    stop(p, fb)


def test_worker_cancelled_fanout_cancels_its_children():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(1, "fanout", {"agent": "echo", "inputs": [1, 2]})
    qs = fanout_queries(fb, 2)
    fb.send({"type": "cancel", "job": 1})
    seen, cancels = None, set()
    while seen is None or len(cancels) < 2:
        m = fb.recv()
        if m["type"] == "cancel":
            cancels.add(m["id"])
        elif m.get("job") == 1 and m["type"] == "error":
            seen = m
    assert seen["code"] == "cancelled" and cancels == set(qs), (seen, cancels)
    stop(p, fb)


def test_worker_fanout_child_timeout_is_bounded_by_the_parent():
    fb = FakeBroker()
    p = start_worker(fb)
    fb.expect("ready")
    fb.work(1, "fanout", {"agent": "echo", "inputs": [1]}, timeout_ms=5000)
    m = fb.expect("query")
    assert 0 < m["timeout_ms"] <= 5000, m
    fb.send({"type": "result", "id": m["id"], "output": 1})
    assert fb.until_terminal(1)[1]["output"] == [1]
    stop(p, fb)


# ---------------------------------------------------------------- plugins, drain, flags


def test_worker_loads_a_plugin():
    fb = FakeBroker()
    p = start_worker(fb, "--plugin", hello_plugin())
    r = fb.expect("ready")
    assert "hello" in r["agents"] and "echo" in r["agents"], r
    fb.work(1, "hello", {"name": "Ada"})
    events, t = fb.until_terminal(1)
    assert events == [{"greeting": "hello, Ada"}], events
    assert t["output"] == {"greeting": "hello, Ada", "worker": "w1"}, t
    fb.work(2, "hello", "Bob")
    assert fb.until_terminal(2)[1]["output"]["greeting"] == "hello, Bob"
    stop(p, fb)


def test_worker_with_a_missing_plugin_exits_1():
    fb = FakeBroker()
    p = start_worker(fb, "--plugin", "/nonexistent/plugin.so")
    assert p.wait(10) == 1
    assert "plugin_failed" in read_log(p) and "/nonexistent/plugin.so" in read_log(p)
    check_clean(p)
    fb.close()


def test_worker_sigterm_drains_running_jobs():
    fb = FakeBroker()
    p = start_worker(fb, "--drain-ms", "5000")
    fb.expect("ready")
    fb.work(1, "sleep", {"ms": 400})
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    m = fb.expect("credit")
    assert m["capacity"] == 0, m
    _, t = fb.until_terminal(1)
    assert t["type"] == "result" and t["output"]["slept_ms"] == 400, t
    fb.expect("disconnect")
    assert p.wait(10) == 0
    check_clean(p)
    fb.close()


def test_worker_drain_deadline_cancels_what_is_left():
    fb = FakeBroker()
    p = start_worker(fb, "--drain-ms", "200")
    fb.expect("ready")
    fb.work(1, "sleep", {"ms": 60000})
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    fb.expect("credit")
    events, t = fb.until_terminal(1)
    assert t["type"] == "error" and t["code"] == "shutting_down", t
    assert events == [{"cleanup": True}], events
    fb.expect("disconnect")
    assert p.wait(10) == 0
    check_clean(p)
    fb.close()


def test_worker_bad_flags_exit_2():
    exe = worker_exe()
    cases = ((["--capacity", "0"], "--capacity"), (["--bogus"], "--bogus"),
             (["--heartbeat-ms", "x"], "--heartbeat-ms"), (["extra"], "extra"),
             (["--log-level", "loud"], "--log-level"), (["--name"], "--name"))
    for i, (args, what) in enumerate(cases):
        p = spawn([exe] + args, "flags-%d.log" % i)
        assert p.wait(10) == 2, args
        assert what in read_log(p), (args, read_log(p))
    p = spawn([exe, "--help"], "help.log")
    assert p.wait(10) == 0 and "--drain-ms" in read_log(p)
    p = spawn([exe, "--broker", "nonsense"], "endpoint.log")  # usable flags, unusable endpoint
    assert p.wait(10) == 1 and "connect_failed broker=nonsense" in read_log(p)
    check_clean(p)


if __name__ == "__main__":
    abtest.run_tests(globals())
