"""test_examples: the example clients (examples/python, examples/node), which hold no actorbus
code, against a REAL actor-broker and actor-worker on free loopback ports.
    test_examples.py python|node [test names]
`node` installs examples/node's packages (npm ci) when node_modules is missing, and skips
(exit 77) only when node or npm is not installed."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402

ROOT = os.path.normpath(os.path.join(abtest.HERE, "..", ".."))
PY_DIR = os.path.join(ROOT, "examples", "python")
NODE_DIR = os.path.join(ROOT, "examples", "node")
FANOUT = '{"agent":"sleep","inputs":[{"ms":60},{"ms":5}]}'


def start():
    """A broker and one real worker (capacity 4); returns the broker."""
    assert abtest.real_worker_available(), "set ACTOR_WORKER to the actor-worker binary"
    b = abtest.Broker().start()
    abtest.start_workers(b, ["ex1"], real=True)
    return b


def run(argv, timeout=30):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert not p.stderr.strip(), "%s wrote to stderr:\n%s" % (argv[:3], p.stderr)
    return p.returncode, p.stdout.splitlines()


def python_client(b, *args):
    return run([sys.executable, os.path.join(PY_DIR, "client.py"), "--broker", b.clients]
               + list(args))


def node_client(b, *args):
    return run(["node", os.path.join(NODE_DIR, "client.js"), "--broker", b.clients] + list(args))


def parse(lines):
    """`event SEQ JSON` and `result JSON` lines -> ([(seq, value)], output)."""
    events, result = [], None
    for line in lines:
        kind, rest = line.split(" ", 1)
        if kind == "event":
            seq, value = rest.split(" ", 1)
            events.append((int(seq), json.loads(value)))
        else:
            assert kind == "result" and result is None, "unexpected line %r" % line
            result = json.loads(rest)
    return events, result


def check_client(client):
    """The same checks for both clients; returns their echo output lines."""
    b = start()
    rc, echo = client(b, "echo", '{"text":"héllo","n":[1,2.5,null,true]}')
    assert rc == 0 and echo == ['result {"n":[1,2.5,null,true],"text":"héllo"}'], (rc, echo)

    rc, out = client(b, "fanout", FANOUT)  # one event per finished child, then the result
    assert rc == 0, out
    events, result = parse(out)
    assert [s for s, _ in events] == [1, 2], events
    assert sorted(e["done"] for _, e in events) == [0, 1], events
    assert [r["slept_ms"] for r in result] == [60, 5], result
    assert all(r["worker"] == "ex1" and r["end_ms"] >= r["start_ms"] for r in result), result

    rc, out = client(b, "no_such_agent", "1")
    assert rc == 1 and len(out) == 1 and out[0].startswith("error unknown_agent "), (rc, out)
    b.stop()
    return echo


# ---------------------------------------------------------------- python

def test_python_client_echo_fanout_and_error():
    check_client(python_client)


def test_python_client_says_no_reply_when_nobody_answers():
    port = abtest.free_port()  # nothing listens there: the DEALER just waits
    rc, out = run([sys.executable, os.path.join(PY_DIR, "client.py"), "--broker",
                   "tcp://127.0.0.1:%d" % port, "--timeout", "0.3", "echo"])
    assert rc == 1 and out == ["error no_reply no reply in time"], (rc, out)


def test_python_subscribe_prints_query_results_from_the_bus():
    b = start()
    sub = subprocess.Popen([sys.executable, os.path.join(PY_DIR, "subscribe.py"), "--bus", b.pub,
                            "--count", "1", "--timeout", "20", "query.echo."],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sub.stdout.readline().startswith("subscribed "), "subscribe.py did not start"
        # A SUB joins late (its subscription travels to the broker): query until it hears one.
        for i in range(100):
            rc, _ = python_client(b, "echo", '{"seq":%d}' % i)
            assert rc == 0
            if sub.poll() is not None:
                break
        out, err = sub.communicate(timeout=20)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert sub.returncode == 0 and not err, (sub.returncode, err)
    topic, body = out.splitlines()[0].split(" ", 1)
    body = json.loads(body)
    assert topic == "query.echo.-", topic
    assert body["type"] == "result" and body["agent"] == "echo", body
    assert list(body["output"]) == ["seq"] and body["id"] == 1, body
    b.stop()


# ---------------------------------------------------------------- node

def node_ready():
    if not shutil.which("node") or not shutil.which("npm"):
        abtest.skip("node or npm is not installed (Debian: apt-get install nodejs npm)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "zeromq")):
        cmd = ["npm", "ci", "--no-audit", "--no-fund"]
        p = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=150)
        assert p.returncode == 0, "npm ci failed in %s:\n%s%s" % (NODE_DIR, p.stdout, p.stderr)


def test_node_client_matches_the_python_client():
    b = start()
    for agent, inp in (("echo", '{"a":{"b":[1,"x"]},"z":-3}'), ("no_such_agent", "null")):
        want, got = python_client(b, agent, inp), node_client(b, agent, inp)
        assert got == want, (agent, want, got)  # same exit code, same text
    b.stop()


def test_node_client_echo_fanout_and_error():
    check_client(node_client)


if __name__ == "__main__":
    which = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if which not in ("python", "node"):
        sys.exit("usage: test_examples.py python|node [test names]")
    if which == "node":
        node_ready()
    prefix = "test_%s_" % which
    abtest.run_tests({n: f for n, f in globals().items() if n.startswith(prefix)})
