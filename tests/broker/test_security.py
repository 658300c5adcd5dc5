"""CURVE security of actor-broker: `actorctl keygen`, allowlisted client and worker keys
through the broker's ZAP handler (domains "clients" and "workers"), SIGHUP reloads, per-key
limits (max_inflight, max_msg) and the loopback rule (--insecure). Clients here are pyzmq
sockets with CURVE keys; a socket monitor shows a refused handshake as an event, so each
refusal is asserted as a state (the event, no reply, a log line), not as a time.
Env: ACTOR_BROKER, ACTOR_WORKER, ACTORCTL."""
import os
import signal
import stat
import subprocess
import sys

import zmq
import zmq.utils.monitor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from test_metrics import get as metric, scrape  # noqa: E402
from abtest import Broker, Client, RealWorker, Subscriber, query, tmpdir, wait_until  # noqa: E402

FAILED_HANDSHAKE = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def keypair():
    pub, sec = zmq.curve_keypair()
    return pub.decode(), sec.decode()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def write_pair(name, pair):
    return write(os.path.join(tmpdir(), name + ".key"),
                 "public = %s\nsecret = %s\n" % pair)


def actorctl(*args, timeout=30):
    exe = os.environ.get("ACTORCTL")
    assert exe and os.path.isfile(exe), "set ACTORCTL to the actorctl binary"
    return subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=timeout)


def curve_socket(kind, server_pub, pair):
    s = abtest.ctx().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    if pair is not None:
        s.curve_serverkey = server_pub.encode()
        s.curve_publickey = pair[0].encode()
        s.curve_secretkey = pair[1].encode()
    return s


# The monitor events a CurveClient records: the handshake's outcome, all its asserts read.
# Fewer events than EVENT_ALL (a peer that reconnects every 100 ms sends three a try), and
# not MONITOR_STOPPED, which libzmq would send while stopping the monitor.
MONITOR_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED
for _e in FAILED_HANDSHAKE:
    MONITOR_EVENTS |= _e


class CurveClient(Client):
    """A DEALER with a CURVE key pair (None: plaintext); it records its monitor events.
    libzmq sends monitor events with a blocking send from its I/O or reaper thread: a
    monitored socket closed after its PAIR reader (as the garbage collector may close the
    two) blocks that thread for good, and every socket of the context closed later keeps
    its connections open (a broker then keeps a closed client's routing id). So each
    client stays referenced in CurveClient.open until close() (after_each at the latest),
    which stops the monitor before closing the reader."""
    n = 0
    open = []

    def __init__(self, endpoint, server_pub, pair):
        self.kind = "dealer"
        self.sock = curve_socket(zmq.DEALER, server_pub, pair)
        CurveClient.n += 1  # a fresh inproc address: a closed socket's may still be bound
        addr = "inproc://test-security-monitor-%d" % CurveClient.n
        self.sock.monitor(addr, MONITOR_EVENTS)
        self.mon = abtest.ctx().socket(zmq.PAIR)
        self.mon.setsockopt(zmq.LINGER, 0)
        self.mon.connect(addr)
        self.events = []
        CurveClient.open.append(self)
        self.sock.connect(endpoint)

    def close(self):
        if self not in CurveClient.open:
            return
        CurveClient.open.remove(self)
        self.sock.monitor(None, 0)  # first: no event may go to a closed reader
        self.mon.close(0)
        self.sock.close(0)

    def wait_event(self, wanted, timeout=10.0):
        """Waits for a monitor event in wanted; returns it."""
        def seen():
            while self.mon.poll(50):
                ev = zmq.utils.monitor.recv_monitor_message(self.mon)
                self.events.append(ev["event"])
            return next((e for e in self.events if e in wanted), None)
        return wait_until(seen, timeout, "monitor event %r (saw %r)" % (wanted, self.events))

    def refused(self):
        """Asserts the handshake failed and a request gets no reply."""
        ev = self.wait_event(FAILED_HANDSHAKE)
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in self.events, self.events
        try:  # no connection is left to queue on (EAGAIN), or it goes nowhere
            self.sock.send(abtest.pack({"v": 1, "type": "status", "id": "s"}), zmq.DONTWAIT)
        except zmq.Again:
            pass
        assert not self.sock.poll(500), "a refused peer got a reply"
        return ev


class CurveSubscriber(Subscriber):
    def __init__(self, endpoint, server_pub, pair, prefix=b""):
        self.sock = curve_socket(zmq.SUB, server_pub, pair)
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix)
        self.sock.connect(endpoint)


class SecureBroker(Broker):
    """actor-broker with CURVE: its own key pair and two allowlists in files. `admin` is a
    client key always allowed (status probes); the lists are rewritten with set_keys."""

    def __init__(self, clients=(), workers=(), extra=(), config=None):
        self.pair = keypair()
        self.admin = keypair()
        d = tmpdir()
        self.key_path = write_pair("broker-%d" % id(self), self.pair)
        self.pub_path = write(os.path.join(d, "broker-%d.pub" % id(self)), self.pair[0] + "\n")
        self.client_keys = os.path.join(d, "clients-%d.txt" % id(self))
        self.worker_keys = os.path.join(d, "workers-%d.txt" % id(self))
        self.set_keys(clients, workers)
        args = ["--curve-secret", self.key_path, "--client-keys", self.client_keys,
                "--worker-keys", self.worker_keys]
        if config:  # the same settings through the config file
            args = ["--config", write(os.path.join(d, "broker-%d.conf" % id(self)),
                                      "".join("%s = %s\n" % (args[i][2:], args[i + 1])
                                              for i in range(0, len(args), 2)))]
        super().__init__(*(args + list(extra)))

    def set_keys(self, clients=None, workers=None):
        """Rewrites the allowlists: lines are a key, or (key, 'name max_inflight=N ...')."""
        def lines(keys):
            out = ["# written by test_security.py"]
            for k in keys:
                out.append(k if isinstance(k, str) else "%s %s" % k)
            return "\n".join(out) + "\n"
        if clients is not None:
            write(self.client_keys, lines([(self.admin[0], "admin")] + list(clients)))
        if workers is not None:
            write(self.worker_keys, lines(workers))

    def reload(self, expect="keys_loaded domain=workers"):
        """SIGHUP; waits until the log shows one more line containing expect."""
        before = self.log().count(expect)
        os.kill(self.proc.pid, signal.SIGHUP)
        wait_until(lambda: self.log().count(expect) > before, 10, "the reload in the log")

    def client(self, kind="dealer", pair=None):
        return CurveClient(self.clients, self.pair[0], pair or self.admin)

    def _answers_status(self):  # the probe needs a key too
        c = self.client()
        try:
            c.send({"v": 1, "type": "status"})
            return c.sock.poll(200) != 0
        finally:
            c.close()

    def plain_client(self):
        return Client(self.clients)

    def worker(self, name, pair, capacity=4):
        kp = write_pair("worker-%s-%d" % (name, id(self)), pair)
        return RealWorker(self, name, capacity=capacity,
                          extra=["--curve-server-key", self.pub_path, "--curve-key", kp]).start()


def after_each():
    """abtest.run_tests calls this after each test: closes the CurveClients it left."""
    while CurveClient.open:
        CurveClient.open[-1].close()


def need_worker():
    if not abtest.real_worker_available():
        abtest.skip("actor-worker is not built (ACTOR_WORKER)")


# ---------------------------------------------------------------- keygen


def test_keygen_writes_a_0600_key_pair_and_never_overwrites():
    prefix = os.path.join(tmpdir(), "kg")
    r = actorctl("keygen", "--out", prefix)
    assert r.returncode == 0, r.stderr
    mode = stat.S_IMODE(os.stat(prefix + ".key").st_mode)
    assert mode == 0o600, oct(mode)
    with open(prefix + ".key") as f:
        fields = dict(l.split(" = ") for l in f.read().splitlines() if " = " in l)
    with open(prefix + ".pub") as f:
        pub = f.read()
    assert pub == fields["public"] + "\n", (pub, fields)
    assert zmq.curve_public(fields["secret"].encode()).decode() == fields["public"]
    before = open(prefix + ".key").read()
    r = actorctl("keygen", "--out", prefix)
    assert r.returncode == 1 and "never overwrites" in r.stderr, (r.returncode, r.stderr)
    assert open(prefix + ".key").read() == before
    r = actorctl("keygen")  # no --out: both lines on stdout
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 2, r.stdout
    assert lines[0].startswith("public = ") and lines[1].startswith("secret = "), lines
    assert zmq.curve_public(lines[1][9:].encode()).decode() == lines[0][9:]


# ---------------------------------------------------------------- who gets in


def test_allowed_keys_get_service_and_the_bus():
    need_worker()
    ck, wk = keypair(), keypair()
    b = SecureBroker(clients=[(ck[0], "alice")], workers=[wk[0]]).start()
    b.worker("w1", wk)
    b.wait_workers(["w1"])
    sub = CurveSubscriber(b.pub, b.pair[0], ck, b"query.echo")
    sub.wait_joined(b, "query.echo")
    c = b.client(pair=ck)
    _, term = c.call(query("q1", "echo", {"x": 1}))
    assert term["type"] == "result" and term["output"] == {"x": 1}, term
    topic, body = sub.recv()
    assert topic.startswith("query.echo") and body["id"] == "q1", (topic, body)
    # actorctl with the client's key file, and the server key given as Z85 text
    kp = write_pair("alice", ck)
    r = actorctl("--broker", b.clients, "--curve-server-key", b.pair[0], "--curve-key", kp,
                 "query", "echo", '{"y":2}')
    assert r.returncode == 0 and r.stdout.strip() == '{"y":2}', (r.returncode, r.stderr)
    # actorctl's ephemeral key is not in the allowlist: no answer
    r = actorctl("--broker", b.clients, "--curve-server-key", b.pub_path, "--timeout", "500",
                 "status")
    assert r.returncode == 1 and "no reply" in r.stderr, (r.returncode, r.stderr)
    assert "refused this client's CURVE key" in r.stderr, r.stderr  # and it says why
    r = actorctl("--broker", b.clients, "--timeout", "500", "status")  # plaintext
    assert r.returncode == 1 and "may want CURVE" in r.stderr, (r.returncode, r.stderr)
    b.stop()


def test_unknown_client_key_gets_no_service():
    b = SecureBroker().start()
    stranger = keypair()
    c = b.client(pair=stranger)
    assert c.refused() == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    wait_until(lambda: "event=zap_denied domain=clients" in b.log() and stranger[0] in b.log(),
               5, "the denial in the log")
    assert "workers" in b.status()  # others are still served
    b.stop()


def test_plaintext_client_cannot_talk_to_a_secured_broker():
    b = SecureBroker().start()
    c = CurveClient(b.clients, None, None)
    assert c.refused() in FAILED_HANDSHAKE
    s = CurveSubscriber(b.pub, None, None)  # nor read the bus
    b.client().call({"v": 1, "type": "publish", "topic": "t", "data": 1})
    assert not s.sock.poll(300), "a plaintext subscriber got a bus message"
    b.stop()


def test_client_key_cannot_register_as_a_worker():
    ck, wk = keypair(), keypair()
    b = SecureBroker(clients=[ck[0]], workers=[wk[0]]).start()
    w = CurveClient(b.workers, b.pair[0], ck)  # a client's key on the worker socket
    w.send({"v": 1, "type": "ready", "name": "intruder", "capacity": 4, "agents": ["echo"]})
    assert w.refused() == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    wait_until(lambda: "event=zap_denied domain=workers" in b.log(), 5, "the denial")
    assert b.status()["workers"] == []
    c = CurveClient(b.clients, b.pair[0], wk)  # and a worker's key is not a client's
    assert c.refused() == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    b.stop()


# ---------------------------------------------------------------- reload


def test_removed_key_stops_working_after_sighup():
    need_worker()
    ka, kb, w1, w2 = keypair(), keypair(), keypair(), keypair()
    mport = abtest.free_port()
    b = SecureBroker(clients=[ka[0], kb[0]], workers=[w1[0], w2[0]],
                     extra=["--metrics", "tcp://127.0.0.1:%d" % mport]).start()
    b.worker("w1", w1)
    rw2 = b.worker("w2", w2)
    b.wait_workers(["w1", "w2"])
    a, other = b.client(pair=ka), b.client(pair=kb)
    _, term = a.call(query("before", "echo", 1))
    assert term["output"] == 1
    a.send(query("long", "sleep", {"ms": 20000}))
    wait_until(lambda: b.status()["in_flight"] == 1, 5, "the sleep running")
    b.set_keys(clients=[kb[0]], workers=[w1[0]])
    b.reload()
    r = a.recv(5)  # its query in flight is ended
    assert r["id"] == "long" and r["code"] == "unauthorized", r
    _, term = a.call(query("after", "echo", 2))  # the open connection is refused
    assert term["type"] == "error" and term["code"] == "unauthorized", term
    assert b.client(pair=ka).refused() == zmq.EVENT_HANDSHAKE_FAILED_AUTH  # and a new one
    # w2's key went: it is dropped at its next message (a heartbeat) and cannot come back
    wait_until(lambda: [w["name"] for w in b.status()["workers"]] == ["w1"], 10,
               "w2 dropped")
    wait_until(lambda: "event=handshake_refused" in rw2.log(), 10, "w2 to log why")
    for i in range(4):
        _, term = other.call(query(i, "sleep", {"ms": 1}))
        assert term["output"]["worker"] == "w1", term
    # a broken allowlist keeps the old one
    write(b.client_keys, "this is not a key\n")
    b.reload(expect="keys_kept domain=clients")
    _, term = other.call(query("still", "echo", 3))
    assert term["output"] == 3, term
    m = scrape(mport)  # what the ZAP handler and the reloads did, on /metrics
    assert metric(m, "actorbus_broker_curve_keys", domain="clients") == 2  # admin and kb
    assert metric(m, "actorbus_broker_curve_keys", domain="workers") == 1
    assert metric(m, "actorbus_broker_curve_reloads_total", result="loaded") == 1
    assert metric(m, "actorbus_broker_curve_reloads_total", result="kept") == 1
    assert metric(m, "actorbus_broker_curve_handshakes_total", result="denied") >= 1
    assert metric(m, "actorbus_broker_curve_handshakes_total", result="allowed") >= 4
    assert metric(m, "actorbus_broker_curve_refused_messages_total") >= 1  # a's "after"
    b.stop()


# ---------------------------------------------------------------- per-key limits


def test_per_key_limits_answer_overloaded_and_too_large():
    need_worker()
    small, free, wk = keypair(), keypair(), keypair()
    b = SecureBroker(clients=[(small[0], "small max_inflight=2 max_msg=600"), free[0]],
                     workers=[wk[0]]).start()
    b.worker("w1", wk, capacity=16)
    b.wait_workers(["w1"])
    c1, c2 = b.client(pair=small), b.client(pair=small)  # one key, two connections
    c1.send(query(1, "sleep", {"ms": 1500}))
    c2.send(query(2, "sleep", {"ms": 1500}))
    wait_until(lambda: b.status()["in_flight"] == 2, 5, "two running")
    c2.send(query(3, "echo", 3))
    r = c2.recv()
    assert r["id"] == 3 and r["code"] == "overloaded" and "max_inflight" in r["message"], r
    f = b.client(pair=free)  # another key is not limited by this one
    for i in range(3):
        f.send(query(i, "sleep", {"ms": 300}))
    got = f.collect(range(3), timeout=10)
    assert all(m[-1]["type"] == "result" for m in got.values()), got
    assert c1.recv(5)["id"] == 1 and c2.recv(5)["id"] == 2
    _, term = c1.call(query("big", "echo", "x" * 700))
    assert term["code"] == "too_large" and "max_msg 600" in term["message"], term
    _, term = c1.call(query("ok", "echo", "x" * 100))  # in flight again: room after answers
    assert term["output"] == "x" * 100, term
    _, term = f.call(query("big", "echo", "x" * 700))
    assert term["output"] == "x" * 700, term
    b.stop()


def test_a_routing_id_does_not_carry_answers_across_keys():
    need_worker()
    alice, mallory, wk = keypair(), keypair(), keypair()
    b = SecureBroker(clients=[alice[0], mallory[0]], workers=[wk[0]]).start()
    b.worker("w1", wk)
    b.wait_workers(["w1"])

    def dealer(pair):
        s = curve_socket(zmq.DEALER, b.pair[0], pair)
        s.setsockopt(zmq.ROUTING_ID, b"shared-id")  # explicit: resends are recognised
        s.connect(b.clients)
        return s

    def answer(s, timeout_ms=10000):
        assert s.poll(timeout_ms), "no answer"
        return abtest.unpack(s.recv())

    a = dealer(alice)
    a.send(abtest.pack(query("q1", "echo", {"secret": 1})))
    assert answer(a)["output"] == {"secret": 1}
    a.send(abtest.pack(query("q1", "echo", {"secret": 1})))  # alice's resend: replayed
    assert answer(a)["output"] == {"secret": 1}
    a.send(abtest.pack(query("slow", "sleep", {"ms": 4000})))
    wait_until(lambda: b.status()["in_flight"] == 1, 5, "alice's sleep to run")
    a.close(0)
    # While alice's query is in flight the routing id is hers: mallory is refused, and can
    # neither attach to it nor be counted as her.
    # Under CURVE a live connection keeps its routing id (no handover): a connection of
    # mallory's that comes before alice's is gone is not given the id (libzmq takes its
    # first message for an id instead), so she tries again on a fresh connection.
    got = None
    for _ in range(20):
        m = dealer(mallory)
        m.send(abtest.pack(query("slow", "sleep", {"ms": 10})))
        if m.poll(1000):
            got = abtest.unpack(m.recv())
        m.close(0)
        if got:
            break
    assert got and got["id"] == "slow" and got["code"] == "unauthorized", got
    wait_until(lambda: b.status()["in_flight"] == 0, 10, "alice's sleep to end")
    # The remembered answer is alice's only: mallory's "q1" under that routing id runs anew.
    m = dealer(mallory)
    m.send(abtest.pack(query("q1", "echo", {"other": 2})))
    got = answer(m)
    assert got["id"] == "q1" and got["output"] == {"other": 2}, got
    m.close(0)
    b.stop()


def test_a_routing_id_left_by_its_key_does_not_carry_its_answers_to_another():
    """Issue 11 point 17, the rest: once alice's connection is gone, mallory may connect with
    the same routing id (libzmq 4.3 has no ROUTER_NOTIFY). The answer to alice's query still
    running is not sent there: her routing id is detached when her connection closes, the
    answer is remembered, and her resend under her own key gets it, once."""
    need_worker()
    alice, mallory, wk = keypair(), keypair(), keypair()
    b = SecureBroker(clients=[alice[0], mallory[0]], workers=[wk[0]]).start()
    b.worker("w1", wk)
    b.wait_workers(["w1"])

    def dealer(pair):
        s = curve_socket(zmq.DEALER, b.pair[0], pair)
        s.setsockopt(zmq.ROUTING_ID, b"shared-id")
        s.connect(b.clients)
        return s

    a = dealer(alice)
    a.send(abtest.pack(query("slow", "sleep", {"ms": 3000})))
    wait_until(lambda: b.status()["in_flight"] == 1, 5, "alice's sleep to run")
    a.close(0)
    # mallory takes the routing id once alice's connection is gone: a query of hers under it
    # is refused (the id's queries are alice's), and that reply says she holds the id
    m = None
    for i in range(40):
        m = dealer(mallory)
        m.send(abtest.pack(query("probe%d" % i, "echo", 1)))
        got = abtest.unpack(m.recv()) if m.poll(1000) else None
        if got and got.get("code") == "unauthorized":
            break
        m.close(0)
        m = None
    assert m is not None, "mallory never held the routing id"
    wait_until(lambda: b.status()["in_flight"] == 0, 10, "alice's sleep to end")
    leaked = abtest.unpack(m.recv()) if m.poll(500) else None
    assert leaked is None, "alice's answer went to mallory: %r" % (leaked,)
    m.close(0)
    # alice comes back and resends: she gets her answer, once
    got = None
    for _ in range(20):
        a = dealer(alice)
        a.send(abtest.pack(query("slow", "sleep", {"ms": 3000})))
        if a.poll(1000):
            got = abtest.unpack(a.recv())
            break
        a.close(0)
    assert got and got["id"] == "slow" and got["type"] == "result", got
    assert not a.poll(500), "a second answer"
    a.close(0)
    b.stop()


# ---------------------------------------------------------------- flags and binds


def run_broker(*args):
    exe = os.environ["ACTOR_BROKER"]
    return subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=15)


def test_non_loopback_bind_needs_curve_or_insecure():
    # tcp://lo:PORT binds 127.0.0.1 through an interface name, which the broker does not
    # count as loopback: the test stays on 127.0.0.0/8 and still takes the non-loopback path.
    ports = {k: abtest.free_port() for k in ("clients", "workers", "pub", "sub")}
    eps = ["--clients", "tcp://lo:%d" % ports["clients"],
           "--workers", "tcp://127.0.0.1:%d" % ports["workers"],
           "--pub", "tcp://127.0.0.1:%d" % ports["pub"],
           "--sub", "tcp://127.0.0.1:%d" % ports["sub"]]
    r = run_broker(*eps)
    assert r.returncode == 2 and "refusing to bind tcp://lo:" in r.stderr, r.stderr
    assert "--insecure" in r.stderr and "--curve-secret" in r.stderr, r.stderr
    conf = write(os.path.join(tmpdir(), "insecure.conf"), "insecure = true  # plaintext\n")
    for flag in (["--insecure"], ["--config", conf]):  # the flag, or the config file
        b = Broker(ports=ports)
        b.argv = lambda: [b.exe] + eps + flag + ["--log-level", "info"]
        logf = os.path.join(tmpdir(), "broker-%d.log" % ports["clients"])  # shared by all
        seen = os.path.getsize(logf) if os.path.exists(logf) else 0
        b.start()
        assert "event=insecure_bind endpoint=tcp://lo:" in b.log()[seen:], b.log()
        assert "workers" in b.status()  # plaintext served on 127.0.0.1
        b.stop()
    seen = len(b.log())  # the next broker appends to the same log file
    s = SecureBroker(config=True)  # with CURVE (here from the config file) no --insecure
    s.ports = ports
    s.argv = lambda: [s.exe] + eps + s.args
    s.start()
    log = s.log()[seen:]
    assert "insecure_bind" not in log and "event=curve_on" in log, log
    s.stop()


def test_security_flag_errors_are_clear():
    pair = keypair()
    kp = write_pair("flags", pair)
    r = run_broker("--curve-secret", kp)
    assert r.returncode == 2 and "--client-keys and --worker-keys" in r.stderr, r.stderr
    r = run_broker("--client-keys", kp)
    assert r.returncode == 2 and "need --curve-secret" in r.stderr, r.stderr
    bad = write(os.path.join(tmpdir(), "bad-list.txt"), "%s\nnot-a-key\n" % pair[0])
    r = run_broker("--curve-secret", kp, "--client-keys", bad, "--worker-keys", bad,
                   "--clients", "tcp://127.0.0.1:%d" % abtest.free_port())
    assert r.returncode == 1 and "line=2" in r.stderr and "keys_failed" in r.stderr, r.stderr
    # a line over the reader's 1022 bytes is refused whole, not read as two lines (its tail,
    # here a key after a long comment, would have been allowed)
    long = write(os.path.join(tmpdir(), "long-list.txt"),
                 "#%s %s\n%s\n" % ("x" * 1021, pair[0], pair[0]))
    r = run_broker("--curve-secret", kp, "--client-keys", long, "--worker-keys", long,
                   "--clients", "tcp://127.0.0.1:%d" % abtest.free_port())
    assert r.returncode == 1 and "line=1" in r.stderr and "longer than" in r.stderr, r.stderr
    if abtest.real_worker_available():
        w = subprocess.run([os.environ["ACTOR_WORKER"], "--curve-server-key", pair[0]],
                           capture_output=True, text=True, timeout=15)
        assert w.returncode == 2 and "go together" in w.stderr, w.stderr
    r = actorctl("--curve-key", kp, "status")
    assert r.returncode == 2 and "needs --curve-server-key" in r.stderr, r.stderr


if __name__ == "__main__":
    abtest.run_tests(globals())
