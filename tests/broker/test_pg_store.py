"""The PostgreSQL session store through a REAL actor-broker (--sessions postgresql://...), on a
server this script starts in a temp folder (abtest.PgServer; skipped, 77, where none can
start): test_sessions.py's request tests run again with each "file" a fresh database; an
invocation's session outlives a broker killed with -9; after a kill -9 an answered query id is
answered once from PostgreSQL's dedup table, a non-idempotent one that was running is
answered worker_lost (not run twice) and an idempotent one runs once more; a store that cannot be reached stops the broker
at start, naming it. Env: ACTOR_BROKER, ACTOR_SESSION_FILL, ACTORCTL."""
import itertools
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, FakeWorker, ADK_AGENTS, query, start_workers  # noqa: E402

import test_sessions  # noqa: E402
import test_invocations  # noqa: E402
from test_lifecycle import IdClient, _works_exactly, _terminals  # noqa: E402

PG = None
_n = itertools.count()


def fresh_db():
    """A new, empty database on the server; its URL."""
    name = "t%d" % next(_n)
    PG.sql("CREATE DATABASE %s" % name)
    return PG.url.replace("/postgres?", "/%s?" % name)


def test_session_requests_on_postgresql():
    test_sessions.db_path = lambda name="": fresh_db()
    for t in (test_sessions.test_session_get_returns_merged_state_and_events,
              test_sessions.test_session_get_unknown_or_foreign_is_not_found_must,
              test_sessions.test_session_list_pages_in_id_order_with_filters,
              test_sessions.test_session_delete_then_gone,
              test_sessions.test_bad_session_requests_are_answered_naming_the_field,
              test_sessions.test_broker_restart_keeps_sessions,
              test_sessions.test_actorctl_session_commands):
        t()
        abtest.kill_all()


def test_invocation_session_survives_kill_9():
    url = fresh_db()
    b, _ = test_invocations.setup("--sessions", url)
    c = b.client()
    _, out1 = test_invocations.call_ok(
        c, test_invocations.adk("q1", "s1", {"emit": [{"actions": {"state_delta": {"n": 1}}}]}))
    b.kill()
    b2 = Broker("--sessions", url, ports=b.ports).start()
    b2.wait_workers(["w1"])
    c2 = b2.client()
    _, out2 = test_invocations.call_ok(
        c2, test_invocations.adk("q2", "s1", {"emit": [{"actions": {"state_delta": {"n": 2}}}]}))
    assert out2["state"] == {"n": 1}, out2
    assert [e["invocation"] for e in out2["history"]] == [out1["invocation"]] * 2, out2
    r = test_invocations.session_get(c2, "s1")["output"]
    assert r["state"] == {"n": 2} and r["events_total"] == 4, r
    b2.stop()


def test_answered_id_is_answered_once_after_kill_9():
    url = fresh_db()
    b = Broker("--sessions", url).start()
    (w,) = start_workers(b, ["w1"], capacity=4)
    c = IdClient(b.clients, b"client-PG")
    _, done = c.call(query("done", "sleep", {"ms": 10}))
    assert done["type"] == "result", done
    c.send(query("once", "sleep", {"ms": 800}))  # not idempotent
    c.send(query("idem", "sleep", {"ms": 800}, idempotent=True))
    w.wait_stats(lambda s: s["works"] == 3, 5, "both sleeps to run")
    b.kill()
    # done's answer and once's worker_lost (posted before its work was sent), in PostgreSQL:
    # the dead broker's server process may still be committing what it was sent last
    abtest.wait_until(lambda: PG.sql("SELECT count(*) FROM dedup", url) == "2", 10,
                      "the two remembered rows in PostgreSQL")
    b2 = Broker("--sessions", url, ports=b.ports).start()
    b2.wait_workers(["w1"])
    assert "loaded=2" in b2.log(), b2.log()
    for qid in ("done", "once", "idem"):
        c.send(query(qid, "sleep", {"ms": 10}, idempotent=qid == "idem"))
    got = c.collect(["done", "once", "idem"], timeout=10)
    assert _terminals(got["done"]) == [done], got
    assert [t.get("code") for t in _terminals(got["once"])] == ["worker_lost"], got
    assert [t["type"] for t in _terminals(got["idem"])] == ["result"], got
    c.expect_quiet(0.5)
    _works_exactly(c, w, 4)  # done and once ran once; idem once on each broker
    b2.stop()


def test_unreachable_store_stops_the_broker_naming_it():
    url = "postgresql://actorbus:secret@/postgres?host=%s/none&connect_timeout=2" % PG.dir
    b = Broker("--sessions", url)
    p = abtest.spawn(b.argv(), "broker-nopg.log")
    assert p.wait(15) == 1
    log = abtest.read_log(p)
    assert "event=sessions_failed" in log and "connect" in log, log
    assert "secret" not in log, log  # the password stays out of the log


if __name__ == "__main__":
    PG = abtest.PgServer()
    abtest.run_tests(globals())
