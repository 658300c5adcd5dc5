"""Across hosts: a broker, two workers and a client, each in its own network namespace (made
and removed here with `ip netns`), joined to the broker's namespace by veth pairs on
10.201.x.0/24. The broker binds non-loopback addresses (with --insecure), the workers and
the client reach it over the veths, and a fanout query's children run on both workers. Needs
root and iproute2; where namespaces cannot be made it says why and exits 77 (ctest: skipped)."""
import atexit
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402

TAG = "ab%d" % (os.getpid() % 100000)
NS = {k: "%s-%s" % (TAG, k) for k in ("br", "w1", "w2", "cl")}
SUBNET = {"w1": 1, "w2": 2, "cl": 3}  # peer k: broker 10.201.n.1, peer 10.201.n.2
_made = []


def ip(*args, ns=None, check=True):
    argv = (["ip", "netns", "exec", ns, "ip"] if ns else ["ip"]) + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r


def cleanup():
    while _made:
        ip("netns", "del", _made.pop(), check=False)


atexit.register(cleanup)


def can_make_namespaces():
    """None when namespaces and veths can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root (ip netns needs CAP_SYS_ADMIN)"
    if not shutil.which("ip"):
        return "iproute2's ip is not installed (deploy/packages.sh lists it)"
    probe = TAG + "-probe"
    r = ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return "ip netns add failed: " + r.stderr.strip()
    _made.append(probe)
    r = ip("link", "add", TAG + "pa", "type", "veth", "peer", "name", TAG + "pb", ns=probe,
           check=False)
    cleanup()
    if r.returncode != 0:
        return "cannot make a veth pair: " + r.stderr.strip()
    return None


def make_topology():
    for ns in NS.values():
        ip("netns", "add", ns)
        _made.append(ns)
        ip("link", "set", "lo", "up", ns=ns)
    for peer, n in SUBNET.items():
        a, b = "%s%sa" % (TAG, peer), "%s%sb" % (TAG, peer)
        ip("link", "add", a, "netns", NS["br"], "type", "veth", "peer", "name", b, "netns",
           NS[peer])
        ip("addr", "add", "10.201.%d.1/24" % n, "dev", a, ns=NS["br"])
        ip("addr", "add", "10.201.%d.2/24" % n, "dev", b, ns=NS[peer])
        ip("link", "set", a, "up", ns=NS["br"])
        ip("link", "set", b, "up", ns=NS[peer])


def in_ns(ns, argv):
    return ["ip", "netns", "exec", ns] + argv


def ctl(args, timeout=20):
    """actorctl in the client namespace, talking to the broker over the client's veth."""
    argv = in_ns(NS["cl"], [os.environ["ACTORCTL"], "--broker", "tcp://10.201.3.1:5555",
                            "--json"] + args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.returncode, [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")], r


def test_queries_cross_namespaces_to_both_workers():
    port = {"clients": 5555, "workers": 5556, "pub": 5557, "sub": 5558}
    argv = [os.environ["ACTOR_BROKER"], "--heartbeat-ms", "100", "--log-level", "info"]
    for k, p in port.items():
        argv += ["--" + k, "tcp://0.0.0.0:%d" % p]
    argv.append("--insecure")  # non-loopback without CURVE: this test's own network
    broker = abtest.spawn(in_ns(NS["br"], argv), "netns-broker.log")
    workers = []
    for name, n in (("w1", 1), ("w2", 2)):
        wargv = [os.environ["ACTOR_WORKER"], "--broker", "tcp://10.201.%d.1:5556" % n,
                 "--name", "ns-" + name, "--capacity", "2", "--heartbeat-ms", "100"]
        workers.append(abtest.spawn(in_ns(NS[name], wargv), "netns-%s.log" % name))

    def both_ready():
        rc, out, _ = ctl(["status"], timeout=10)
        # status is answered as a result: the figures are its output (PROTOCOL.md, Versioning)
        names = {w["name"] for o in out for w in o.get("output", o).get("workers", [])}
        return rc == 0 and {"ns-w1", "ns-w2"} <= names
    try:
        abtest.wait_until(both_ready, 20, "both workers to register across namespaces", 0.2)
    except AssertionError:
        print(abtest.read_log(broker)[-2000:])
        raise
    inputs = [{"ms": 200} for _ in range(8)]
    rc, out, r = ctl(["query", "fanout", json.dumps({"agent": "sleep", "inputs": inputs})])
    assert rc == 0, (r.stdout, r.stderr)
    result = [o for o in out if o.get("type") == "result"]
    assert len(result) == 1, out
    ran_on = [x["worker"] for x in result[0]["output"]]
    assert len(ran_on) == 8 and set(ran_on) == {"ns-w1", "ns-w2"}, ran_on
    # And an error crosses back the same way.
    rc, out, _ = ctl(["query", "no-such-agent", "1"])
    assert rc == 1 and out and out[-1].get("code") == "unknown_agent", out
    # The client namespace cannot reach a worker's namespace: only the broker joins them.
    r = subprocess.run(in_ns(NS["cl"], ["ip", "route", "get", "10.201.1.2"]),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 or "10.201.3.1" not in r.stdout, r.stdout
    abtest.kill_proc(broker, abtest.signal.SIGTERM)
    assert broker.returncode == 0, abtest.read_log(broker)[-2000:]
    for w in workers:
        abtest.kill_proc(w, abtest.signal.SIGTERM)
        assert w.returncode == 0, abtest.read_log(w)[-2000:]
    for p in [broker] + workers:
        text = abtest.read_log(p)
        assert not any(m in text for m in abtest.SANITIZER_MARKS), text[-3000:]


if __name__ == "__main__":
    for var in ("ACTOR_BROKER", "ACTOR_WORKER", "ACTORCTL"):
        if not os.environ.get(var) or not os.path.isfile(os.environ[var]):
            abtest.skip("%s is not set to a built binary" % var)
    why = can_make_namespaces()
    if why:
        abtest.skip("network namespaces cannot be made here: " + why)
    try:
        make_topology()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        cleanup()
        abtest.skip("network namespaces cannot be set up here: %s" % e)
    abtest.run_tests(globals())
