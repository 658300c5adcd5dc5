"""bench/broker/run.py: the driver of the broker benchmark (bench/broker/run.sh calls it).
Starts every system on free 127.0.0.1 ports, all at once and idle between measurements:
  ours        actor-broker + 2 actor-worker (capacity 64 each)
  raw proxy   rawproxy (zmq_proxy ROUTER/DEALER, XSUB/XPUB) + 2 rawecho
  py-asyncio  pybroker.py on asyncio + the same 2 actor-worker
  py-uvloop   pybroker.py on uvloop + the same 2 actor-worker
  NATS        nats-server + 2 natsecho in queue group "echo"
then measures them interleaved (round by round, so drift on a shared machine hits all alike),
kills everything and prints one markdown table with ours' ratio to each peer.
"""
import argparse
import atexit
import ctypes
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PY = "/usr/bin/python3"  # Debian's, with python3-zmq and python3-uvloop
TICK = os.sysconf("SC_CLK_TCK")
SYSTEMS = ("ours", "raw", "py-asyncio", "py-uvloop", "nats")
TITLES = {"ours": "ours", "raw": "raw proxy", "py-asyncio": "py-asyncio",
          "py-uvloop": "py-uvloop", "nats": "NATS"}

_procs = []
_logdir = tempfile.mkdtemp(prefix="bench-broker-")


def _child_setup():
    # Its own process group (killed as one), but NOT its own session: with the kernel's
    # sched_autogroup every session is a scheduling group of its own, which changes how the
    # processes of one system share the CPUs (it halved NATS' throughput).
    os.setpgid(0, 0)
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(argv, name, stdout=None, stdin=None):
    log = open(os.path.join(_logdir, name + ".log"), "ab")
    p = subprocess.Popen(argv, stdout=stdout or log, stderr=log, stdin=stdin or subprocess.DEVNULL,
                         preexec_fn=_child_setup)
    log.close()
    p.name = name
    _procs.append(p)
    return p


def kill_all():
    for p in _procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in _procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
    _procs.clear()


def _exit_on_signal(sig, _frame):
    kill_all()
    sys.exit(128 + sig)


atexit.register(lambda: (kill_all(), shutil.rmtree(_logdir, True)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ep(port):
    return "tcp://127.0.0.1:%d" % port


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out waiting for " + what)
        time.sleep(0.05)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def memory_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


# ---------------------------------------------------------------- the systems

class System:
    def __init__(self, key, a):
        self.key, self.a = key, a
        self.broker = None
        self.workers = []  # the two worker / echo processes
        self.ports = {k: free_port() for k in ("clients", "workers", "pub", "sub")}
        self.transport, self.mode = "zmq", "broker"

    @property
    def endpoint(self):
        return ep(self.ports["clients"])

    def pubsub_eps(self):
        return ep(self.ports["sub"]), ep(self.ports["pub"])  # publishers, subscribers

    def broker_argv(self):
        eps = []
        for k in ("clients", "workers", "pub", "sub"):
            eps += ["--" + k, ep(self.ports[k])]
        if self.key == "ours":
            return [self.a.broker] + eps
        return [PY, os.path.join(HERE, "pybroker.py"), "--loop", self.key[3:]] + eps

    def start(self):
        self.broker = spawn(self.broker_argv(), self.key + "-broker")
        for i in (1, 2):
            self.workers.append(spawn(
                [self.a.worker, "--broker", ep(self.ports["workers"]), "--capacity", "64",
                 "--name", "%s-w%d" % (self.key, i)], "%s-worker%d" % (self.key, i)))

    def ready(self):
        """True once the broker's status lists both workers."""
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.endpoint)
        try:
            s.send(msgpack.packb({"v": 1, "type": "status", "id": 0}))
            if not s.poll(500):
                return False
            r = msgpack.unpackb(s.recv())
            st = r.get("output") if r.get("type") == "result" else r  # pybroker, old brokers
            return len((st or {}).get("workers", ())) == 2
        finally:
            s.close()

    def wait_ready(self):
        wait_until(lambda: self.broker.poll() is not None or self.ready(), 20,
                   "%s to have 2 workers" % self.key)
        if self.broker.poll() is not None:
            raise SystemExit("bench: %s exited (logs in %s)" % (self.key, _logdir))


class Raw(System):
    def __init__(self, key, a):
        super().__init__(key, a)
        self.mode = "echo"
        self.pubsub_proc = None

    def start(self):
        rp = os.path.join(self.a.bin, "rawproxy")
        self.broker = spawn([rp, "reqrep", self.endpoint, ep(self.ports["workers"])], "raw-proxy")
        self.pubsub_proc = spawn([rp, "pubsub", ep(self.ports["sub"]), ep(self.ports["pub"])],
                                 "raw-pubsub")
        for i in (1, 2):
            self.workers.append(spawn([os.path.join(self.a.bin, "rawecho"),
                                       ep(self.ports["workers"])], "raw-echo%d" % i))

    def wait_ready(self):
        time.sleep(0.3)  # DEALERs connect at once; the warm-up pass covers the rest
        for p in (self.broker, self.pubsub_proc):
            if p.poll() is not None:
                raise SystemExit("bench: rawproxy exited (logs in %s)" % _logdir)


class Nats(System):
    def __init__(self, key, a):
        super().__init__(key, a)
        self.transport, self.mode = "nats", "echo"
        self.url = "nats://127.0.0.1:%d" % self.ports["clients"]

    @property
    def endpoint(self):
        return self.url

    def pubsub_eps(self):
        return self.url, self.url

    def start(self):
        self.broker = spawn([self.a.nats_server, "-a", "127.0.0.1", "-p",
                             str(self.ports["clients"])], "nats-server")
        wait_until(lambda: self._listening(), 10, "nats-server")
        for i in (1, 2):
            self.workers.append(spawn([os.path.join(self.a.bin, "natsecho"), self.url, "--asap"],
                                      "nats-echo%d" % i, stdout=subprocess.PIPE))

    def _listening(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.ports["clients"])) == 0

    def wait_ready(self):
        for p in self.workers:  # "ready" once its queue subscription is on the server
            if p.stdout.readline().strip() != b"ready":
                raise SystemExit("bench: natsecho did not start (logs in %s)" % _logdir)


def make(key, a):
    return {"raw": Raw, "nats": Nats}.get(key, System)(key, a)


# ---------------------------------------------------------------- measurements

def loadgen(sys_, inflight, count, seconds, warmup):
    """Runs one loadgen pass; returns its JSON plus the broker's CPU seconds during it."""
    argv = [os.path.join(sys_.a.bin, "loadgen"), "--transport", sys_.transport, "--endpoint",
            sys_.endpoint, "--mode", sys_.mode, "--inflight", str(inflight), "--count",
            str(count), "--seconds", str(seconds), "--warmup", str(warmup), "--sync"]
    if sys_.transport == "nats":
        argv.append("--asap")
    p = spawn(argv, sys_.key + "-loadgen", stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    line = p.stdout.readline()
    if b"warm" not in line:
        p.wait(10)
        raise SystemExit("bench: loadgen against %s failed in warm-up (logs in %s)"
                         % (sys_.key, _logdir))
    t0 = cpu_ticks(sys_.broker.pid)
    w0 = sum(cpu_ticks(w.pid) for w in sys_.workers)
    p.stdin.write(b"go\n")
    p.stdin.flush()
    out = p.stdout.readline()
    rc = p.wait(seconds + 30)
    t1 = cpu_ticks(sys_.broker.pid)
    w1 = sum(cpu_ticks(w.pid) for w in sys_.workers)
    if rc != 0 or not out:
        raise SystemExit("bench: loadgen against %s exited %s (logs in %s)"
                         % (sys_.key, rc, _logdir))
    r = json.loads(out)
    r["broker_cpu_s"] = (t1 - t0) / TICK
    r["workers_cpu_s"] = (w1 - w0) / TICK
    return r


def pubsub(sys_, count):
    pub_ep, sub_ep = sys_.pubsub_eps()
    argv = [os.path.join(sys_.a.bin, "pubsub"), "--transport", sys_.transport, "--pub", pub_ep,
            "--sub", sub_ep, "--subscribers", "4", "--count", str(count)]
    if sys_.a.pub_shared_context and sys_.transport == "zmq":
        argv.append("--shared-context")
    p = spawn(argv, sys_.key + "-pubsub", stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=90)
    if p.returncode != 0:
        raise SystemExit("bench: pubsub against %s exited %s (logs in %s)"
                         % (sys_.key, p.returncode, _logdir))
    return json.loads(out)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def measure(systems, a, log):
    """Each round runs every system's throughput pass, then every system's latency pass.
    Throughput (and the CPU per query of that run) is the best round; latency the median."""
    res = {s.key: {} for s in systems}
    lat = {s.key: [] for s in systems}
    for rnd in range(a.rounds):
        for s in systems:
            r = loadgen(s, 128, a.count, a.seconds, 2000)
            log("round %d throughput %-10s %8.0f q/s  broker cpu %.2fs for %d"
                % (rnd + 1, s.key, r["qps"], r["broker_cpu_s"], r["queries"]))
            if r["qps"] > res[s.key].get("qps", 0):
                res[s.key].update(qps=r["qps"], cpu_us=1e6 * r["broker_cpu_s"] / r["queries"],
                                  wcpu_us=1e6 * r["workers_cpu_s"] / r["queries"])
        for s in systems:
            r = loadgen(s, 1, a.lat_count, a.seconds, 200)
            log("round %d latency    %-10s p50 %.1f us  p99 %.1f us  (%d round trips)"
                % (rnd + 1, s.key, r["p50_us"], r["p99_us"], r["queries"]))
            lat[s.key].append(r)
    for s in systems:
        res[s.key].update(p50=median(r["p50_us"] for r in lat[s.key]),
                          p99=median(r["p99_us"] for r in lat[s.key]))
        mem = memory_kib(s.broker.pid)
        res[s.key].update(rss=mem["VmRSS"] / 1024, hwm=mem["VmHWM"] / 1024)
    # Best of --rounds, the systems taking turns, as for throughput: one sample of this row
    # moved by +-30% from run to run on a busy machine.
    for rnd in range(a.rounds):
        for s in systems:
            r = pubsub(s, a.pub_count)
            log("round %d pubsub %-10s %9.0f msgs/s delivered  loss %.2f%%"
                % (rnd + 1, s.key, r["msgs_per_s"], r["loss_pct"]))
            res[s.key]["fan"] = max(res[s.key].get("fan", 0), r["msgs_per_s"])
            res[s.key]["loss"] = max(res[s.key].get("loss", 0), r["loss_pct"])  # the worst
    return res


# ---------------------------------------------------------------- the table

ROWS = [  # key, label, higher is better, format
    ("qps", "throughput, 128 in flight (queries/s)", True, "{:,.0f}"),
    ("p50", "round trip p50, 1 in flight (us)", False, "{:.1f}"),
    ("p99", "round trip p99, 1 in flight (us)", False, "{:.1f}"),
    ("cpu_us", "broker CPU per query (us)", False, "{:.2f}"),
    ("wcpu_us", "workers' CPU per query, both (us)", False, "{:.2f}"),
    ("rss", "broker VmRSS after req/rep (MiB)", False, "{:.1f}"),
    ("hwm", "broker VmHWM after req/rep (MiB)", False, "{:.1f}"),
    ("fan", "pub/sub 1 -> 4 subscribers (msgs/s delivered)", True, "{:,.0f}"),
    ("loss", "pub/sub loss (%)", False, "{:.2f}"),
]
# (row, peer): (test on ratio ours/peer, text); ratio = ours / peer.
# Issue 13's figures: throughput >= 0.8x the raw proxy, broker CPU per query <= 1.5x its,
# pub/sub fan-out at least NATS's.
TARGETS = {
    ("qps", "raw"): (lambda r: r >= 0.8, ">= 0.8"),
    ("cpu_us", "raw"): (lambda r: r <= 1.5, "<= 1.5"),
    ("fan", "nats"): (lambda r: r >= 1.0, ">= 1"),
    ("qps", "nats"): (lambda r: r > 1.0, "> 1"),
    ("qps", "py-uvloop"): (lambda r: r >= 10.0, ">= 10"),
    ("p50", "raw"): (lambda r: r <= 1.3, "<= 1.3"),
}


def ratio_cell(key, res):
    ours = res.get("ours", {}).get(key)
    parts = []
    for peer in SYSTEMS[1:]:
        theirs = res.get(peer, {}).get(key)
        if ours is None or theirs is None or theirs == 0:
            continue
        r = ours / theirs
        text = "%sx %s" % (("%.3f" if r < 1 else "%.2f") % r, TITLES[peer])
        if (key, peer) in TARGETS:
            ok, want = TARGETS[(key, peer)]
            text += " %s (target %s)" % ("**PASS**" if ok(r) else "**FAIL**", want)
        parts.append(text)
    return "; ".join(parts) if parts else "-"


def table(res):
    head = ["metric"] + [TITLES[k] for k in SYSTEMS] + ["ours vs each (ours / peer)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, higher, fmt in ROWS:
        cells = [label + (" ↑" if higher else " ↓")]
        for k in SYSTEMS:
            v = res.get(k, {}).get(key)
            cells.append("TODO" if k not in res else ("-" if v is None else fmt.format(v)))
        cells.append(ratio_cell(key, res))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def legend(a):
    return (
        "Ratios are ours / peer: above 1 is better in rows marked ↑, below 1 in rows marked ↓. "
        "Workload: the 1/ABP query {v, type, id, agent: \"echo\", input: <64-byte string>} "
        "(106 bytes) from one DEALER client (loadgen.c); raw proxy and NATS echo it back "
        "unparsed. Throughput: best of %d rounds, each up to %d queries or %.0f s with 128 in "
        "flight; broker CPU per query comes from that run (utime+stime of the broker process: "
        "actor-broker, rawproxy, python, nats-server; the workers' row sums both worker or echo "
        "processes). Round trips: median over the rounds of "
        "each round's p50/p99 of %d queries with 1 in flight. Memory: /proc/PID/status after "
        "the request/reply runs. Pub/sub: one PUB (or NATS connection) -> broker -> 4 "
        "subscriber threads, %d messages of 64 bytes; delivered = sum over subscribers / time "
        "from the first publish to the last delivery."
        % (a.rounds, a.count, a.seconds, a.lat_count, a.pub_count))


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    return "%s, %d CPUs (%s), Linux %s, commit %s" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), os.cpu_count(), cpu,
        platform.release(), rev)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="folder with loadgen, pubsub, rawproxy, ...")
    ap.add_argument("--broker", required=True, help="actor-broker")
    ap.add_argument("--worker", required=True, help="actor-worker")
    ap.add_argument("--nats-server",
                    default=shutil.which("nats-server") or "/usr/sbin/nats-server")
    ap.add_argument("--system", action="append", choices=SYSTEMS, help="only these (repeat)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=200000, help="queries per throughput run")
    ap.add_argument("--seconds", type=float, default=4.0, help="cap per run")
    ap.add_argument("--lat-count", type=int, default=10000, help="round trips, 1 in flight")
    ap.add_argument("--pub-count", type=int, default=200000, help="messages published")
    ap.add_argument("--pub-shared-context", action="store_true",
                    help="ZeroMQ subscribers share one context (the row before 2026-12-06)")
    ap.add_argument("--quick", action="store_true", help="sizes / 10, 1 round: a smoke test")
    ap.add_argument("--out", help="also write the report to this file")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.count, a.lat_count, a.pub_count = 1, a.count // 10, a.lat_count // 10, \
            a.pub_count // 10
        a.seconds = min(a.seconds, 2.0)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    keys = [k for k in SYSTEMS if k in (a.system or SYSTEMS)]
    missing = [k for k in keys if k == "ours" and not (os.access(a.broker, os.X_OK) and
                                                        os.access(a.worker, os.X_OK))]
    if "nats" in keys and not (os.access(a.nats_server, os.X_OK) and
                               os.path.exists(os.path.join(a.bin, "natsecho"))):
        missing.append("nats")
    keys = [k for k in keys if k not in missing]
    if any(k != "raw" and k != "nats" for k in keys) and not os.access(a.worker, os.X_OK):
        raise SystemExit("bench: the Python brokers need actor-worker (%s)" % a.worker)
    systems = [make(k, a) for k in keys]
    for s in systems:
        s.start()
    for s in systems:
        s.wait_ready()
    res = measure(systems, a, lambda m: print("  " + m, file=sys.stderr, flush=True))
    kill_all()
    report = "Broker benchmark: %s\n\n%s\n\n%s\n" % (machine(), table(res), legend(a))
    if missing:
        report += "\nNot run (TODO): %s\n" % ", ".join(TITLES[k] for k in missing)
    print(report)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
