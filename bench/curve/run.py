"""bench/curve/run.py: what CURVE costs actor-broker. Each round starts a broker and one
actor-worker twice, plaintext and then with CURVE (keys made here, allowlisted), and drives
echo queries with bench/curve/curveload: throughput at --inflight N and round-trip p50/p99 at
inflight 1. Rounds alternate the two so that a busy machine hurts both alike; the table
shows medians and the CURVE/plaintext ratio. Everything binds 127.0.0.1; every process is
killed at the end."""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import zmq

procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, log):
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(10)


def write_keys(d, name, pair):
    path = os.path.join(d, name + ".key")
    with open(path, "w") as f:
        f.write("public = %s\nsecret = %s\n" % pair)
    os.chmod(path, 0o600)
    return path


def keys(d):
    """The broker's, a worker's and a client's key pairs, and the two allowlists."""
    k = {n: tuple(x.decode() for x in zmq.curve_keypair()) for n in ("broker", "worker", "client")}
    files = {n: write_keys(d, n, k[n]) for n in k}
    for n, who in (("clients.txt", "client"), ("workers.txt", "worker")):
        with open(os.path.join(d, n), "w") as f:
            f.write(k[who][0] + " bench\n")
    return k, files


def start(args, d, curve, k, files):
    """Broker and worker; returns (procs, endpoint, load flags)."""
    ports = [free_port() for _ in range(4)]
    eps = ["tcp://127.0.0.1:%d" % p for p in ports]
    b = [args.broker, "--clients", eps[0], "--workers", eps[1], "--pub", eps[2], "--sub",
         eps[3], "--log-level", "warn", "--max-client-inflight", "100000",
         "--io-threads", str(args.io_threads)]
    w = [args.worker, "--broker", eps[1], "--capacity", str(args.capacity), "--log-level", "warn"]
    load = []
    if curve:
        b += ["--curve-secret", files["broker"], "--client-keys", os.path.join(d, "clients.txt"),
              "--worker-keys", os.path.join(d, "workers.txt")]
        w += ["--curve-server-key", k["broker"][0], "--curve-key", files["worker"]]
        load = ["--server-key", k["broker"][0], "--public", k["client"][0],
                "--secret", k["client"][1]]
    log = open(os.path.join(d, "procs.log"), "ab")
    ps = [spawn(b, log)]
    time.sleep(0.2)
    ps.append(spawn(w, log))
    return ps, eps[0], load


def load(args, ep, flags, inflight, seconds, warmup):
    argv = [args.load, "--endpoint", ep, "--inflight", str(inflight), "--seconds",
            str(seconds), "--warmup", str(warmup)] + flags
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        sys.exit("curveload failed: %s" % out.stderr.strip())
    return json.loads(out.stdout)


def wait_worker(ep, curve, k):
    """Polls the broker's status until a worker is listed (at most 10 s)."""
    import msgpack
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if curve:
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = (
            k["broker"][0].encode(), k["client"][0].encode(), k["client"][1].encode())
    s.connect(ep)
    try:
        for _ in range(100):
            s.send(msgpack.packb({"v": 1, "type": "status", "id": 0}))
            if s.poll(100):
                r = msgpack.unpackb(s.recv(), raw=False)
                if ((r.get("output") if r.get("type") == "result" else r) or {}).get("workers"):
                    return
            time.sleep(0.1)
        sys.exit("no worker registered within 10 s (see the log in bench-curve-*)")
    finally:
        s.close(0)


def cpu_s(pid, main_thread=False):
    """User + system CPU seconds of a process (all its threads), or of its main thread."""
    with open("/proc/%d/task/%d/stat" % (pid, pid) if main_thread else "/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(args, d, curve, k, files):
    """(q/s, p50, p99, and CPU us per query: broker, broker's loop thread, worker)"""
    ps, ep, flags = start(args, d, curve, k, files)
    try:
        wait_worker(ep, curve, k)
        who = [(ps[0].pid, False), (ps[0].pid, True), (ps[1].pid, False)]
        before = [cpu_s(*w) for w in who]
        tput = load(args, ep, flags, args.inflight, args.seconds, 2000)
        per_q = [(cpu_s(*w) - c) * 1e6 / (tput["queries"] + 2000) for w, c in zip(who, before)]
        lat = load(args, ep, flags, 1, args.seconds / 2, 200)
    finally:
        for p in ps:
            stop(p)
    return (tput["qps"], lat["p50_us"], lat["p99_us"], per_q[0], per_q[1], per_q[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--capacity", type=int, default=128)
    ap.add_argument("--io-threads", type=int, default=1, help="the broker's --io-threads")
    ap.add_argument("--quick", action="store_true", help="1 round of 1 s")
    ap.add_argument("--out", help="also write the table to this file")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    if not zmq.has("curve"):
        sys.exit("this libzmq has no CURVE (zmq.has('curve') is false)")
    d = tempfile.mkdtemp(prefix="bench-curve-")
    k, files = keys(d)
    res = {False: [], True: []}
    try:
        for r in range(args.rounds):
            for curve in (False, True):
                res[curve].append(one(args, d, curve, k, files))
                print("round %d %-5s qps=%.0f p50=%.1fus p99=%.1fus broker=%.1fus/q "
                      "loop=%.1fus/q worker=%.1fus/q" %
                      ((r + 1, "curve" if curve else "plain") + res[curve][-1]), file=sys.stderr)
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
    med = {c: [statistics.median(x[i] for x in res[c]) for i in range(6)] for c in res}
    rows = [("echo throughput, inflight %d (q/s)" % args.inflight, 0, "%.0f"),
            ("round trip p50, inflight 1 (us)", 1, "%.1f"),
            ("round trip p99, inflight 1 (us)", 2, "%.1f"),
            ("broker CPU per query, all threads (us)", 3, "%.1f"),
            ("broker CPU per query, its loop thread (us)", 4, "%.1f"),
            ("worker CPU per query, all threads (us)", 5, "%.1f")]
    lines = ["| %d rounds x %.0f s, medians | plaintext | CURVE | CURVE / plaintext |" %
             (args.rounds, args.seconds), "|---|---:|---:|---:|"]
    for name, i, fmt in rows:
        lines.append("| %s | %s | %s | %.2f |" % (name, fmt % med[False][i], fmt % med[True][i],
                                                  med[True][i] / med[False][i]))
    cost = 1 - med[True][0] / med[False][0]
    lines.append("")
    lines.append("CURVE costs %.0f%% of throughput (target: under 30%%): %s" %
                 (cost * 100, "met" if cost < 0.30 else "NOT met"))
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
