"""The broker pair (--pair, broker/lease.c) on a PostgreSQL store this script starts
(abtest.PgServer; skipped, 77, where none can start): the standby binds nothing until it holds
the lease; a kill -9 of the active mid-query hands the lease over, the workers and the client
(given both endpoints) follow the new active, and the client that resends its ids gets one
answer each (the answered one replayed from PostgreSQL, the idempotent one that was running
run again, the one that is not idempotent answered worker_lost, never run twice); an active whose store connection is cut stops serving (exit 3) and the
standby takes over; actorctl status names the active broker. Assertions are on states,
counts and order, never on time. Env: ACTOR_BROKER, ACTORCTL, ACTOR_WORKER (optional)."""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, FakeWorker, query, wait_until  # noqa: E402
from test_lifecycle import IdClient, _terminals  # noqa: E402

PG = None
SLEEP_MS = 3000  # long enough to outlast a kill that comes late on a loaded machine


class Pair:
    """Two brokers on one store; a is started first and becomes active."""

    def __init__(self, *args):
        PG.reset()
        self.a = Broker("--pair", "--sessions", PG.url, *args).start()
        assert "event=active" in self.a.log(), self.a.log()
        self.b = Broker("--pair", "--sessions", PG.url, *args)
        self.b.proc = abtest.spawn(self.b.argv(), "broker-%d.log" % self.b.ports["clients"])
        wait_until(lambda: "event=standby" in self.b.log(), 10, "the standby")

    def ep(self, which):
        return "%s,%s" % (self.a.ep(which), self.b.ep(which))

    # what FakeWorker reads from a broker
    @property
    def workers(self):
        return self.ep("workers")

    @property
    def heartbeat_ms(self):
        return self.a.heartbeat_ms

    @property
    def ports(self):
        return self.a.ports


def bound(port):
    s = socket.socket()
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


class PairClient(IdClient):
    """A DEALER with an explicit routing id connected to both brokers. ZMQ_IMMEDIATE (set
    before connecting) sends only on connections that are up: to the active broker."""

    def __init__(self, p, rid):
        self.kind = "dealer"
        self.sock = abtest.ctx().socket(abtest.zmq.DEALER)
        self.sock.setsockopt(abtest.zmq.LINGER, 0)
        self.sock.setsockopt(abtest.zmq.ROUTING_ID, rid)
        self.sock.setsockopt(abtest.zmq.IMMEDIATE, 1)
        self.sock.connect(p.a.clients)
        self.sock.connect(p.b.clients)


def test_standby_binds_nothing_until_it_holds_the_lease():
    p = Pair()
    for port in p.b.ports.values():
        assert not bound(port), ("the standby bound a port", p.b.ports)
    st = p.a.status()
    assert st["pair"] is True and st["takeovers"] == 0 and st["role"] == "active", st
    p.a.kill()
    wait_until(lambda: "event=active" in p.b.log(), 10, "the standby to take over")
    st = p.b.status()
    assert st["pair"] is True and st["takeovers"] == 1, st
    assert p.b.ep("clients").split(":")[-1] in st["active_broker"], st
    p.b.stop()


def test_kill_9_mid_query_the_resend_gets_one_answer():
    p = Pair()
    w = FakeWorker(p, "w1", capacity=4).start()
    p.a.wait_workers(["w1"])
    c = PairClient(p, b"pair-client")
    _, done = c.call(query("done", "echo", {"n": 1}))
    assert done["type"] == "result", done
    # Sleeps long enough that the kill lands while both run on the busiest machine: with
    # 400 ms, a kill late by the sleep found `running` answered and remembered in PostgreSQL
    # (replayed, not rerun: the test then waited for a rerun that never came).
    c.send(query("running", "sleep", {"ms": SLEEP_MS}, idempotent=True))
    c.send(query("once", "sleep", {"ms": SLEEP_MS}))  # not idempotent
    w.wait_stats(lambda s: s["works"] == 3, 5, "both sleeps to run")
    p.a.kill()  # SIGKILL mid-query: their answers never leave
    wait_until(lambda: "event=active" in p.b.log(), 10, "the standby to take over")
    p.b.wait_workers(["w1"], timeout=15)  # the worker followed the active broker
    # The client resends what it had not been answered and what it is unsure of.
    c.send(query("done", "echo", {"n": 1}))
    c.send(query("running", "sleep", {"ms": SLEEP_MS}, idempotent=True))
    c.send(query("once", "sleep", {"ms": SLEEP_MS}))
    got = c.collect(["done", "running", "once"], timeout=20)
    assert _terminals(got["done"]) == [done], got  # replayed from PostgreSQL, not rerun
    assert [m["type"] for m in _terminals(got["running"])] == ["result"], got
    assert [m.get("code") for m in _terminals(got["once"])] == ["worker_lost"], got
    c.expect_quiet(0.5)  # nothing more: one answer each
    st = w.wait_stats(lambda s: s["works"] >= 4, 5, "the rerun")
    assert st["works"] == 4, st  # done and once ran once in all; running once on each
    p.b.stop()


def test_real_worker_follows_the_active_broker():
    """actor-worker given both endpoints (--broker A --broker B): after a kill -9 of the
    active it serves the new one, and a resent idempotent query gets one answer."""
    if not abtest.real_worker_available():
        abtest.skip("set ACTOR_WORKER to the actor-worker binary")
    p = Pair()
    w = abtest.RealWorker(p.a, "rw1", extra=["--broker", p.b.workers]).start()
    p.a.wait_workers(["rw1"])
    c = PairClient(p, b"pair-real")
    c.send(query("slow", "sleep", {"ms": 300}, idempotent=True))
    wait_until(lambda: p.a.status()["in_flight"] == 1, 5, "the query to run")
    p.a.kill()
    wait_until(lambda: "event=active" in p.b.log(), 10, "the standby to take over")
    p.b.wait_workers(["rw1"], timeout=15)
    c.send(query("slow", "sleep", {"ms": 300}, idempotent=True))
    got = c.collect(["slow"], timeout=15)
    assert [m["type"] for m in _terminals(got["slow"])] == ["result"], got
    c.expect_quiet(0.5)
    p.b.stop()


def test_active_cut_off_from_its_store_stops_serving():
    p = Pair("--fence-ms", "500")
    # The server ends every broker connection (as a failover of the database would): the
    # active must stop serving; the standby reconnects and takes the lease.
    PG.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
           " WHERE application_name = 'actor-broker'")
    assert p.a.proc.wait(15) == 3, p.a.log()
    assert "event=lease_lost" in p.a.log(), p.a.log()
    wait_until(lambda: "event=active" in p.b.log(), 15, "the standby to take over")
    assert p.b.status()["takeovers"] == 1
    p.b.stop()


def test_actorctl_status_names_the_active_broker():
    exe = os.environ.get("ACTORCTL")
    if not exe or not os.path.isfile(exe):
        abtest.skip("set ACTORCTL to the actorctl binary")
    p = Pair()
    run = lambda: subprocess.run([exe, "--broker", p.ep("clients"), "status"],
                                 capture_output=True, text=True, timeout=30)
    r = run()
    assert r.returncode == 0, r.stderr
    assert "pair: active" in r.stdout and "0 takeovers" in r.stdout, r.stdout
    assert "clients %s" % p.a.clients in r.stdout, r.stdout
    p.a.kill()
    wait_until(lambda: "event=active" in p.b.log(), 10, "the standby to take over")
    r = run()
    assert r.returncode == 0, r.stderr
    assert "clients %s" % p.b.clients in r.stdout and "1 takeovers" in r.stdout, r.stdout
    p.b.stop()


if __name__ == "__main__":
    PG = abtest.PgServer()
    abtest.run_tests(globals())
