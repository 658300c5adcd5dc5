"""Chaos soak: clients send `sleep` queries for a bounded time while workers are SIGKILLed and
restarted at random and the broker is SIGKILLed and restarted once (same ports, same
--sessions file). Clients have explicit routing ids and resend every unanswered query with the
same id after the broker restart (and any query silent for --resend-s), so the broker's dedup
must answer each id once. Ends with a table: sent, answered, errored by code, lost and
duplicated; exit 1 when lost or duplicated > 0, nothing got a result, or the broker's log
shows a crash; 0 else.

  python3 tests/soak/soak.py [--seconds 60] [--clients 4] [--workers 3] [--seed N]
  python3 tests/soak/soak.py --pair 20 ...   a broker pair on PostgreSQL (a server the run
                                             starts): the active one SIGKILLed 20 times, the
                                             standby taking over, default heartbeats (1 s);
                                             prints the takeover times too
  python3 tests/soak/soak.py --fanout 0.3 ... that share of the queries are `fanout`s of 1-3
                                             `sleep` calls (real workers only): workers'
                                             calls cross the takeovers too

A duplicate is a second terminal reply that differs from the first (the job ran twice: a
`sleep` answer carries its start time and worker) or one for an id never resent; a resent id
that gets the very same reply again is the dedup memory at work and is counted as an echo.
Needs ACTOR_BROKER (and ACTOR_WORKER for real workers; without it the Python fake worker)."""
import argparse
import os
import random
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import abtest  # noqa: E402
import zmq  # noqa: E402

OUTSTANDING = 8        # queries in flight per client
BACKOFF_CODES = ("unknown_agent", "overloaded")  # a client waits 100 ms before new queries
GRACE_S = 20.0         # after the sending stops: time for the last answers (bounded)


class SoakClient:
    """A DEALER with an explicit routing id and its book of queries."""

    def __init__(self, endpoint, n, rng, fanout=0.0):
        self.name = "soak-client-%d" % n
        self.fanout = fanout     # share of new queries that are fanouts
        self.fanouts = set()     # their ids
        self.sock = abtest.ctx().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, self.name.encode())
        if "," in endpoint:  # a broker pair: send only where a connection is up
            self.sock.setsockopt(zmq.IMMEDIATE, 1)
        for ep in endpoint.split(","):
            self.sock.connect(ep)
        self.rng = rng
        self.next = 0
        self.open = {}      # id -> (message, last sent, times sent)
        self.first = {}     # id -> its first terminal
        self.sent = self.resent = self.echoes = 0
        self.dups = []
        self.was_resent = set()  # ids answered after being sent more than once
        self.pause_until = 0.0   # no new queries before (no agent host, overloaded)

    def send_new(self, now):
        qid = "%s-%d" % (self.name, self.next)
        self.next += 1
        if self.fanout and self.rng.random() < self.fanout:
            kids = [{"ms": self.rng.randint(5, 40)} for _ in range(self.rng.randint(1, 3))]
            m = abtest.query(qid, "fanout", {"agent": "sleep", "inputs": kids},
                             idempotent=self.rng.random() < 0.5)
            self.fanouts.add(qid)
        else:
            m = abtest.query(qid, "sleep", {"ms": self.rng.randint(5, 40)},
                             idempotent=self.rng.random() < 0.5)
        self.send(m)
        self.open[qid] = (m, now, 1)
        self.sent += 1

    def send(self, m):
        try:  # no broker up (a takeover): the resend scan sends it again later
            self.sock.send(abtest.pack(m), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def resend(self, qid, now):
        m, _, times = self.open[qid]
        self.send(m)
        self.open[qid] = (m, now, times + 1)
        self.resent += 1

    def resend_all(self, now, older_than=None):
        for qid, (_, last, _) in list(self.open.items()):
            if older_than is None or now - last >= older_than:
                self.resend(qid, now)

    def on_reply(self, r):
        if not abtest.is_terminal(r):
            return
        qid = r.get("id")
        if qid in self.first:
            if r == self.first[qid] and qid in self.was_resent:
                self.echoes += 1
            else:
                self.dups.append((qid, self.first[qid], r))
            return
        if qid not in self.open:
            self.dups.append((qid, None, r))
            return
        if r.get("code") in BACKOFF_CODES:
            self.pause_until = time.monotonic() + 0.1
        if self.open[qid][2] > 1:
            self.was_resent.add(qid)
        del self.open[qid]
        self.first[qid] = r

    def pump(self, now, sending):
        while self.sock.poll(0):
            self.on_reply(abtest.unpack(self.sock.recv()))
        while sending and len(self.open) < OUTSTANDING and now >= self.pause_until:
            self.send_new(now)


class Soak:
    def __init__(self, o):
        self.o = o
        self.rng = random.Random(o.seed)
        self.db = os.path.join(abtest.tmpdir(), "soak-sessions.db")
        window = str(int(o.seconds * 1000 + GRACE_S * 1000 + 60000))
        self.broker_args = ("--sessions", self.db, "--dedup-window-ms", window,
                            "--max-retries", "3")
        self.real = abtest.real_worker_available()
        self.workers = []
        self.kills = self.restarts = 0
        self.broker_restarted = False

    def start_worker(self, i):
        name = "soak-w%d" % i
        at = self.view if self.o.pair else self.broker
        if self.real:
            w = abtest.RealWorker(at, name, capacity=8).start()
        else:
            w = abtest.FakeWorker(at, name, capacity=8, agents=("sleep", "echo")).start()
        return w

    # ---- the pair (--pair N)

    def start_pair(self):
        self.pg = abtest.PgServer()
        self.broker_args = ("--pair", "--sessions", self.pg.url) + self.broker_args[2:]
        hb = dict(heartbeat_ms=1000, liveness=3)  # the defaults
        self.broker = abtest.Broker(*self.broker_args, **hb).start()
        self.standby = abtest.Broker(*self.broker_args, **hb)
        self.spawn_standby(self.standby)
        a, b = self.broker, self.standby

        class View:  # what a worker reads from "its broker": both endpoints
            workers = "%s,%s" % (a.workers, b.workers)
            heartbeat_ms = 1000
            ports = a.ports
        self.view = View
        self.endpoints = "%s,%s" % (a.clients, b.clients)
        self.takeovers = []

    def spawn_standby(self, b):
        b.proc = abtest.spawn(b.argv(), "broker-%d-%d.log" % (b.ports["clients"],
                                                              time.monotonic_ns()))
        abtest.wait_until(lambda: "event=standby" in b.log(), 20, "the standby")

    def probe(self, timeout=30.0):
        """Kill to the first answered query: an echo through both endpoints until one
        answers (the new active holds it until a worker is back). Returns seconds."""
        s = abtest.ctx().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)
        for ep in self.endpoints.split(","):
            s.connect(ep)
        t0 = time.monotonic()
        n = 0
        try:
            while time.monotonic() - t0 < timeout:
                n += 1
                try:
                    s.send(abtest.pack(abtest.query("probe-%d" % n, "echo", n)), zmq.NOBLOCK)
                except zmq.Again:
                    time.sleep(0.005)
                    continue
                if s.poll(5000):
                    r = abtest.unpack(s.recv())
                    if r.get("type") == "result":
                        return time.monotonic() - t0
                    time.sleep(0.01)  # an error (shutting down, no worker yet): again
            raise AssertionError("no answer within %.0f s of the kill" % timeout)
        finally:
            s.close(0)

    def take_over(self, clients):
        t0 = time.monotonic()
        self.broker.kill()
        self.probe()  # from right after the kill
        self.takeovers.append(time.monotonic() - t0)
        old, self.broker = self.broker, self.standby
        self.old_brokers.append(old)
        self.standby = abtest.Broker(*self.broker_args, heartbeat_ms=1000, liveness=3,
                                     ports=old.ports)
        self.spawn_standby(self.standby)  # the killed one comes back as the standby
        now = time.monotonic()
        for c in clients:
            c.resend_all(now)

    def chaos_worker(self):
        i = self.rng.randrange(len(self.workers))
        self.workers[i].kill(signal.SIGKILL)
        self.kills += 1
        self.workers[i] = self.start_worker(i)
        self.restarts += 1

    def restart_broker(self, clients):
        self.broker.kill()
        b = abtest.Broker(*self.broker_args, ports=self.broker.ports).start()
        self.old_brokers.append(self.broker)
        self.broker = b
        for w in self.workers:
            w.broker = b
        self.broker_restarted = True
        now = time.monotonic()
        for c in clients:
            c.resend_all(now)

    def run(self):
        o = self.o
        self.old_brokers = []
        if o.pair:
            self.start_pair()
        else:
            self.broker = abtest.Broker(*self.broker_args).start()
        self.workers = [self.start_worker(i) for i in range(o.workers)]
        self.broker.wait_workers(["soak-w%d" % i for i in range(o.workers)], 20)
        ep = self.endpoints if o.pair else self.broker.clients
        clients = [SoakClient(ep, n, random.Random(self.rng.random()), o.fanout)
                   for n in range(o.clients)]
        poller = zmq.Poller()
        for c in clients:
            poller.register(c.sock, zmq.POLLIN)
        t0 = time.monotonic()
        end = t0 + o.seconds
        restart_at = t0 + o.seconds * self.rng.uniform(0.4, 0.6)
        # --pair N: N kills of the active, evenly between 10% and 90% of the run
        take_at = [t0 + o.seconds * (0.1 + 0.8 * k / max(1, o.pair - 1 if o.pair > 1 else 1))
                   for k in range(o.pair)]
        next_kill = t0 + self.rng.uniform(0.5, 2.0)
        last_resend_scan = t0
        while True:
            now = time.monotonic()
            sending = now < end
            open_n = sum(len(c.open) for c in clients)
            if not sending and (open_n == 0 or now > end + GRACE_S):
                break
            if sending and o.worker_kills and now >= next_kill:
                self.chaos_worker()
                next_kill = now + self.rng.uniform(0.5, 2.0)
            if o.pair and sending and take_at and now >= take_at[0]:
                take_at.pop(0)
                self.take_over(clients)
            elif not o.pair and sending and not self.broker_restarted and now >= restart_at:
                self.restart_broker(clients)
            if now - last_resend_scan >= 1.0:
                last_resend_scan = now
                for c in clients:
                    c.resend_all(now, older_than=o.resend_s)
            poller.poll(20)
            for c in clients:
                c.pump(time.monotonic(), sending)
        time.sleep(0.5)  # late duplicates, if any, arrive now
        for c in clients:
            c.pump(time.monotonic(), False)
        return self.report(clients, time.monotonic() - t0)

    def report(self, clients, took):
        codes = {}
        answered = errored = fan_answered = fan_errored = 0
        for c in clients:
            for qid, r in c.first.items():
                fan = qid in c.fanouts
                fan_answered += fan and r["type"] == "result"
                fan_errored += fan and r["type"] != "result"
                if r["type"] == "result":
                    answered += 1
                else:
                    errored += 1
                    code = r["code"]
                    if code == "worker_lost" and "broker" in r.get("message", ""):
                        # the provisional answer (PROTOCOL.md, "Broker pairs"): no worker
                        # reported the query after the takeover (its worker died too)
                        code = "worker_lost (not reported after a takeover)"
                    code += " (fanout)" if fan else ""
                    codes[code] = codes.get(code, 0) + 1
        sent = sum(c.sent for c in clients)
        lost = sum(len(c.open) for c in clients)
        dups = [d for c in clients for d in c.dups]
        rows = [("seconds", "%.1f" % took), ("workers (real)" if self.real else
                "workers (fake)", self.o.workers), ("worker kills", self.kills),
                ("broker restarts", 1 if self.broker_restarted else 0),
                ("takeovers (active SIGKILLed)", len(getattr(self, "takeovers", []))),
                ("sent", sent), ("resent", sum(c.resent for c in clients)),
                ("answered", answered), ("errored", errored)]
        rows += [("  error " + k, v) for k, v in sorted(codes.items())]
        if self.o.fanout:
            rows += [("fanouts sent", sum(len(c.fanouts) for c in clients)),
                     ("fanouts answered", fan_answered), ("fanouts errored", fan_errored)]
        rows += [("resend echoes", sum(c.echoes for c in clients)),
                 ("lost", lost), ("duplicated", len(dups))]
        print("\n| soak | count |\n|---|---|")
        for k, v in rows:
            print("| %s | %s |" % (k, v))
        t = sorted(getattr(self, "takeovers", []))
        if t:
            print("\ntakeover (kill to the first answered query): n=%d p50=%.2f s max=%.2f s"
                  " (heartbeat 1000 ms, lease poll 200 ms)" % (len(t), t[len(t) // 2], t[-1]))
        for d in dups[:5]:
            print("duplicate: %r" % (d,))
        fan_msgs = sorted({r.get("message", "") for c in clients for q, r in c.first.items()
                           if q in c.fanouts and r["type"] != "result"})
        for m in fan_msgs[:5]:  # why fanouts failed (a call's error, as the fanout saw it)
            print("fanout error: %s" % m)
        for c in clients:
            for qid in list(c.open)[:5]:
                print("lost: %s (sent %d times)" % (qid, c.open[qid][2]))
        crashed = False
        for b in self.old_brokers + [self.broker]:
            for mark in abtest.SANITIZER_MARKS:
                if mark in b.log():
                    print("broker log has %r" % mark)
                    crashed = True
        self.broker.stop()
        if getattr(self, "standby", None):
            abtest.kill_proc(self.standby.proc, signal.SIGTERM)
        ok = lost == 0 and not dups and not crashed and answered > 0  # not all errors
        print("soak %s" % ("PASSED" if ok else "FAILED"), flush=True)
        return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--resend-s", type=float, default=5.0,
                    help="resend a query unanswered this long")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--no-worker-kills", dest="worker_kills", action="store_false",
                    help="no worker chaos: only the broker kills (--pair) or restart")
    ap.add_argument("--pair", type=int, default=0,
                    help="run a broker pair on PostgreSQL and kill the active this many times")
    ap.add_argument("--fanout", type=float, default=0.0,
                    help="share of the queries that are fanouts of 1-3 sleeps (real workers)")
    o = ap.parse_args()
    if not 0 <= o.fanout <= 1:
        ap.error("--fanout 0..1")
    if o.fanout and not abtest.real_worker_available():
        ap.error("--fanout needs real workers (ACTOR_WORKER): the fake one hosts no fanout")
    if not (1 <= o.seconds <= 86400 and 1 <= o.clients <= 64 and 1 <= o.workers <= 64):
        ap.error("--seconds 1..86400, --clients 1..64, --workers 1..64")
    if o.seed is None:
        o.seed = random.randrange(1 << 30)
    exe = os.environ.get("ACTOR_BROKER")
    if not exe or not os.path.isfile(exe):
        print("SKIP: set ACTOR_BROKER to the actor-broker binary", flush=True)
        sys.exit(77)
    print("soak: seed=%d seconds=%g clients=%d workers=%d" %
          (o.seed, o.seconds, o.clients, o.workers), flush=True)
    signal.signal(signal.SIGTERM, abtest._on_signal)
    signal.signal(signal.SIGINT, abtest._on_signal)
    try:
        rc = Soak(o).run()
    finally:
        abtest.kill_all()
        if abtest._ctx is not None:
            abtest._ctx.destroy(0)
    sys.exit(rc)


if __name__ == "__main__":
    main()
