"""bench/agents/run.py: the driver of the agent benchmark (bench/agents/run.sh calls it).
For each model latency (--latencies, ms) it starts the scripted model server (modelsrv) on a
free 127.0.0.1 port, then measures, interleaved round by round:
  ours    actor-broker (sessions in memory) + --workers actor-worker hosting the LLM agent
          weather_agent (an --agents config written here: two C tools from
          examples/agents/agents_demo.so), driven by agentload (ZeroMQ DEALER)
  python  pypeer.py: the same agent on asyncio, standard library only
and prints one markdown table: invocations/s, CPU per invocation (ours: broker + workers,
read from /proc/PID/stat around the timed pass; python: its one process) and our ratio to
python for both. Every process runs in its own process group and is killed at the end.
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
PY = "/usr/bin/python3"  # Debian's: the peer uses nothing beyond the standard library
TICK = os.sysconf("SC_CLK_TCK")
INSTRUCTION = "You are a helpful assistant. Use the tools to answer about weather and time."
TARGET = 10.0

_procs = []
_logdir = tempfile.mkdtemp(prefix="bench-agents-")


def _child_setup():
    os.setpgid(0, 0)  # its own group (killed as one), not its own session (autogroup)
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(argv, name, stdout=None, stdin=None, env=None):
    log = open(os.path.join(_logdir, name + ".log"), "ab")
    p = subprocess.Popen(argv, stdout=stdout or log, stderr=log,
                         stdin=stdin or subprocess.DEVNULL, preexec_fn=_child_setup,
                         env=dict(os.environ, **env) if env else None)
    log.close()
    p.name = name
    _procs.append(p)
    return p


def kill(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if p in _procs:
            _procs.remove(p)


def _cleanup(keep_logs):
    kill(list(_procs))
    if not keep_logs:
        shutil.rmtree(_logdir, True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ep(port):
    return "tcp://127.0.0.1:%d" % port


def rss_kib(pid):
    """VmRSS of one process, KiB (0 once it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def die(msg):
    raise SystemExit("bench/agents: %s (logs in %s)" % (msg, _logdir))


# ---------------------------------------------------------------- the model server

def start_modelsrv(a, latency):
    p = spawn([os.path.join(a.bin, "modelsrv"), "--port", "0", "--latency-ms", str(latency),
               "--threads", str(a.model_threads)], "modelsrv-%dms" % latency,
              stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    if not line.startswith("PORT "):
        die("modelsrv did not start")
    p.port = int(line.split()[1])
    return p


def model_capacity(a, port):
    out = subprocess.run([os.path.join(a.bin, "httpload"), "--port", str(port),
                          "--connections", "8", "--seconds", "1" if a.quick else "2"],
                         capture_output=True, timeout=30)
    if out.returncode != 0:
        die("httpload against modelsrv failed: %s" % out.stderr.decode()[:200])
    return json.loads(out.stdout)


# ---------------------------------------------------------------- ours

def agents_config(port, inflight):
    return {
        "models": {"default": {"base_url": "http://127.0.0.1:%d/v1" % port, "model": "bench",
                               "max_concurrency": max(4096, inflight), "max_attempts": 1,
                               "timeout_ms": 30000}},
        "agents": [{"name": "weather_agent", "type": "llm", "model": "default",
                    "description": "Answers about the weather and the time.",
                    "instruction": INSTRUCTION, "tools": ["get_weather", "get_time"],
                    "output_key": "last_answer", "stream": False, "history": False}],
    }


class Ours:
    def __init__(self, a, model_port, latency, inflight):
        self.a, self.inflight = a, inflight
        self.ports = {k: free_port() for k in ("clients", "workers", "pub", "sub")}
        cfg = os.path.join(_logdir, "agents-%dms.json" % latency)
        with open(cfg, "w") as f:
            json.dump(agents_config(model_port, inflight), f)
        argv = [a.broker, "--log-level", "warn", "--max-client-inflight",
                str(max(1000, 2 * inflight))] + a.broker_flag
        for k in ("clients", "workers", "pub", "sub"):
            argv += ["--" + k, ep(self.ports[k])]
        self.broker = spawn(argv, "ours-broker-%dms" % latency)
        # python keeps one model connection per invocation in flight; ours keeps 256 idle
        # by default and closes the rest, so at more in flight it would pay a TCP connect
        # on ~1 model call in 10 (counted at 1024 in flight, 5 ms). Same pool, same cost.
        idle_env = {"ACTORBUS_HTTP_MAX_IDLE": str(max(256, inflight))}
        self.workers = [spawn([a.worker, "--broker", ep(self.ports["workers"]), "--name",
                               "w%d" % i, "--capacity", str(inflight), "--log-level", "warn",
                               "--plugin", a.plugin, "--agents", cfg],
                              "ours-worker%d-%dms" % (i, latency), env=idle_env)
                        for i in range(1, a.workers + 1)]
        self.wait_ready()

    def ready(self):
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(ep(self.ports["clients"]))
        try:
            s.send(msgpack.packb({"v": 1, "type": "status", "id": 0}))
            if not s.poll(500):
                return False
            r = msgpack.unpackb(s.recv())
            st = r.get("output") if r.get("type") == "result" else r
            return len((st or {}).get("workers", ())) == len(self.workers)
        finally:
            s.close()

    def wait_ready(self):
        deadline = time.monotonic() + 20
        while not self.ready():
            if any(p.poll() is not None for p in [self.broker] + self.workers):
                die("ours: the broker or a worker exited at start")
            if time.monotonic() > deadline:
                die("ours: workers did not register in 20 s")
            time.sleep(0.05)

    def pids(self):
        return [self.broker.pid] + [w.pid for w in self.workers]

    def argv(self, count, seconds, warmup):
        return [os.path.join(self.a.bin, "agentload"), "--endpoint", ep(self.ports["clients"]),
                "--agent", "weather_agent", "--inflight", str(self.inflight), "--count",
                str(count), "--seconds", str(int(seconds)), "--warmup", str(warmup), "--sync"]

    def stop(self):
        kill([self.broker] + self.workers)


class Python:
    def __init__(self, a, model_port, inflight):
        self.a, self.port, self.inflight = a, model_port, inflight
        self.proc = None

    def pids(self):
        return [self.proc.pid]

    def argv(self, count, seconds, warmup):
        return [PY, os.path.join(HERE, "pypeer.py"), "--port", str(self.port), "--concurrency",
                str(self.inflight), "--count", str(count), "--seconds", str(seconds),
                "--warmup", str(warmup), "--sync"]

    def stop(self):
        pass


# ---------------------------------------------------------------- one measurement

def measure(system, key, a, srv):
    """One timed pass: the load program warms up, says so, and we read CPU around the go."""
    p = spawn(system.argv(a.count, a.seconds, a.warmup), key + "-load", stdout=subprocess.PIPE,
              stdin=subprocess.PIPE)
    if isinstance(system, Python):
        system.proc = p
    if b"warm" not in p.stdout.readline():
        p.wait(10)
        die("%s failed in warm-up" % key)
    pids = system.pids()
    # the others on the same cores: the model server, and our load program (python's is
    # inside its process, so counted in its figure)
    others = [srv.pid] + ([p.pid] if isinstance(system, Ours) else [])
    c0 = [cpu_ticks(pid) for pid in pids + others]
    p.stdin.write(b"go\n")
    p.stdin.flush()
    out = p.stdout.readline()
    c1 = [cpu_ticks(pid) for pid in pids + others]  # python: read before it exits
    rc = p.wait(a.seconds + 60)
    if not out:
        die("%s printed nothing (exit %s)" % (key, rc))
    r = json.loads(out)
    if r.get("errors"):
        die("%s: %d invocations failed, first: %s" % (key, r["errors"], r.get("first_error")))
    per = [(b - a) / TICK / max(r["invocations"], 1) * 1e6 for a, b in zip(c0, c1)]
    r["model_us"] = per[len(pids)]
    r["load_us"] = sum(per[len(pids) + 1:])
    per = per[:len(pids)]
    r["cpu_s"] = sum(per) * max(r["invocations"], 1) / 1e6
    r["cpu_us"] = sum(per)
    r["cpu_us_first"] = per[0]  # ours: the broker's share (the rest is the workers')
    return r


def measure_memory(system, key, a):
    """Memory per in-flight invocation: the load program warms up with a few invocations and
    says so; the RSS then is the idle one. Then --memory-inflight invocations are kept in
    flight for --memory-seconds; VmRSS is sampled every 0.25 s over the last 40% of the
    pass (steady state: every lane is past its first model call) and the median, less the idle
    RSS, over the in-flight count is the figure. Ours: broker + workers; python: its process
    (which includes its load loop)."""
    n = a.memory_inflight
    argv = system.argv(a.count, a.memory_seconds, 16)
    p = spawn(argv, key + "-load", stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    if isinstance(system, Python):
        system.proc = p
    if b"warm" not in p.stdout.readline():
        p.wait(10)
        die("%s failed in warm-up" % key)
    pids = system.pids()
    idle_each = [rss_kib(pid) for pid in pids]
    # the processes that hold the model connections (ours: the workers): their open files
    # at each sample say how many invocations really were waiting on the model then
    model_side = pids[1:] if isinstance(system, Ours) else pids
    idle = sum(idle_each)
    t0 = time.monotonic()
    p.stdin.write(b"go\n")
    p.stdin.flush()
    samples = []
    while time.monotonic() - t0 < a.memory_seconds - 0.3 and p.poll() is None:
        time.sleep(0.25)
        if time.monotonic() - t0 >= a.memory_seconds * 0.6:
            each = [rss_kib(pid) for pid in pids]
            samples.append((sum(each), each, sum(fds(pid) for pid in model_side)))
    out = p.stdout.readline()
    rc = p.wait(a.memory_seconds + 60)
    if not out or not samples:
        die("%s printed nothing or ended early (exit %s)" % (key, rc))
    r = json.loads(out)
    if r.get("errors"):
        die("%s: %d invocations failed, first: %s" % (key, r["errors"], r.get("first_error")))
    samples.sort()
    steady, each, nfd = samples[len(samples) // 2]
    return {"idle_kib": idle, "steady_kib": steady, "inflight": n, "fds": nfd,
            "per_inflight_kib": (steady - idle) / n, "ips": r["ips"],
            "first_kib": (each[0] - idle_each[0]) / n}  # ours: the broker's share


def run_memory(a):
    latency, n = a.memory_latency, a.memory_inflight
    srv = start_modelsrv(a, latency)
    res = {"latency": latency, "inflight": n}
    try:
        ours = Ours(a, srv.port, latency, n)
        try:
            res["ours"] = measure_memory(ours, "ours-mem", a)
        finally:
            ours.stop()
        py = Python(a, srv.port, n)
        res["python"] = measure_memory(py, "python-mem", a)
        for key in ("ours", "python"):
            m = res[key]
            print("  %4d ms  %-6s memory: idle %.1f MiB, steady %.1f MiB at %d in flight: "
                  "%.2f KiB per invocation%s (%.0f inv/s)"
                  % (latency, key, m["idle_kib"] / 1024, m["steady_kib"] / 1024, n,
                     m["per_inflight_kib"], " (broker %.2f)" % m["first_kib"]
                     if key == "ours" else "", m["ips"]), file=sys.stderr)
    finally:
        kill([srv])
    return res


def run_latency(a, latency, inflight):
    srv = start_modelsrv(a, latency)
    cap = model_capacity(a, srv.port) if latency == 0 else None
    ours = Ours(a, srv.port, latency, inflight)
    py = Python(a, srv.port, inflight)
    best = {}
    try:
        for rnd in range(a.rounds):
            for key, system in (("ours", ours), ("python", py)):
                r = measure(system, "%s-%dms-r%d" % (key, latency, rnd), a, srv)
                print("  %4d ms  %-6s round %d: %8.0f inv/s  %7.1f us CPU/inv%s, modelsrv %.1f"
                      % (latency, key, rnd + 1, r["ips"], r["cpu_us"],
                         " (broker %.1f)" % r["cpu_us_first"] if key == "ours" else "",
                         r["model_us"]),
                      file=sys.stderr)
                if key not in best or r["ips"] > best[key]["ips"]:
                    best[key] = r
    finally:
        ours.stop()
        kill([srv])
    return {"latency": latency, "inflight": inflight, "model_rps": cap and cap["rps"], **best}


# ---------------------------------------------------------------- the report

def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return "%s, %d CPUs, Linux %s, Python %s, commit %s" % (
        cpu, os.cpu_count(), platform.release(), platform.python_version(), commit)


def memory_table(m):
    o, p = m["ours"], m["python"]
    x = p["per_inflight_kib"] / o["per_inflight_kib"] if o["per_inflight_kib"] > 0 else 0
    return "\n".join([
        "| memory at %d in flight, model latency %d ms | idle RSS | steady RSS | KiB per "
        "invocation in flight | x (> 1: ours smaller) | inv/s in the pass | open files "
        "(model side) |" % (m["inflight"], m["latency"]),
        "|---|---:|---:|---:|---:|---:|---:|",
        "| ours (broker + workers) | %.1f MiB | %.1f MiB | %.2f (%.2f + %.2f) | %.1fx | %.0f "
        "| %d |" % (o["idle_kib"] / 1024, o["steady_kib"] / 1024, o["per_inflight_kib"],
                    o["first_kib"], o["per_inflight_kib"] - o["first_kib"], x, o["ips"],
                    o["fds"]),
        "| python | %.1f MiB | %.1f MiB | %.2f | | %.0f | %d |"
        % (p["idle_kib"] / 1024, p["steady_kib"] / 1024, p["per_inflight_kib"], p["ips"],
           p["fds"]),
        "",
        "VmRSS (/proc/PID/status): idle after a 16-invocation warm-up, steady the median of "
        "the samples over the last 40%% of a %g s pass, less idle, over the in-flight count. "
        "Open files of the model side at that sample: about one per invocation waiting on "
        "the model (both keep one connection per invocation in flight). Both sides keep their "
        "sessions' stored events in memory; that growth is in the figure." % m["seconds"]])


def table(rows, a):
    out = ["| model latency | in flight | ours inv/s | python inv/s | x inv/s | "
           "ours CPU us/inv (broker + workers) | python CPU us/inv | x CPU | ok (>= %gx inv/s) |"
           % TARGET, "|---|---|---|---|---|---|---|---|---|"]
    misses, notes_cpu = [], []
    for r in rows:
        o, p = r["ours"], r["python"]
        x_ips = o["ips"] / p["ips"]
        x_cpu = p["cpu_us"] / o["cpu_us"] if o["cpu_us"] > 0 else float("inf")
        ok = x_ips >= TARGET
        if not ok:
            misses.append("%d ms: %.1fx" % (r["latency"], x_ips))
        out.append("| %d ms | %d | %.0f | %.0f | %.1fx | %.1f (%.1f + %.1f) | %.1f | %.1fx | %s |"
                   % (r["latency"], r["inflight"], o["ips"], p["ips"], x_ips, o["cpu_us"],
                      o["cpu_us_first"], o["cpu_us"] - o["cpu_us_first"], p["cpu_us"], x_cpu,
                      "yes" if ok else "no"))
    for r in rows:
        o, p = r["ours"], r["python"]
        bound = (p["cpu_us"] + p["model_us"]) / (o["model_us"] + o["load_us"])
        notes_cpu.append(
            "%d ms, the rest of the CPU per invocation in the same passes: modelsrv %.1f us "
            "(ours' pass) / %.1f us (python's), agentload %.1f us. Where all share the cores, "
            "ours at zero CPU would reach at most (python + its modelsrv) / (modelsrv + "
            "agentload) = %.1fx python's invocations/s."
            % (r["latency"], o["model_us"], p["model_us"], o["load_us"], bound))
    cap = [r["model_rps"] for r in rows if r.get("model_rps")]
    notes = ["", "ours: actor-broker + %d actor-worker (CPU: broker + workers); python: one "
             "asyncio process (its CPU includes its own load loop). Best of %d rounds, each "
             "%g s or %d invocations; an invocation = 2 model calls + 2 concurrent tool calls."
             % (a.workers, a.rounds, a.seconds, a.count)]
    if cap:
        notes.append("modelsrv alone (httpload, 8 keep-alive connections): %.0f req/s."
                     % cap[0])
    notes += notes_cpu
    if misses:
        notes.append("Below target: " + ", ".join(misses))
    return "\n".join(out + notes)


def main():
    p = argparse.ArgumentParser(description="bench/agents: ours against Python asyncio")
    p.add_argument("--bin", required=True, help="folder with modelsrv, httpload, agentload")
    p.add_argument("--broker", required=True)
    p.add_argument("--worker", required=True)
    p.add_argument("--plugin", required=True, help="agents_demo.so (the tools)")
    p.add_argument("--latencies", default="0,5", help="model latencies, ms")
    p.add_argument("--inflight", default="128,1024",
                   help="invocations in flight for each latency (both systems alike)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--model-threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--count", type=int, default=1000000)
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--memory-inflight", type=int, default=10000,
                   help="invocations in flight for the memory pass (0: no memory pass)")
    p.add_argument("--memory-latency", type=int, default=1000, help="its model latency, ms")
    p.add_argument("--memory-seconds", type=float, default=20)
    p.add_argument("--quick", action="store_true", help="1 round of 1 s: a smoke test")
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--broker-flag", action="append", default=[],
                   help="an extra actor-broker argument (repeat), e.g. "
                   "--broker-flag=--history-events --broker-flag=0")
    a = p.parse_args()
    if a.quick:
        a.rounds, a.seconds, a.warmup = 1, 1, 200
        a.memory_inflight, a.memory_seconds = min(a.memory_inflight, 1000), 4
    lat = [int(x) for x in a.latencies.split(",") if x]
    infl = [int(x) for x in a.inflight.split(",")]
    infl += [infl[-1]] * (len(lat) - len(infl))
    atexit.register(_cleanup, a.keep_logs)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    rows = [run_latency(a, l, n) for l, n in zip(lat, infl)]
    if not rows and a.memory_inflight <= 0:
        die("nothing to measure (no --latencies, --memory-inflight 0)")
    mem = ""
    if a.memory_inflight > 0:
        m = run_memory(a)
        m["seconds"] = a.memory_seconds
        mem = "\n" + memory_table(m) + "\n"
    report = "# bench/agents, %s\n\n%s\n\n%s\n%s" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), machine(), table(rows, a), mem)
    print(report)
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "out",
                        "agents-%s.md" % datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    with open(path, "w") as f:
        f.write(report)
    print("(written to %s)" % os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
