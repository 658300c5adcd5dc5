"""Across hosts, a broker pair: brokers A and B, PostgreSQL, a worker and a client, each in its
own network namespace (made and removed here with `ip netns`), all on one bridge (10.202.0.0/24,
in a hub namespace). The worker and the client are given both brokers; PostgreSQL listens on
its namespace's address. A kill -9 of the active broker hands the lease to the other, and the
client's next query is answered there; then the new active's link goes down (its host cut off
from the store): it stops serving (exit 3, lease_lost) before the other broker logs that it is
active (an order read from their logs, not a time). Needs root, iproute2 and PostgreSQL's
server binaries; where namespaces cannot be made it says why and exits 77."""
import atexit
import itertools
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
import test_netns  # noqa: E402
from test_netns import ip, in_ns  # noqa: E402

TAG = "pp%d" % (os.getpid() % 100000)
HOSTS = {"a": 1, "b": 2, "db": 3, "w": 4, "cl": 5}
NS = {k: "%s-%s" % (TAG, k) for k in list(HOSTS) + ["hub"]}
ADDR = {k: "10.202.0.%d" % n for k, n in HOSTS.items()}
_made = test_netns._made  # removed at exit by test_netns.cleanup
_starts = itertools.count()  # a log of its own for each broker start


def make_topology():
    for ns in NS.values():
        ip("netns", "add", ns)
        _made.append(ns)
        ip("link", "set", "lo", "up", ns=ns)
    ip("link", "add", "br0", "type", "bridge", ns=NS["hub"])
    ip("link", "set", "br0", "up", ns=NS["hub"])
    for h in HOSTS:
        a, b = "%s%sh" % (TAG, h), "%s%se" % (TAG, h)
        ip("link", "add", a, "netns", NS["hub"], "type", "veth", "peer", "name", b, "netns",
           NS[h])
        ip("link", "set", a, "master", "br0", ns=NS["hub"])
        ip("link", "set", a, "up", ns=NS["hub"])
        ip("addr", "add", ADDR[h] + "/24", "dev", b, ns=NS[h])
        ip("link", "set", b, "up", ns=NS[h])


def start_pg():
    d = tempfile.mkdtemp(prefix="abtest-pgns-")
    env = dict(os.environ, PG_LISTEN=ADDR["db"], PG_TRUST_NET="10.202.0.0/24")
    r = subprocess.run(in_ns(NS["db"], [abtest.PgServer.SCRIPT, "start", d, "5432"]),
                       capture_output=True, text=True, timeout=120, env=env)
    if r.returncode == 77:
        abtest.skip("no PostgreSQL server: " + r.stderr.strip())
    assert r.returncode == 0, r.stderr[-2000:]
    atexit.register(lambda: subprocess.run([abtest.PgServer.SCRIPT, "stop", d],
                                           capture_output=True, timeout=60))
    return "postgresql://actorbus@%s:5432/postgres?connect_timeout=2" % ADDR["db"]


def broker(host, url):
    argv = [os.environ["ACTOR_BROKER"], "--pair", "--sessions", url, "--heartbeat-ms", "100",
            "--fence-ms", "1000", "--log-level", "info", "--insecure"]
    for k, p in (("clients", 5555), ("workers", 5556), ("pub", 5557), ("sub", 5558)):
        argv += ["--" + k, "tcp://%s:%d" % (ADDR[host], p)]
    return abtest.spawn(in_ns(NS[host], argv), "netns-pair-%s-%d.log" % (host,
                                                                        next(_starts)))


def ctl(args, timeout=20):
    eps = "tcp://%s:5555,tcp://%s:5555" % (ADDR["a"], ADDR["b"])
    argv = in_ns(NS["cl"], [os.environ["ACTORCTL"], "--broker", eps, "--json"] + args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.returncode, [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")], r


def ts_of(log, event):
    for line in log.splitlines():
        if "event=%s " % event in line or line.endswith("event=" + event):
            return line.split()[0]  # ts=...: ISO 8601 UTC, ordered as text
    return None


def test_pair_across_namespaces_takes_over_and_fences():
    url = start_pg()
    a = broker("a", url)
    abtest.wait_until(lambda: "event=started" in abtest.read_log(a), 20, "broker A active")
    b = broker("b", url)
    abtest.wait_until(lambda: "event=standby" in abtest.read_log(b), 20, "broker B standby")
    wargv = [os.environ["ACTOR_WORKER"], "--broker", "tcp://%s:5556" % ADDR["a"], "--broker",
             "tcp://%s:5556" % ADDR["b"], "--name", "ns-w", "--heartbeat-ms", "100"]
    abtest.spawn(in_ns(NS["w"], wargv), "netns-pair-w-%d.log" % os.getpid())

    def answered(tag):
        rc, out, _ = ctl(["query", "echo", json.dumps({"n": tag})], timeout=10)
        return rc == 0 and out and out[-1].get("type") == "result"
    abtest.wait_until(lambda: answered(1), 30, "a query through broker A", 0.2)
    abtest.kill_proc(a)  # SIGKILL
    abtest.wait_until(lambda: "event=started" in abtest.read_log(b), 20, "broker B active")
    abtest.wait_until(lambda: answered(2), 30, "a query through broker B", 0.2)
    rc, out, _ = ctl(["status"])
    st = out[-1].get("output", out[-1]) if out else {}  # status is answered as a result
    assert rc == 0 and st["takeovers"] == 1, out
    assert "clients tcp://%s:5555" % ADDR["b"] in st["active_broker"], out
    # A comes back as the standby; then B's host is cut off from everything.
    a = broker("a", url)
    abtest.wait_until(lambda: "event=standby" in abtest.read_log(a), 20, "broker A standby")
    ip("link", "set", "%sbe" % TAG, "down", ns=NS["b"])
    assert b.wait(30) == 3, abtest.read_log(b)[-2000:]
    abtest.wait_until(lambda: "event=started" in abtest.read_log(a), 30, "broker A active")
    lost, active = ts_of(abtest.read_log(b), "lease_lost"), ts_of(abtest.read_log(a), "active")
    assert lost and active and lost < active, (lost, active)  # never two actives
    abtest.wait_until(lambda: answered(3), 30, "a query through broker A again", 0.2)


if __name__ == "__main__":
    for var in ("ACTOR_BROKER", "ACTOR_WORKER", "ACTORCTL"):
        if not os.environ.get(var) or not os.path.isfile(os.environ[var]):
            abtest.skip("%s is not set to a built binary" % var)
    why = test_netns.can_make_namespaces()
    if why:
        abtest.skip("network namespaces cannot be made here: " + why)
    try:
        make_topology()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        test_netns.cleanup()
        abtest.skip("network namespaces cannot be set up here: %s" % e)
    abtest.run_tests(globals())
