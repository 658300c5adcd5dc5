"""The broker's cross-worker model budget (proto/PROTOCOL.md, "Model budget"), driven by
in-process budget peers: DEALERs that speak the worker side (ready, budget.acquire, .release,
.cancel) so each test decides exactly when a permit is asked for and given back. Asserts
orders and counts: permits never above --model-concurrency across workers, grants in
arrival order, a burst of B then one per 1/rps, release on worker loss, the waiter bound,
cancel. Each peer's `status` round trip (on the worker socket) proves the broker has read
everything it sent before."""
import json
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, pack, unpack, wait_until  # noqa: E402


class Peer:
    """A worker that asks for model permits. heartbeat_ms is large, so it stays registered
    without sending heartbeats; the broker's heartbeats are skipped on receive."""

    def __init__(self, broker, name, heartbeat_ms=60000):
        self.sock = abtest.ctx().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(broker.workers)
        self.name = name
        self.pending = []  # messages received but not yet taken
        self.n_sync = 0
        self.send({"type": "ready", "name": name, "capacity": 1, "agents": ["budget-" + name],
                   "heartbeat_ms": heartbeat_ms})
        broker.wait_workers([name])

    def send(self, m):
        m = dict(m)
        m["v"] = 1
        self.sock.send(pack(m))

    def _recv_one(self, timeout):
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return unpack(self.sock.recv())

    def recv(self, timeout=5.0):
        """The next message that is not a heartbeat."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            m = self._recv_one(max(0.0, deadline - time.monotonic()))
            if m is None:
                raise AssertionError("%s: nothing within %.1fs" % (self.name, timeout))
            if m["type"] != "heartbeat":
                return m

    def sync(self):
        """Returns once the broker has read everything sent before; keeps what came since."""
        self.n_sync += 1
        sid = "sync-%d" % self.n_sync
        self.send({"type": "status", "id": sid})
        deadline = time.monotonic() + 10
        while True:
            m = self._recv_one(max(0.0, deadline - time.monotonic()))
            assert m is not None, "%s: no status reply" % self.name
            if m["type"] == "result" and m.get("id") == sid:
                return
            if m["type"] != "heartbeat":
                self.pending.append(m)

    def acquire(self, req, backend="default"):
        self.send({"type": "budget.acquire", "req": req, "backend": backend})

    def release(self, backend="default", tokens=None):
        m = {"type": "budget.release", "backend": backend}
        if tokens is not None:
            m["tokens"] = tokens
        self.send(m)

    def cancel(self, req):
        self.send({"type": "budget.cancel", "req": req})

    def taken(self):
        """Every message received so far (after a sync), leaving none pending."""
        self.sync()
        out, self.pending = self.pending, []
        return out

    def grants(self):
        return [m["req"] for m in self.taken() if m["type"] == "budget.grant"]

    def close(self):
        self.sock.close(0)


def announcement(p):
    m = p.recv()
    assert m["type"] == "budget", m
    return m


def test_no_flag_means_no_budget_and_acquires_are_granted():
    b = Broker().start()
    p = Peer(b, "w1")
    p.acquire(1)
    m = p.recv()
    assert m == {"v": 1, "type": "budget.grant", "req": 1}, m  # no `budget` came first
    p.release()  # not counted without a budget: ignored
    assert p.taken() == []
    b.stop()


def test_announcement_follows_ready():
    b = Broker("--model-concurrency", "2", "--model-rps", "2.5", "--model-burst", "3").start()
    p = Peer(b, "w1")
    assert announcement(p) == {"v": 1, "type": "budget", "model_concurrency": 2,
                               "model_rps": 2.5, "model_burst": 3}
    b.stop()


def test_concurrency_is_held_across_two_workers_in_fifo_order():
    b = Broker("--model-concurrency", "2").start()
    w1, w2 = Peer(b, "w1"), Peer(b, "w2")
    announcement(w1)
    announcement(w2)
    w1.acquire(1)
    w1.acquire(2)
    assert w1.grants() == [1, 2]
    # Arrival order: w1's 3, w2's 10 and 11, w1's 4 (each sync proves the broker read them).
    w1.acquire(3)
    w1.sync()
    w2.acquire(10)
    w2.acquire(11)
    w2.sync()
    w1.acquire(4)
    assert w1.grants() == [] and w2.grants() == []  # 2 in use: everyone waits
    order = []
    holders = {"w1": 2, "w2": 0}
    for _ in range(4):  # each release lets exactly the next one in
        giver = w1 if holders["w1"] else w2
        giver.release()
        holders[giver.name] -= 1
        giver.sync()
        g1, g2 = w1.grants(), w2.grants()
        assert len(g1) + len(g2) == 1, (g1, g2)
        order += [("w1", r) for r in g1] + [("w2", r) for r in g2]
        holders["w1"] += len(g1)
        holders["w2"] += len(g2)
        assert holders["w1"] + holders["w2"] == 2, holders  # never above the limit
    assert order == [("w1", 3), ("w2", 10), ("w2", 11), ("w1", 4)], order
    b.stop()


def test_rps_gives_a_burst_at_once_and_the_rest_one_per_interval():
    b = Broker("--model-rps", "1", "--model-burst", "3").start()
    p = Peer(b, "w1")
    announcement(p)
    t0 = time.monotonic()
    for r in range(1, 6):
        p.acquire(r)
    assert p.grants() == [1, 2, 3]  # the burst, at once; 4 waits a whole second
    got, times = [], []
    while len(got) < 2:
        m = p.recv(10)
        assert m["type"] == "budget.grant", m
        got.append(m["req"])
        times.append(time.monotonic() - t0)
    assert got == [4, 5], got
    # Lower bounds only (a slow machine makes them later, never earlier): 4 cannot start
    # before 1 s after the burst, 5 before 2 s.
    assert times[0] >= 0.99 and times[1] >= 1.99, times
    b.stop()


def test_tokens_per_minute_hold_grants_until_the_bucket_refills():
    # 6000 tokens a minute: 100 a second. A backend starts with a full minute; the tokens a
    # request used are charged when it ends (budget.release's tokens) and may put the bucket
    # in debt: grants wait until it refills, other backends do not.
    b = Broker("--model-tpm", "6000").start()
    p = Peer(b, "w1")
    m = announcement(p)
    assert m["model_tpm"] == 6000 and m["model_concurrency"] == 0 and m["model_rps"] == 0, m
    p.acquire(1)
    p.acquire(2)
    assert p.grants() == [1, 2]  # no request limit, tokens left
    p.release(tokens=3000)
    p.release(tokens=3100)  # 6100 of 6000: 100 in debt, a second to pay back
    t0 = time.monotonic()
    p.acquire(3)
    p.acquire(4, "other")
    assert p.grants() == [4]  # 3 waits for the bucket; the other backend does not
    m = p.recv(10)
    assert m["type"] == "budget.grant" and m["req"] == 3, m
    # A lower bound only (a slow machine makes it later, never earlier).
    assert time.monotonic() - t0 >= 0.99
    b.stop()


def test_backends_are_limited_apart():
    b = Broker("--model-concurrency", "1").start()
    p = Peer(b, "w1")
    announcement(p)
    p.acquire(1, "a")
    p.acquire(2, "a")
    p.acquire(3, "b")
    assert p.grants() == [1, 3]  # b does not wait for a
    p.release("b")
    assert p.grants() == []
    p.release("a")
    assert p.grants() == [2]
    b.stop()


def test_a_lost_worker_gives_back_its_permits_and_waiters():
    for how in ("disconnect", "silence"):
        b = Broker("--model-concurrency", "1").start()
        w1 = Peer(b, "w1", heartbeat_ms=60000 if how == "disconnect" else 100)
        w2 = Peer(b, "w2")
        announcement(w1)
        announcement(w2)
        w1.acquire(1)
        assert w1.grants() == [1]
        w1.acquire(2)  # waits behind its own permit
        w1.sync()
        w2.acquire(7)
        assert w2.grants() == []
        if how == "disconnect":
            w1.send({"type": "disconnect"})
        w1.close()  # silence: the broker loses it after 3 heartbeats of 100 ms
        m = w2.recv(10)
        assert m == {"v": 1, "type": "budget.grant", "req": 7}, (how, m)
        # w1's waiting 2 was dropped, not granted: w2 holds the only permit.
        w2.acquire(8)
        assert w2.grants() == [], how
        w2.release()
        assert w2.grants() == [8], how
        assert "budget_worker_lost" in b.log(), how
        b.stop()


def test_waiters_are_bounded_and_the_next_gets_overloaded():
    b = Broker("--model-concurrency", "1", "--model-max-waiters", "2").start()
    p = Peer(b, "w1")
    announcement(p)
    for r in range(1, 5):
        p.acquire(r)
    got = p.taken()
    assert [m["req"] for m in got if m["type"] == "budget.grant"] == [1], got
    deny = [m for m in got if m["type"] == "budget.deny"]
    assert len(deny) == 1 and deny[0]["req"] == 4 and deny[0]["code"] == "overloaded", got
    assert "model-max-waiters 2" in deny[0]["message"], deny
    p.release()
    p.release()
    assert p.grants() == [2, 3]
    b.stop()


def test_cancel_of_a_waiting_acquire_is_denied_as_cancelled_once():
    b = Broker("--model-concurrency", "1").start()
    p = Peer(b, "w1")
    announcement(p)
    p.acquire(1)
    p.acquire(2)
    assert p.grants() == [1]
    p.cancel(2)
    got = p.taken()
    assert len(got) == 1 and got[0]["type"] == "budget.deny", got
    assert got[0]["req"] == 2 and got[0]["code"] == "cancelled", got
    p.cancel(2)  # no longer waiting: nothing to say
    p.cancel(1)  # granted already: the worker releases it itself
    assert p.taken() == []
    p.release()
    p.acquire(3)
    assert p.grants() == [3]  # 2 never got the permit
    b.stop()


def test_bad_budget_requests_are_answered_and_the_broker_goes_on():
    b = Broker("--model-concurrency", "1").start()
    p = Peer(b, "w1")
    announcement(p)
    p.send({"type": "budget.acquire", "req": 1})  # no backend
    m = p.recv()
    assert m["type"] == "error" and m["code"] == "bad_request", m
    assert "backend" in m["message"], m
    p.send({"type": "budget.acquire", "req": "x", "backend": "default"})
    m = p.recv()
    assert m["type"] == "error" and "req" in m["message"], m
    p.acquire(1)
    p.acquire(2)
    p.acquire(2)  # the same req while it waits
    got = p.taken()
    assert [g["req"] for g in got if g["type"] == "budget.grant"] == [1], got
    deny = [g for g in got if g["type"] == "budget.deny"]
    assert len(deny) == 1 and deny[0]["code"] == "bad_request", got
    assert "already waiting" in deny[0]["message"], deny
    p.release("nobody")  # holds nothing there: logged, ignored
    p.send({"type": "budget.grant", "req": 5})  # a broker-to-worker type
    m = p.recv()
    assert m["type"] == "error" and m["code"] == "bad_request", m
    assert p.taken() == []
    p.release()
    assert p.grants() == [2]  # still serving, in order
    # A stranger (no ready) is told to start over.
    s = abtest.ctx().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(b.workers)
    s.send(pack({"v": 1, "type": "budget.acquire", "req": 1, "backend": "default"}))
    assert s.poll(5000)
    assert unpack(s.recv())["type"] == "disconnect"
    s.close(0)
    assert "budget_release_unheld" in b.log()
    b.stop()


def test_backends_are_bounded():
    b = Broker("--model-concurrency", "1", "--model-max-backends", "2").start()
    p = Peer(b, "w1")
    announcement(p)
    p.acquire(1, "a")
    p.acquire(2, "b")
    p.acquire(3, "c")
    got = p.taken()
    assert [m["req"] for m in got if m["type"] == "budget.grant"] == [1, 2], got
    deny = [m for m in got if m["type"] == "budget.deny"]
    assert len(deny) == 1 and deny[0]["req"] == 3 and deny[0]["code"] == "overloaded", got
    p.release("a")  # a is idle now and forgotten: room for c
    p.acquire(4, "c")
    assert p.grants() == [4]
    b.stop()


def test_real_worker_hears_the_budget_again_after_a_broker_restart():
    if not abtest.real_worker_available():
        abtest.skip("no actor-worker (ACTOR_WORKER)")
    b = Broker("--model-concurrency", "3", "--model-rps", "0.5").start()
    (w,) = abtest.start_workers(b, ["r1"], real=True)
    wait_until(lambda: "event=model_budget concurrency=3 rps=0.5" in w.log(), 10,
               "the worker to log the budget")
    c = b.client()
    _, term = c.call(abtest.query("q1", "echo", 1))
    assert term["output"] == 1, term
    c.close()
    ports = b.ports
    b.kill()
    b = Broker("--model-concurrency", "5", ports=ports).start()  # the next broker's budget
    b.wait_workers(["r1"], timeout=20)
    wait_until(lambda: "event=model_budget concurrency=5" in w.log(), 10, "the new budget")
    b.stop()


def _worker_has_agents_flag():
    if not abtest.real_worker_available():
        return False
    import subprocess
    r = subprocess.run([os.environ["ACTOR_WORKER"], "--help"], capture_output=True, timeout=10)
    return b"--agents" in r.stdout + r.stderr


def _start_fake_openai():
    import subprocess
    # Its own process group (abtest kills groups), and it exits when its stdin closes.
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(abtest.HERE, "fake_openai.py")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         start_new_session=True)
    p.log_path = os.devnull
    abtest._procs.append(p)  # killed with the test's other processes
    line = p.stdout.readline().decode()
    assert line.startswith("PORT "), line
    return p, int(line.split()[1])


def _fake_stats(port, model):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/_stats?model=%s" % (port, model),
                                timeout=5) as r:
        return dict(kv.split("=") for kv in r.read().decode().split())


def test_two_real_workers_never_exceed_the_budget_at_the_model_server():
    if not _worker_has_agents_flag():
        abtest.skip("actor-worker not built, or it has no --agents")
    _, port = _start_fake_openai()
    conf = os.path.join(abtest.tmpdir(), "budget-agents.json")
    with open(conf, "w") as f:
        json.dump({"models": {"default": {"base_url": "http://127.0.0.1:%d/v1" % port,
                                          "model": "slow-ok", "max_concurrency": 8}},
                   "agents": [{"name": "chat", "type": "llm", "model": "default",
                               "instruction": "Answer.", "stream": False}]}, f)
    b = Broker("--model-concurrency", "2").start()
    ws = [abtest.RealWorker(b, n, capacity=8, extra=["--agents", conf]).start()
          for n in ("r1", "r2")]
    b.wait_workers(["r1", "r2"])
    for w in ws:
        wait_until(lambda: "event=model_budget concurrency=2" in w.log(), 10, "the budget")
    c = b.client()
    ids = ["q%d" % i for i in range(8)]
    for i in ids:
        c.send(abtest.query(i, "chat", "hello", timeout_ms=60000))
    got = c.collect(ids, timeout=60)
    for i in ids:
        term = got[i][-1]
        assert term["type"] == "result", term
    st = _fake_stats(port, "slow-ok")
    assert st["requests"] == "8", st
    # Eight queries on two workers with 8 local slots each: only the broker held them to 2.
    assert int(st["max_in_flight"]) <= 2, st
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
