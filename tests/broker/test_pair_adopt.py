"""Nothing lost at a takeover (issue 14 point 3; broker/adopt.c, worker/held.c): the active
broker of a pair is SIGKILLed while queries run on a real actor-worker; the worker keeps them
running and lists them in its next ready; the new active adopts them, so the client that
resends its ids gets one answer each, the real one (not worker_lost), and nothing runs twice
(the side effect counted: the worker's job_start log lines, one per run). An adopted
invocation's session lock is rebuilt: a second query on the same session waits for it.
PostgreSQL is started by the script (abtest.PgServer; skipped, 77, where it cannot be).
Assertions are on states, counts and order, never on time.
Env: ACTOR_BROKER, ACTOR_WORKER."""
import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import query, wait_until  # noqa: E402
from test_lifecycle import _terminals  # noqa: E402
import test_pair  # noqa: E402
from test_pair import Pair, PairClient  # noqa: E402

# Generous windows: a loaded machine (or ASan) must not turn a slow re-registration into a
# worker_lost; the defaults are what the soak measures.
WINDOWS = ("--adopt-window-ms", "20000", "--startup-grace-ms", "20000")
SLEEP_MS = 4000  # long enough to be running when the worker reaches the new active


def _runs(worker, agent="sleep"):
    """Runs the worker started, counted from its log: one job_start line each."""
    return len(re.findall(r"event=job_start .*agent=%s\b" % agent, worker.log()))


def _wait_running(w, n):
    """Waits until the worker started n runs: the active's in_flight counts works sent, and a
    SIGKILL may catch one on its way (it then never ran, and its resend runs it)."""
    wait_until(lambda: _runs(w) >= n, 10, "%d queries to run on the worker" % n)


def _start(rid, *extra, env=None, windows=WINDOWS):
    if not abtest.real_worker_available():
        abtest.skip("set ACTOR_WORKER to the actor-worker binary")
    p = Pair(*windows)
    w = abtest.RealWorker(p.a, "rw1", extra=["--broker", p.b.workers, "--log-level", "debug"]
                          + list(extra), env=env).start()
    p.a.wait_workers(["rw1"])
    return p, w, PairClient(p, rid)


def _stop_clean(p, w):
    """Stops the worker (SIGTERM: it drains and frees what it kept) and the broker; neither
    log may show a sanitizer report (held answers are freed, adopted jobs too)."""
    assert w.kill(signal.SIGTERM) == 0, w.log()
    for mark in abtest.SANITIZER_MARKS:
        assert mark not in w.log(), w.log()
    p.b.stop()


def _take_over(p, also=None):
    """SIGKILLs the active (then `also`, a worker that dies with it: killed first, the active
    could see its connection close and answer for it before the takeover) and waits for the
    standby to take over."""
    p.a.kill()  # SIGKILL mid-query: nothing of the old active is left
    if also is not None:
        also.kill()
    wait_until(lambda: "event=active" in p.b.log(), 15, "the standby to take over")


def test_kill_9_running_queries_are_adopted_and_answered_once():
    p, w, c = _start(b"adopt-client")
    c.send(query("idem", "sleep", {"ms": SLEEP_MS}, idempotent=True))
    c.send(query("once", "sleep", {"ms": SLEEP_MS}))  # not idempotent
    _wait_running(w, 2)  # on the worker: a work still on its way would die with the active
    _take_over(p)
    # The client resends at once: before or after the worker reports, each resend waits
    # for the adopted job (the one that is not idempotent is parked, the other queued).
    c.send(query("idem", "sleep", {"ms": SLEEP_MS}, idempotent=True))
    c.send(query("once", "sleep", {"ms": SLEEP_MS}))
    got = c.collect(["idem", "once"], timeout=30)
    for qid in ("idem", "once"):
        t = _terminals(got[qid])
        assert [m["type"] for m in t] == ["result"], (qid, got)  # not worker_lost
    c.expect_quiet(0.5)  # nothing more: one answer each
    log = p.b.log()
    assert log.count("event=job_adopted") == 2, log
    assert "held_reported" in w.log(), w.log()
    assert _runs(w) == 2, w.log()  # each ran once, on the worker that kept it
    # A resend after the answer is replayed, not run.
    c.send(query("once", "sleep", {"ms": SLEEP_MS}))
    again = c.collect(["once"], timeout=10)
    assert _terminals(again["once"]) == _terminals(got["once"]), again
    assert _runs(w) == 2, w.log()
    _stop_clean(p, w)


def test_answer_that_comes_while_no_broker_is_up_is_held_and_delivered():
    """The query ends while the worker has no broker: its answer is kept and follows the
    ready; the resend gets it (the real one, though it is not idempotent)."""
    p, w, c = _start(b"adopt-held")
    c.send(query("short", "sleep", {"ms": 1500}))
    _wait_running(w, 1)
    # Stop the standby from taking over until the answer exists: it is started only after.
    p.b.kill()
    _kill_active_and_wait_answer(p, w)
    p.b = test_pair.Broker("--pair", "--sessions", test_pair.PG.url, *WINDOWS,
                           ports=p.b.ports).start()
    c.send(query("short", "sleep", {"ms": 1500}))
    got = c.collect(["short"], timeout=30)
    # The adopted answer waits for the resend (remembered), so it is sent once.
    assert [m["type"] for m in _terminals(got["short"])] == ["result"], got
    c.expect_quiet(0.5)
    assert "event=job_adopted" in p.b.log(), p.b.log()
    assert _runs(w) == 1, w.log()
    _stop_clean(p, w)


def test_answer_sent_to_an_active_that_died_unread_is_reported_again():
    """The active is stopped (SIGSTOP), the query's answer goes into its socket unread, then
    it is SIGKILLed: the worker reports the answers it sent within its liveness again, the
    new active finds no real answer for that id in the store and adopts it."""
    p, w, c = _start(b"adopt-unread", "--liveness", "30")  # 3 s at 100 ms heartbeats
    c.send(query("unread", "sleep", {"ms": 800}))
    _wait_running(w, 1)
    p.a.proc.send_signal(signal.SIGSTOP)
    wait_until(lambda: re.search(r"event=job_end .*agent=sleep", w.log()), 15,
               "the answer to be sent to the stopped broker")
    _take_over(p)
    c.send(query("unread", "sleep", {"ms": 800}))
    got = c.collect(["unread"], timeout=30)
    assert [m["type"] for m in _terminals(got["unread"])] == ["result"], got
    c.expect_quiet(0.5)
    assert "event=job_adopted" in p.b.log(), p.b.log()
    assert _runs(w) == 1, w.log()
    _stop_clean(p, w)


def _kill_active_and_wait_answer(p, w):
    p.a.kill()
    wait_until(lambda: re.search(r"event=job_end .*agent=sleep", w.log()), 15,
               "the query to end with no broker up")


def test_adopted_invocation_holds_its_session_lock():
    p, w, c = _start(b"adopt-session")
    c.send(query("first", "sleep", {"ms": SLEEP_MS}, session="s-adopt"))
    _wait_running(w, 1)
    _take_over(p)
    c.send(query("first", "sleep", {"ms": SLEEP_MS}, session="s-adopt"))
    wait_until(lambda: "event=job_adopted" in p.b.log(), 15, "the worker to report it")
    st = p.b.status()
    assert st["sessions_locked"] == 1, st  # rebuilt from what the worker reported
    c.send(query("second", "echo", {"n": 2}, session="s-adopt"))
    got = c.collect(["first", "second"], timeout=30)
    assert [m["type"] for m in _terminals(got["first"])] == ["result"], got
    assert [m["type"] for m in _terminals(got["second"])] == ["result"], got
    # The second ran after the first ended: its start follows the adopted job's end.
    log = w.log()
    end_first = re.search(r"event=job_end .*agent=sleep", log)
    start_second = re.search(r"event=job_start .*agent=echo", log)
    assert end_first and start_second and end_first.start() < start_second.start(), log
    assert _runs(w) == 1, log
    _stop_clean(p, w)


def _lose_one_work(p, w, c, qid):
    """Sends qid (not idempotent): the active stores its provisional worker_lost, naming the
    worker process, and sends the work, which the worker's test hook drops unread (as the
    socket of an active that dies would); then the active is SIGKILLed."""
    c.send(query(qid, "sleep", {"ms": 100}))
    wait_until(lambda: "event=test_work_dropped" in w.log(), 10, "the work to be dropped")
    assert p.a.status()["in_flight"] == 1  # the active counts it running on rw1
    _take_over(p)
    p.b.wait_workers(["rw1"])  # the same process, back with its report


def test_work_that_never_reached_its_worker_runs_on_the_resend():
    """The worker process the provisional answer names came back to the new active, and its
    complete report does not list the query: it never got the work, so the resend runs it
    (a real result, one run) instead of getting worker_lost when the window ends."""
    env = dict(os.environ, ACTOR_WORKER_TEST_DROP_WORK="1")
    p, w, c = _start(b"adopt-unreached", env=env)
    _lose_one_work(p, w, c, "lost")
    c.send(query("lost", "sleep", {"ms": 100}))
    got = c.collect(["lost"], timeout=30)
    assert [m["type"] for m in _terminals(got["lost"])] == ["result"], got
    c.expect_quiet(0.5)
    assert "event=resend_runs" in p.b.log(), p.b.log()
    assert _runs(w) == 1, w.log()  # the resend's run, the only one
    # Answered for real now: a resend after it is replayed, not run.
    c.send(query("lost", "sleep", {"ms": 100}))
    again = c.collect(["lost"], timeout=10)
    assert _terminals(again["lost"]) == _terminals(got["lost"]), again
    assert _runs(w) == 1, w.log()
    _stop_clean(p, w)


def test_parked_resend_runs_when_its_worker_comes_back_without_it():
    """The resend comes before the worker is back (parked); the worker's ready, complete and
    without the query, releases it to run."""
    env = dict(os.environ, ACTOR_WORKER_TEST_DROP_WORK="1")
    p, w, c = _start(b"adopt-unreached-parked", env=env)
    c.send(query("lost", "sleep", {"ms": 100}))
    wait_until(lambda: "event=test_work_dropped" in w.log(), 10, "the work to be dropped")
    w.proc.send_signal(signal.SIGSTOP)  # it cannot come back before the resend
    try:
        _take_over(p)
        c.send(query("lost", "sleep", {"ms": 100}))
        wait_until(lambda: "event=resend_parked" in p.b.log(), 10, "the resend to be parked")
    finally:
        w.proc.send_signal(signal.SIGCONT)
    got = c.collect(["lost"], timeout=30)
    assert [m["type"] for m in _terminals(got["lost"])] == ["result"], got
    c.expect_quiet(0.5)
    log = p.b.log()
    assert "event=resend_parked" in log and "event=resend_runs" in log, log
    assert log.index("event=resend_parked") < log.index("event=worker_ready"), log
    assert _runs(w) == 1, w.log()
    _stop_clean(p, w)


def test_work_its_worker_got_is_no_proof():
    """The work reached the worker (counted in its `received`), which did not keep the job
    (--max-held 0: cancelled at the reconnect, nothing listed in held): it may have run, so
    the resend gets the provisional worker_lost, and nothing runs it again."""
    p, w, c = _start(b"adopt-received", "--max-held", "0",
                     windows=("--adopt-window-ms", "2000", "--startup-grace-ms", "20000"))
    c.send(query("got", "sleep", {"ms": SLEEP_MS}))
    _wait_running(w, 1)
    _take_over(p)
    p.b.wait_workers(["rw1"])  # back, with its received counts
    c.send(query("got", "sleep", {"ms": SLEEP_MS}))
    got = c.collect(["got"], timeout=30)
    t = _terminals(got["got"])
    assert [(m["type"], m.get("code")) for m in t] == [("error", "worker_lost")], got
    log = p.b.log()
    assert "event=resend_runs" not in log, log
    assert "event=resend_not_reported" in log and "same_process=1" in log, log
    assert _runs(w) == 1, w.log()
    _stop_clean(p, w)


def test_fanout_child_running_at_a_takeover_is_adopted_and_the_root_answers_once():
    """A worker's call is adopted with its parent (PROTOCOL.md, "Broker pairs"): the fanout's
    worker keeps its pending call across the reconnect and lists it under the fanout's job;
    the child's job, whose origin names the caller's process and the call, is linked to it
    again on the new active, so the child's one run answers the call and the fanout answers
    its client once, with the child's output (not worker_lost)."""
    p, w, c = _start(b"adopt-fanout")
    fan = {"agent": "sleep", "inputs": [{"ms": SLEEP_MS}]}
    c.send(query("fan", "fanout", fan))
    _wait_running(w, 1)  # the child sleep runs: the call is pending
    _take_over(p)
    c.send(query("fan", "fanout", fan))
    got = c.collect(["fan"], timeout=30)
    t = _terminals(got["fan"])
    assert [m["type"] for m in t] == ["result"], got  # not worker_lost
    assert [o["slept_ms"] for o in t[0]["output"]] == [SLEEP_MS], got
    c.expect_quiet(0.5)  # one answer
    log = p.b.log()
    assert log.count("event=job_adopted") == 2, log  # the fanout and its child
    assert re.search(r"event=job_adopted .*agent=\"?sleep\"? caller=", log), log
    assert "adopt_refused" not in log and "call_not_adopted" not in log, log
    assert _runs(w) == 1, w.log()  # the child ran once, on the worker that kept it
    assert _runs(w, "fanout") == 1, w.log()
    _stop_clean(p, w)


def test_fanout_of_fanouts_at_a_takeover_is_adopted_at_every_level():
    """Nested calls: a fanout calling a fanout calling sleep, all on one worker, which lists
    them newest first (the grandchild before its caller): each level is linked to its call
    once its caller's job is adopted, and the root answers once with the grandchild's
    output."""
    p, w, c = _start(b"adopt-nested")
    fan = {"agent": "fanout", "inputs": [{"agent": "sleep", "inputs": [{"ms": SLEEP_MS}]}]}
    c.send(query("nest", "fanout", fan))
    _wait_running(w, 1)
    _take_over(p)
    c.send(query("nest", "fanout", fan))
    got = c.collect(["nest"], timeout=30)
    t = _terminals(got["nest"])
    assert [m["type"] for m in t] == ["result"], got
    assert [[o["slept_ms"] for o in inner] for inner in t[0]["output"]] == [[SLEEP_MS]], got
    c.expect_quiet(0.5)
    log = p.b.log()
    assert log.count("event=job_adopted") == 3, log
    assert "adopt_refused" not in log and "call_not_adopted" not in log, log
    assert _runs(w) == 1 and _runs(w, "fanout") == 2, w.log()
    _stop_clean(p, w)


def test_parallel_sub_invocations_at_a_takeover_run_on_under_the_root_lock():
    """Sub-invocations (queries with `parent`: a parallel agent's children, in a session) are
    linked to their parent's invocation on the new active: their state writes, made after the
    takeover, reach the root's next step and are stored once in the session (under the
    root's rebuilt lock), and each child ran once."""
    plugin = os.environ.get("ACTOR_PLUGIN_ADK", "")
    if not plugin:
        abtest.skip("set ACTOR_PLUGIN_ADK to tests/plugins' adk_test module")
    path = os.path.join(abtest.tmpdir(), "adopt-agents.json")
    with open(path, "w") as f:
        json.dump({"agents": [
            {"name": "fan", "type": "parallel", "sub_agents": ["adk_where", "adk_where2"]},
            {"name": "fan_then_read", "type": "sequential", "sub_agents": ["fan", "adk_state"]},
        ]}, f)
    p, w, c = _start(b"adopt-parallel", "--plugin", plugin, "--agents", path)
    get = ["where.adk_where", "where.adk_where2"]
    q = query("par", "fan_then_read", {"ms": SLEEP_MS, "get": get}, session="s-par")
    c.send(q)
    wait_until(lambda: _runs(w, "adk_where") == 1 and _runs(w, "adk_where2") == 1, 10,
               "both children to run")
    _take_over(p)
    c.send(q)
    got = c.collect(["par"], timeout=30)
    t = _terminals(got["par"])
    assert [m["type"] for m in t] == ["result"], got
    assert t[0]["output"] == {k: "rw1" for k in get}, got  # the children's writes, seen
    c.expect_quiet(0.5)
    log = p.b.log()
    assert re.search(r"event=job_adopted .*agent=\"?adk_where\"? caller=.*sub_invocation=1",
                     log), log
    assert "adopt_refused" not in log and "call_not_adopted" not in log, log
    c.send({"v": 1, "type": "session.get", "id": "g", "session": "s-par"})
    stored = _terminals(c.collect(["g"], timeout=10)["g"])[0]["output"]
    authors = [e["author"] for e in stored["events"]]
    assert authors.count("adk_where") == 1 and authors.count("adk_where2") == 1, stored
    assert stored["state"] == {k: "rw1" for k in get}, stored
    assert _runs(w, "adk_where") == 1 and _runs(w, "adk_where2") == 1, w.log()
    _stop_clean(p, w)


def _fanout_on_its_own_worker(rid, child_ms, start_b=True):
    """A pair with a short adoption window; worker rwa (one slot, lends none) runs the fanout
    `root`, so its child goes elsewhere: to worker rwb when start_b (it runs there), or it
    waits in the active's queue."""
    if not abtest.real_worker_available():
        abtest.skip("set ACTOR_WORKER to the actor-worker binary")
    p = Pair("--adopt-window-ms", "5000", "--startup-grace-ms", "5000")
    wa = abtest.RealWorker(p.a, "rwa", capacity=1, extra=[
        "--broker", p.b.workers, "--log-level", "debug", "--max-lent", "0"]).start()
    p.a.wait_workers(["rwa"])
    c = PairClient(p, rid)
    fan = {"agent": "sleep", "inputs": [{"ms": child_ms}]}
    c.send(query("root", "fanout", fan))
    wait_until(lambda: _runs(wa, "fanout") == 1, 10, "the fanout to run")
    wb = None
    if start_b:
        wb = _second_worker(p)
        _wait_running(wb, 1)  # the child runs on the second worker
    # The active posts its provisional answers (the root's; the call's once sent on) to
    # PostgreSQL without waiting: a kill before they land would test another case.
    want = "2" if start_b else "1"
    wait_until(lambda: test_pair.PG.sql("SELECT count(*) FROM dedup") == want, 10,
               "the provisional answers to be stored")
    return p, wa, wb, c, fan


def _second_worker(p):
    return abtest.RealWorker(p.a, "rwb", extra=["--broker", p.b.workers,
                                               "--log-level", "debug"]).start()


def test_child_whose_caller_died_too_is_cancelled_and_the_root_answered_once():
    """The fanout's worker dies with the active: the child, reported by its own worker, waits
    for a caller that never comes and is cancelled there when the adoption window ends (one
    error, logged with why); the call it answered is gone with its worker, and the root's
    client gets exactly one terminal reply, the provisional worker_lost (the root is not
    idempotent and no worker kept it)."""
    p, wa, wb, c, fan = _fanout_on_its_own_worker(b"adopt-orphan", 60000)
    _take_over(p, also=wa)
    c.send(query("root", "fanout", fan))
    got = c.collect(["root"], timeout=30)
    t = _terminals(got["root"])
    assert [(m["type"], m.get("code")) for m in t] == [("error", "worker_lost")], got
    wait_until(lambda: "event=job_cancel" in wb.log(), 15, "the child to be cancelled")
    c.expect_quiet(0.5)
    log = p.b.log()
    assert len(re.findall(r"event=adopt_refused .*its caller did not list the call", log)) \
        == 1, log
    assert log.count("event=job_adopted") == 0, log
    assert _runs(wb) == 1 and _runs(wa) == 0, (wa.log(), wb.log())  # the child ran once
    assert wb.log().count("event=job_cancel") == 1, wb.log()
    _stop_clean(p, wb)


def test_call_whose_child_worker_died_too_ends_worker_lost_not_run_twice():
    """The child's worker dies with the active: the caller keeps and lists its call, nobody
    reports the child, and the old active had sent its work on (its provisional answer, stored
    under the caller's process, names that worker process, which never came back): the call
    is not run again but ends worker_lost when the window ends, and the fanout answers its
    client once with that error."""
    p, wa, wb, c, fan = _fanout_on_its_own_worker(b"adopt-childlost", 60000)
    _take_over(p, also=wb)
    c.send(query("root", "fanout", fan))
    got = c.collect(["root"], timeout=30)
    t = _terminals(got["root"])
    assert [(m["type"], m.get("code")) for m in t] == [("error", "worker_lost")], got
    assert "no worker reported its query" in t[0]["message"], got
    c.expect_quiet(0.5)
    log = p.b.log()
    assert log.count("event=call_not_adopted") == 1 and "call_runs" not in log, log
    assert _runs(wb) == 1 and _runs(wa) == 0, (wa.log(), wb.log())  # ran once, not again
    _stop_clean(p, wa)


def test_call_the_old_active_never_sent_on_runs_after_the_takeover():
    """The fanout's child waits in the active's queue (no free worker) when the active dies:
    no work was sent, so no provisional answer names it. The caller lists the call with its
    query; nobody reports a child; when the window ends the new active runs the query as the
    caller's (logged call_runs), on the worker that has come meanwhile, and the fanout
    answers its client once with the child's output."""
    p, wa, _, c, fan = _fanout_on_its_own_worker(b"adopt-queued", 300, start_b=False)
    _take_over(p)
    wb = _second_worker(p)
    c.send(query("root", "fanout", fan))
    got = c.collect(["root"], timeout=30)
    t = _terminals(got["root"])
    assert [m["type"] for m in t] == ["result"], got
    assert [o["slept_ms"] for o in t[0]["output"]] == [300], got
    c.expect_quiet(0.5)
    log = p.b.log()
    assert log.count("event=call_runs") == 1 and "call_not_adopted" not in log, log
    assert _runs(wb) == 1 and _runs(wa) == 0, (wa.log(), wb.log())
    _stop_clean(p, wb)
    assert wa.kill(signal.SIGTERM) == 0, wa.log()


def _curve_pair(clients, workers):
    """A pair under CURVE: both brokers with one key pair and one set of allowlists."""
    from test_security import SecureBroker, write
    test_pair.PG.reset()
    args = ["--pair", "--sessions", test_pair.PG.url] + list(WINDOWS)
    a = SecureBroker(clients=clients, workers=workers, extra=args).start()
    b = SecureBroker(clients=clients, workers=workers, extra=args)
    b.pair, b.admin = a.pair, a.admin  # one service: the same server key
    write(b.key_path, "public = %s\nsecret = %s\n" % a.pair)
    write(b.pub_path, a.pair[0] + "\n")
    b.set_keys(clients, workers)
    b.proc = abtest.spawn(b.argv(), "broker-%d.log" % b.ports["clients"])
    wait_until(lambda: "event=standby" in b.log(), 10, "the standby")
    p = Pair.__new__(Pair)
    p.a, p.b = a, b
    return p


def test_curve_client_resend_attaches_to_the_adopted_job_of_its_key_only():
    """Under CURVE a query's origin carries its client's key: the new active adopts the job
    for that key and routing id. A resend under another key with that routing id is refused
    (unauthorized), as on one broker; the key's own resend gets the one answer."""
    from test_security import keypair, write_pair, curve_socket, after_each as close_clients
    if not abtest.real_worker_available():
        abtest.skip("set ACTOR_WORKER to the actor-worker binary")
    alice, mallory, wk = keypair(), keypair(), keypair()
    p = _curve_pair([alice[0], mallory[0]], [wk[0]])
    kp = write_pair("worker-adopt-curve", wk)
    w = abtest.RealWorker(p.a, "rw1", extra=["--broker", p.b.workers, "--log-level", "debug",
                                             "--curve-server-key", p.a.pub_path,
                                             "--curve-key", kp]).start()
    p.a.wait_workers(["rw1"])

    def dealer(pair):
        s = curve_socket(abtest.zmq.DEALER, p.a.pair[0], pair)
        s.setsockopt(abtest.zmq.ROUTING_ID, b"adopt-curve")
        s.setsockopt(abtest.zmq.IMMEDIATE, 1)
        s.connect(p.a.clients)
        s.connect(p.b.clients)
        return s

    def ask(pair, qid, tries=20):
        """Sends qid on a fresh connection until one is answered (under CURVE a routing id
        is given to a new connection only once the last one holding it is gone)."""
        for _ in range(tries):
            s = dealer(pair)
            s.send(abtest.pack(query(qid, "sleep", {"ms": SLEEP_MS})))
            got = abtest.unpack(s.recv()) if s.poll(3000) else None
            s.close(0)
            if got:
                return got
        raise AssertionError("no answer to %s" % qid)

    try:
        s = dealer(alice)
        s.send(abtest.pack(query("once", "sleep", {"ms": SLEEP_MS})))  # not idempotent
        _wait_running(w, 1)
        s.close(0)
        _take_over(p)
        wait_until(lambda: "event=job_adopted" in p.b.log(), 15, "the worker to report it")
        got = ask(mallory, "once")
        assert got["type"] == "error" and got["code"] == "unauthorized", got
        got = ask(alice, "once")
        assert got["type"] == "result" and got["id"] == "once", got  # not worker_lost
        assert _runs(w) == 1, w.log()
        assert "adopt_refused" not in p.b.log(), p.b.log()
    finally:
        close_clients()
    assert w.kill(signal.SIGTERM) == 0, w.log()
    for mark in abtest.SANITIZER_MARKS:
        assert mark not in w.log(), w.log()
    p.b.stop()


if __name__ == "__main__":
    test_pair.PG = abtest.PgServer()
    abtest.run_tests(globals())
