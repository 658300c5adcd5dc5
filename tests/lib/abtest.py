"""abtest: shared helpers for the actorbus integration tests (tests/<module>/test_*.py).

Starts REAL processes on 127.0.0.1 with free ports: the broker (env ACTOR_BROKER), a FAKE
worker written here in Python that speaks the worker side of proto/PROTOCOL.md (so the broker
is tested without the C worker), or the real actor-worker (env ACTOR_WORKER, when set and the
file exists). Every process is started in its own process group, dies with this process
(PR_SET_PDEATHSIG) and is killed at the end of each test, at exit and on SIGTERM/SIGINT.
Every wait is bounded. Run as `python3 abtest.py fake-worker ...` it IS the fake worker.
A script runs all its test_* functions, or those named on its command line; env
ABTEST_LOG_LEVEL sets the broker's --log-level (default info), ABTEST_SEED the garbage test's.
"""
import atexit
import ctypes
import heapq
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import msgpack
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "level=error event=panic")
ALL_AGENTS = ("echo", "sleep", "events", "fanout", "fail")
ADK_AGENTS = ALL_AGENTS + ("adk",)  # with the scripted agent-runtime agent (agent_adk below)


# ---------------------------------------------------------------- processes

_sanitized = None


def sanitized():
    """True when ACTOR_BROKER is an ASan build (its processes run several times slower)."""
    global _sanitized
    if _sanitized is None:
        exe = os.environ.get("ACTOR_BROKER", "")
        try:
            with open(exe, "rb") as f:
                _sanitized = b"__asan_init" in f.read()
        except OSError:
            _sanitized = False
    return _sanitized


def default_liveness():
    """Heartbeats of silence before a peer counts as lost, for tests that do not choose:
    3 (0.3 s) is too tight for an ASan process on a loaded machine (a worker was dropped so);
    ABTEST_LIVENESS overrides."""
    return int(os.environ.get("ABTEST_LIVENESS") or (10 if sanitized() else 3))


_procs = []
_tmp = None


def tmpdir():
    """This run's folder for logs and stats (removed at exit)."""
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="abtest-")
    return _tmp


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(argv, log_name, env=None):
    """Starts argv in its own process group with stdout+stderr to a log file."""
    path = os.path.join(tmpdir(), log_name)
    log = open(path, "ab")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, preexec_fn=_die_with_parent,
                         env=env if env is not None else os.environ.copy())
    log.close()
    p.log_path = path
    _procs.append(p)
    return p


def kill_proc(p, sig=signal.SIGKILL, wait=10.0):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
    try:
        return p.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        return p.wait(5)


def kill_all():
    while _procs:
        kill_proc(_procs.pop(), wait=5)


def _on_signal(sig, _frame):
    kill_all()
    sys.exit(128 + sig)


def _cleanup():
    kill_all()
    if _tmp is not None and not os.environ.get("ABTEST_KEEP"):  # ABTEST_KEEP=1: logs stay
        shutil.rmtree(_tmp, True)
    elif _tmp is not None:
        print("abtest: kept %s" % _tmp, file=sys.stderr)


atexit.register(_cleanup)


def read_log(p):
    with open(p.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


_ports_given = set()


def free_port():
    """A free port on 127.0.0.1 that this process has not handed out before: the kernel may
    give the port it just gave back again, and one broker's two endpoints then collide."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise AssertionError("no fresh free port in 100 tries")


def wait_until(cond, timeout=10.0, what="condition", every=0.02):
    """Polls cond() until it returns something true; returns it or fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------- messages

def pack(m):
    return msgpack.packb(m, use_bin_type=True)


def unpack(b):
    return msgpack.unpackb(b, raw=False, strict_map_key=False)


def _wpack(m):  # the fake worker passes any bytes through, even str that is not UTF-8
    return msgpack.packb(m, use_bin_type=True, unicode_errors="surrogateescape")


def _wunpack(b):
    return msgpack.unpackb(b, raw=False, strict_map_key=False,
                           unicode_errors="surrogateescape")


def query(id, agent, input=None, **kw):
    m = {"v": 1, "type": "query", "id": id, "agent": agent}
    if input is not None:
        m["input"] = input
    m.update(kw)
    return m


def is_terminal(m):
    return m.get("type") in ("result", "error")


# ---------------------------------------------------------------- clients

_ctx = None


def ctx():
    global _ctx
    if _ctx is None:
        _ctx = zmq.Context()
    return _ctx


class Client:
    """A DEALER (every event, then the terminal) or REQ (the terminal only) client."""

    def __init__(self, endpoint, kind="dealer"):
        self.kind = kind
        self.sock = ctx().socket(zmq.DEALER if kind == "dealer" else zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def close(self):
        self.sock.close(0)

    def send(self, m):
        self.sock.send(pack(m))

    def send_frames(self, frames):
        self.sock.send_multipart(frames)

    def recv_frames(self, timeout=5.0):
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError("no reply within %.1fs" % timeout)
        return self.sock.recv_multipart()

    def recv(self, timeout=5.0):
        frames = self.recv_frames(timeout)
        assert len(frames) == 1, "expected one frame, got %r" % (frames,)
        return unpack(frames[0])

    def call(self, m, timeout=10.0):
        """Sends m and returns (events, terminal)."""
        self.send(m)
        events = []
        while True:
            r = self.recv(timeout)
            if is_terminal(r):
                return events, r
            events.append(r)

    def collect(self, ids, timeout=30.0):
        """Receives until every id in ids has its terminal; returns {id: [messages]}.
        Fails on a second terminal for an id or a message for an unknown id."""
        want = set(ids)
        got = {i: [] for i in want}
        done = set()
        deadline = time.monotonic() + timeout
        while done != want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no terminal for %d ids, e.g. %r" %
                                     (len(want - done), sorted(want - done, key=str)[:5]))
            r = self.recv(left)
            i = r.get("id")
            assert i in want, "reply for an id never sent: %r" % (r,)
            assert i not in done, "second terminal or late message for %r: %r" % (i, r)
            got[i].append(r)
            if is_terminal(r):
                done.add(i)
        return got

    def expect_quiet(self, seconds=0.3):
        """Asserts nothing more arrives for a while (no duplicate terminals)."""
        if self.sock.poll(int(seconds * 1000)):
            raise AssertionError("unexpected message: %r" % (self.sock.recv_multipart(),))


class Subscriber:
    def __init__(self, endpoint, prefix=b""):
        self.sock = ctx().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix)
        self.sock.connect(endpoint)

    def wait_joined(self, broker, prefix):
        """Waits until this subscription works (ZeroMQ's slow joiner): publishes probes under
        prefix + "probe" through broker until one arrives, then drops what came."""
        c = broker.client()
        # Nobody may publish under the broker's own query. topics: probe a topic of our own
        # instead, subscribed after prefix on the same connection, so it arrives after it.
        own = prefix.startswith("query.")
        if own:
            prefix = "abtest-probe."
            self.sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        try:
            def probe():
                c.call({"v": 1, "type": "publish", "topic": prefix + "probe", "data": 0})
                return self.sock.poll(100)
            wait_until(probe, 10, "the subscription to reach the broker")
            self.drain(0.1)
        finally:
            c.close()
            if own:
                self.sock.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())
        return self

    def recv(self, timeout=5.0):
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError("nothing on the bus within %.1fs" % timeout)
        topic, body = self.sock.recv_multipart()
        return topic.decode(), unpack(body)

    def drain(self, seconds=0.3):
        out = []
        while self.sock.poll(int(seconds * 1000)):
            topic, body = self.sock.recv_multipart()
            out.append((topic.decode(), unpack(body)))
        return out

    def close(self):
        self.sock.close(0)


# ---------------------------------------------------------------- the broker

class Broker:
    """actor-broker on four free loopback ports (or the ports of an earlier broker)."""

    def __init__(self, *args, heartbeat_ms=100, liveness=None, ports=None, log_level=None):
        exe = os.environ.get("ACTOR_BROKER")
        assert exe and os.path.isfile(exe), "set ACTOR_BROKER to the actor-broker binary"
        self.exe = exe
        self.ports = ports or {k: free_port() for k in ("clients", "workers", "pub", "sub")}
        self.args = list(args)
        self.heartbeat_ms = heartbeat_ms
        self.liveness = liveness or default_liveness()
        self.log_level = log_level or os.environ.get("ABTEST_LOG_LEVEL", "info")
        self.proc = None

    def ep(self, which):
        return "tcp://127.0.0.1:%d" % self.ports[which]

    @property
    def clients(self):
        return self.ep("clients")

    @property
    def workers(self):
        return self.ep("workers")

    @property
    def pub(self):
        return self.ep("pub")

    @property
    def sub(self):
        return self.ep("sub")

    def argv(self):
        a = [self.exe]
        for k in ("clients", "workers", "pub", "sub"):
            a += ["--" + k, self.ep(k)]
        a += ["--heartbeat-ms", str(self.heartbeat_ms), "--liveness", str(self.liveness),
              "--log-level", self.log_level]
        return a + self.args

    def start(self):
        self.proc = spawn(self.argv(), "broker-%d.log" % self.ports["clients"])
        wait_until(lambda: self.proc.poll() is not None or self._answers_status(),
                   10, "the broker to answer status")
        assert self.proc.poll() is None, "broker exited: %s" % self.log()
        return self

    def _answers_status(self):
        c = Client(self.clients)
        try:
            c.send({"v": 1, "type": "status"})
            return c.sock.poll(200) != 0
        finally:
            c.close()

    def client(self, kind="dealer"):
        return Client(self.clients, kind)

    def status(self):
        """The broker's figures: the `output` of its `result` to a `status` request."""
        c = self.client()
        try:
            c.send({"v": 1, "type": "status", "id": "status"})
            r = c.recv(5)
        finally:
            c.close()
        assert r["type"] == "result" and r["id"] == "status", r
        return r["output"]

    def wait_workers(self, names, timeout=10.0):
        """Waits until status lists every name; returns the status."""
        def ready():
            st = self.status()
            have = {w["name"] for w in st["workers"]}
            return st if set(names) <= have else None
        return wait_until(ready, timeout, "workers %r in status" % (names,), every=0.05)

    def log(self):
        return read_log(self.proc) if self.proc else ""

    def check_clean(self):
        text = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in text, "broker log has %r:\n%s" % (mark, text[-4000:])

    def stop(self, timeout=15.0):
        """SIGTERM, wait, and check it exited 0 with a clean log; returns the exit code."""
        if not self.proc:
            return None
        rc = kill_proc(self.proc, signal.SIGTERM, timeout)
        self.check_clean()
        assert rc == 0, "broker exited %r:\n%s" % (rc, self.log()[-4000:])
        return rc

    def kill(self):
        return kill_proc(self.proc, signal.SIGKILL)


# ---------------------------------------------------------------- workers

def real_worker_available():
    w = os.environ.get("ACTOR_WORKER")
    return bool(w) and os.path.isfile(w) and os.access(w, os.X_OK)


class FakeWorker:
    """This file run as a separate process: the worker protocol with agents echo, sleep,
    events, fanout and fail. Its stats (a JSON file) say what it saw: the most jobs it held at
    once, the cancels it got, how often it sent ready, each sleep's interval."""

    def __init__(self, broker, name, capacity=4, agents=ALL_AGENTS, heartbeat_ms=None,
                 liveness=None, extra=()):
        self.broker = broker
        self.name = name
        self.capacity = capacity
        self.agents = agents
        self.heartbeat_ms = heartbeat_ms or broker.heartbeat_ms
        self.liveness = liveness or default_liveness()
        self.extra = list(extra)
        self.stats_path = os.path.join(tmpdir(), "stats-%s-%d.json" %
                                       (name, broker.ports["clients"]))
        self.proc = None

    def start(self):
        if os.path.exists(self.stats_path):
            os.unlink(self.stats_path)
        argv = [sys.executable, os.path.join(HERE, "abtest.py"), "fake-worker",
                "--broker", self.broker.workers, "--name", self.name,
                "--capacity", str(self.capacity), "--agents", ",".join(self.agents),
                "--heartbeat-ms", str(self.heartbeat_ms), "--liveness", str(self.liveness),
                "--stats", self.stats_path] + self.extra
        self.proc = spawn(argv, "worker-%s-%d.log" % (self.name, self.broker.ports["clients"]))
        return self

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def wait_stats(self, cond, timeout=10.0, what="worker stats"):
        """Waits until cond(stats) holds; returns those stats."""
        def check():
            s = self.stats()
            return s if s and cond(s) else None
        return wait_until(check, timeout, what)

    def kill(self, sig=signal.SIGKILL):
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            os.killpg(self.proc.pid, sig)
            return None
        return kill_proc(self.proc, sig)

    def log(self):
        return read_log(self.proc) if self.proc else ""


class RealWorker:
    """actor-worker (env ACTOR_WORKER) with its built-in agents."""

    def __init__(self, broker, name, capacity=4, heartbeat_ms=None, extra=(), env=None):
        self.broker = broker
        self.name = name
        self.capacity = capacity
        self.heartbeat_ms = heartbeat_ms or broker.heartbeat_ms
        self.extra = list(extra)
        self.env = env  # the worker's whole environment; None: this process's
        self.proc = None

    def start(self):
        argv = [os.environ["ACTOR_WORKER"], "--broker", self.broker.workers, "--name", self.name,
                "--capacity", str(self.capacity), "--heartbeat-ms", str(self.heartbeat_ms),
                "--liveness", str(default_liveness())]  # extra may choose another
        self.proc = spawn(argv + self.extra,
                          "real-%s-%d.log" % (self.name, self.broker.ports["clients"]),
                          env=self.env)
        return self

    def kill(self, sig=signal.SIGKILL):
        return kill_proc(self.proc, sig)

    def log(self):
        return read_log(self.proc) if self.proc else ""


def start_workers(broker, names, real=False, **kw):
    """Starts one worker per name (fake unless real) and waits until the broker lists all."""
    cls = RealWorker if real else FakeWorker
    ws = [cls(broker, n, **kw).start() for n in names]
    broker.wait_workers(names)
    return ws


# ---------------------------------------------------------------- running tests

def run_tests(namespace):
    """Runs every test_* function of a script in order (or those named in argv), each with
    the script's after_each() (if it has one: what the test left in this process, such as
    sockets) and then all processes killed afterwards; exits 1 if any failed."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    if len(sys.argv) > 1:
        tests = [(n, f) for n, f in tests if n in sys.argv[1:]]
    global _in_run
    _in_run = True
    failed, skipped = [], []
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
            print("PASS %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)
        except Skipped as e:
            skipped.append(name)
            print("SKIP %s: %s" % (name, e), flush=True)
        except Exception:
            failed.append(name)
            print("FAIL %s\n%s" % (name, traceback.format_exc()), flush=True)
            for p in list(_procs):
                print("---- log of %s (last 3000 chars)\n%s" % (
                    " ".join(p.args[:4]) if isinstance(p.args, list) else p.args,
                    read_log(p)[-int(os.environ.get("ABTEST_LOG_TAIL", "3000")):]), flush=True)
        finally:
            try:
                if callable(namespace.get("after_each")):
                    namespace["after_each"]()
            except Exception:
                if name not in failed:
                    failed.append(name)
                print("FAIL %s (after_each)\n%s" % (name, traceback.format_exc()), flush=True)
            finally:
                kill_all()
    print("%d/%d passed, %d skipped" % (len(tests) - len(failed) - len(skipped), len(tests),
                                        len(skipped)), flush=True)
    if _ctx is not None:
        _ctx.destroy(0)
    # A part that could not run is not a pass: ctest shows the script skipped (77).
    sys.exit(1 if failed or not tests else 77 if skipped else 0)


class Skipped(Exception):
    """Raised by skip() inside a test function: that test could not run."""


_in_run = False


def skip(why):
    """Skips the running test function (the script then exits 77 unless another failed), or,
    outside run_tests, the whole script."""
    if _in_run:
        raise Skipped(why)
    print("SKIP: " + why, flush=True)
    sys.exit(77)


# ---------------------------------------------------------------- the fake worker process

class _FakeWorkerProcess:
    def __init__(self, opts):
        self.o = opts
        self.ctx = zmq.Context()
        self.sock = None
        self.jobs = {}      # job -> {"agent", "timer"?, "children"?}
        self.calls = {}     # our query id -> (parent job, index)
        self.next_call = 1
        self.timers = []    # (due, seq, fn)
        self.tseq = 0
        self.stats = {"name": opts["name"], "capacity": opts["capacity"], "readies": 0,
                      "max_concurrent": 0, "over_capacity": 0, "works": 0, "done": 0,
                      "cancels": [], "intervals": [], "attempts": {}, "timeouts": {},
                      "disconnects": 0}
        self.dirty = True
        self.last_write = 0.0
        self.last_sent = 0.0
        self.last_heard = 0.0
        self.gen = 0

    # -- plumbing
    def connect(self):
        if self.sock is not None:
            self.sock.close(0)
        self.jobs.clear()
        self.calls.clear()
        self.gen += 1  # timers of the jobs dropped here must not touch new ones
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        endpoints = self.o["broker"].split(",")  # a broker pair: whichever is active answers
        if len(endpoints) > 1:
            self.sock.setsockopt(zmq.IMMEDIATE, 1)
        for ep in endpoints:
            self.sock.connect(ep)
        ready = {"type": "ready", "name": self.o["name"], "capacity": self.o["capacity"],
                 "agents": self.o["agents"], "heartbeat_ms": self.o["heartbeat_ms"]}
        if "adk" in self.o["agents"] and not self.o["no_history"]:  # it reads history
            ready["history_agents"] = ["adk"]
        self.send(ready)
        self.last_heard = time.monotonic()
        self.stats["readies"] += 1
        self.dirty = True

    def send(self, m):
        m = dict(m, v=1)
        self.sock.send(_wpack(m))
        self.last_sent = time.monotonic()

    def later(self, ms, fn):
        self.tseq += 1
        heapq.heappush(self.timers, (time.monotonic() + ms / 1000.0, self.tseq, fn))

    def write_stats(self):
        self.dirty = False
        if not self.o["stats"]:
            return
        tmp = self.o["stats"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f)
        os.replace(tmp, self.o["stats"])
        self.dirty = False
        self.last_write = time.monotonic()

    # -- jobs
    def finish(self, job, m):
        if self.jobs.pop(job, None) is None:
            return
        self.send(dict(m, job=job))
        self.stats["done"] += 1
        self.dirty = True

    def on_work(self, m):
        job = m["job"]
        if len(self.jobs) >= self.o["capacity"]:
            self.stats["over_capacity"] += 1
        self.jobs[job] = {"agent": m["agent"], "work": m}
        self.stats["works"] += 1
        self.stats["attempts"][str(job)] = m.get("attempt")
        if "timeout_ms" in m:
            self.stats["timeouts"][str(job)] = m["timeout_ms"]
        self.stats["max_concurrent"] = max(self.stats["max_concurrent"], len(self.jobs))
        self.dirty = True
        try:
            getattr(self, "agent_" + m["agent"], self.agent_unknown)(job, m.get("input"))
        except Exception as e:  # bad input from a client must not cost a credit forever
            self.finish(job, {"type": "error", "code": "bad_input", "message": repr(e)})

    def agent_unknown(self, job, _input):
        self.finish(job, {"type": "error", "code": "unknown_agent", "message": "not here"})

    def agent_echo(self, job, input):
        self.finish(job, {"type": "result", "output": input})

    def agent_fail(self, job, input):
        self.finish(job, {"type": "error", "code": "tool_error", "message": "failed: %r" % input})

    def agent_events(self, job, input):
        n = (input or {}).get("n", 3)
        for i in range(n):
            self.send({"type": "event", "job": job, "event": {"i": i}})
        self.finish(job, {"type": "result", "output": {"n": n}})

    def agent_sleep(self, job, input):
        ms = (input or {}).get("ms", 100)
        start = now_ms()
        gen = self.gen

        def done():
            if gen != self.gen or job not in self.jobs:
                return
            end = now_ms()
            self.stats["intervals"].append([start, end])
            self.finish(job, {"type": "result", "output": {
                "slept_ms": ms, "worker": self.o["name"], "start_ms": start, "end_ms": end}})
        self.later(ms, done)

    def agent_fanout(self, job, input):
        inputs = input["inputs"]
        st = self.jobs[job]
        st["outputs"] = [None] * len(inputs)
        st["left"] = len(inputs)
        if not inputs:
            self.finish(job, {"type": "result", "output": []})
        for i, x in enumerate(inputs):
            cid = self.next_call
            self.next_call += 1
            self.calls[cid] = (job, i)
            self.send({"type": "query", "id": cid, "agent": input["agent"], "input": x})

    # -- adk: a scripted agent of the agent runtime. Input (all optional): "emit": events
    # sent at once, "wait_file": a path it waits for (checked every 20 ms, at most 60 s),
    # "ms": a sleep, "children": sub-invocations {"agent", "input", "branch", "session",
    # "parent"} it makes (parent = this job unless given) and gathers, "emit_end": events
    # sent after, "fail": an error code to end with. Each emitted map becomes an ADK event
    # (id, invocation_id, author = the agent, branch, ts_ms filled in) unless "raw" holds the
    # payload to send as is. Output: what its work carried and what its children answered.
    def adk_event(self, job, e):
        if "raw" in e:
            return e["raw"]
        w = self.jobs[job]["work"]
        self.next_call += 1
        ev = {"id": "e-%016x" % (self.next_call + (job << 20)),
              "invocation_id": w.get("invocation", ""), "author": w["agent"],
              "ts_ms": now_ms()}
        if w.get("branch"):
            ev["branch"] = w["branch"]
        ev.update(e)
        return ev

    def adk_emit(self, job, events):
        for e in events or ():
            self.send({"type": "event", "job": job, "event": self.adk_event(job, e)})

    def agent_adk(self, job, input):
        input = input if isinstance(input, dict) else {}
        st = self.jobs[job]
        st.update(adk=input, children=[None] * len(input.get("children", ())),
                  left=len(input.get("children", ())), child_events=[])
        self.adk_emit(job, input.get("emit"))
        for i, c in enumerate(input.get("children", ())):
            cid = self.next_call = self.next_call + 1
            self.calls[cid] = (job, i)
            q = {"type": "query", "id": cid, "agent": c.get("agent", "adk"),
                 "input": c.get("input"), "parent": c.get("parent", job)}
            for k in ("branch", "session"):
                if k in c:
                    q[k] = c[k]
            self.send(q)
        self.adk_step(job, self.gen, time.monotonic() + 60)

    def adk_step(self, job, gen, give_up):
        st = self.jobs.get(job) if gen == self.gen else None
        if st is None:
            return
        path = st["adk"].get("wait_file")
        if (path and not os.path.exists(path)) or st["left"] > 0:
            if time.monotonic() > give_up:
                self.finish(job, {"type": "error", "code": "adk_stuck", "message": "gave up"})
            else:
                self.later(20, lambda: self.adk_step(job, gen, give_up))
            return
        if st["adk"].get("ms"):
            ms = st["adk"].pop("ms")
            self.later(ms, lambda: self.adk_step(job, gen, give_up))
            return
        self.adk_emit(job, st["adk"].get("emit_end"))
        if st["adk"].get("fail"):
            self.finish(job, {"type": "error", "code": st["adk"]["fail"], "message": "asked"})
            return
        w = st["work"]
        out = {k: w[k] for k in ("invocation", "branch", "state", "history", "session",
                                 "attempt") if k in w}
        out.update(worker=self.o["name"], job=job, children=st["children"],
                   child_events=st["child_events"])
        self.finish(job, {"type": "result", "output": out})

    def adk_reply(self, m):
        job, i = self.calls.get(m.get("id"), (None, None))
        st = self.jobs.get(job)
        if st is None or "adk" not in st:
            return False
        if m["type"] == "event":
            st["child_events"].append(m.get("event"))
            return True
        del self.calls[m["id"]]
        st["children"][i] = (m["output"] if m["type"] == "result" else
                             {"error": {"code": m["code"], "message": m["message"]}})
        st["left"] -= 1
        return True

    def on_call_reply(self, m):
        if self.adk_reply(m):
            return
        job, i = self.calls.get(m.get("id"), (None, None))
        if job is None or job not in self.jobs or m["type"] == "event":
            return
        del self.calls[m["id"]]
        st = self.jobs[job]
        if m["type"] == "error":
            self.finish(job, {"type": "error", "code": m["code"], "message": m["message"]})
            return
        st["outputs"][i] = m["output"]
        st["left"] -= 1
        self.send({"type": "event", "job": job, "event": {"done": i}})
        if st["left"] == 0:
            self.finish(job, {"type": "result", "output": st["outputs"]})

    def on_cancel(self, m):
        job = m.get("job")
        self.stats["cancels"].append(job)
        self.dirty = True
        if job in self.jobs and not self.o["ignore_cancel"]:
            self.send({"type": "event", "job": job, "event": {"cleanup": True}})
            self.finish(job, {"type": "error", "code": "cancelled", "message": "cancelled"})

    def on_message(self, m):
        self.last_heard = time.monotonic()
        t = m.get("type")
        if t == "work":
            self.on_work(m)
        elif t == "cancel":
            self.on_cancel(m)
        elif t == "disconnect":
            self.stats["disconnects"] += 1
            self.connect()
        elif t in ("event", "result", "error") and "job" not in m:
            self.on_call_reply(m)

    # -- loop
    def run(self):
        self.connect()
        hb = self.o["heartbeat_ms"] / 1000.0
        while True:
            now = time.monotonic()
            due = [now + hb]
            if self.timers:
                due.append(self.timers[0][0])
            if self.dirty:
                due.append(self.last_write + 0.02)
            wait = max(0.0, min(due) - now)
            if self.sock.poll(int(wait * 1000) + 1):
                while self.sock.poll(0):
                    try:
                        m = _wunpack(self.sock.recv())
                    except ValueError as e:
                        print("fake worker: undecodable message: %r" % e, file=sys.stderr)
                        continue
                    self.on_message(m)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            if now - self.last_sent >= hb and not self.o["mute"]:
                self.send({"type": "heartbeat"})
            if now - self.last_heard > hb * self.o["liveness"]:
                self.connect()  # the broker went quiet: start over
            if self.dirty and now - self.last_write >= 0.02:
                self.write_stats()


def fake_worker_main(argv):
    o = {"broker": None, "name": "fake", "capacity": 4, "agents": ",".join(ALL_AGENTS),
         "heartbeat_ms": 100, "liveness": 3, "stats": None,
         "ignore_cancel": False, "mute": False, "no_history": False}
    i = 0
    while i < len(argv):
        k = argv[i].lstrip("-").replace("-", "_")
        if k in ("ignore_cancel", "mute", "no_history"):
            o[k] = True
            i += 1
            continue
        o[k] = argv[i + 1]
        i += 2
    for k in ("capacity", "heartbeat_ms", "liveness"):
        o[k] = int(o[k])
    o["agents"] = [a for a in o["agents"].split(",") if a]
    _FakeWorkerProcess(o).run()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "fake-worker":
        fake_worker_main(sys.argv[2:])
    else:
        print(__doc__)


# ---------------------------------------------------------------- PostgreSQL

class PgServer:
    """A throwaway PostgreSQL server (tests/lib/pg_server.sh: initdb + pg_ctl in a temp folder, as
    `nobody` when run as root), stopped at exit. port: also listen on 127.0.0.1:port. Skips
    the script (77) when no server can start here."""

    SCRIPT = os.path.join(HERE, "pg_server.sh")

    def __init__(self, port=None):
        self.dir = tempfile.mkdtemp(prefix="abtest-pg-")
        self.port = port
        argv = [self.SCRIPT, "start", self.dir] + ([str(port)] if port else [])
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if p.returncode == 77:
            skip("no PostgreSQL server: " + p.stderr.strip())
        assert p.returncode == 0, "pg_server.sh start failed: %s" % p.stderr[-2000:]
        self.url = p.stdout.strip()
        atexit.register(self.stop)

    def tcp_url(self, host="127.0.0.1"):
        return "postgresql://actorbus@%s:%d/postgres" % (host, self.port)

    def sql(self, text, url=None):
        """Runs SQL with psql (on url's database, default postgres); returns its output
        (unaligned, tuples only)."""
        p = subprocess.run(["psql", "-XAtq", "-d", url or self.url, "-c", text],
                           capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, "psql: %s" % p.stderr
        return p.stdout.strip()

    def reset(self):
        self.sql("DROP TABLE IF EXISTS actorbus_schema, sessions, events, session_state,"
                 " user_state, app_state, dedup, broker_lease")

    def stop(self):
        if self.dir:
            subprocess.run([self.SCRIPT, "stop", self.dir], capture_output=True, timeout=60)
            self.dir = None
