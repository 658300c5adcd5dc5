"""The broker's session requests (proto/PROTOCOL.md, "Sessions") against a REAL actor-broker
whose --sessions file was filled beforehand through the store's own API (the session_fill
helper, env ACTOR_SESSION_FILL): session.get/list/delete over a DEALER and a REQ, the errors
for bad requests, actorctl session get|list|delete, the in-memory default, and a restart (clean
and kill -9) that keeps every session. The last test times listing 10k sessions and loading
one with 3k events over the wire (printed, not asserted).
Env: ACTOR_BROKER, ACTOR_SESSION_FILL, ACTORCTL."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker  # noqa: E402


def fill_exe():
    exe = os.environ.get("ACTOR_SESSION_FILL")
    assert exe and os.path.isfile(exe), "set ACTOR_SESSION_FILL to the session_fill helper"
    return exe


def fill(path, lines):
    """Runs session_fill on path with one command per item (fields joined by tabs)."""
    text = "\n".join("\t".join(str(f) for f in line) for line in lines) + "\n"
    p = subprocess.run([fill_exe(), path], input=text, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, "session_fill failed: %s" % p.stderr


def db_path(name="sessions.db"):
    return os.path.join(abtest.tmpdir(), "%d-%s" % (time.monotonic_ns(), name))


SAMPLE = [
    ("create", "s-alice", "shop", "alice",
     '{"k":1,"user:lang":"en","app:theme":"dark","temp:x":1}'),
    ("append", "s-alice", "user", '{"content":{"parts":[{"text":"hi"}]}}', '{"k":2}'),
    ("append", "s-alice", "agent", '{"content":{"parts":[{"text":"hello"}]}}',
     '{"app:theme":null,"seen":true,"temp:scratch":[1]}'),
    ("create", "s-bob", "shop", "bob", '{"user:lang":"fr"}'),
    ("create", "s-other", "bank", "alice", ""),
]


def sample_broker(*args):
    path = db_path()
    fill(path, SAMPLE)
    return Broker("--sessions", path, *args).start(), path


def req(c, m, timeout=10.0):
    _, r = c.call(dict({"v": 1}, **m), timeout)
    return r


def get(c, session, **kw):
    return req(c, dict({"type": "session.get", "id": "g", "session": session}, **kw))


def listing(c, **kw):
    return req(c, dict({"type": "session.list", "id": "l"}, **kw))


def expect_error(r, code, message=None):
    assert r["type"] == "error" and r["code"] == code, r
    if message is not None:
        assert r["message"] == message, r


# ---------------------------------------------------------------- requests


def test_session_get_returns_merged_state_and_events():
    b, _ = sample_broker()
    c = b.client()
    r = get(c, "s-alice", events=10)
    assert r["type"] == "result" and r["id"] == "g", r
    out = r["output"]
    assert out["session"] == "s-alice" and out["app"] == "shop" and out["user"] == "alice", out
    assert out["state"] == {"k": 2, "user:lang": "en", "seen": True}, out["state"]
    assert out["events_total"] == 2 and len(out["events"]) == 2, out
    e1, e2 = out["events"]
    assert (e1["seq"], e1["author"], e2["seq"], e2["author"]) == (1, "user", 2, "agent"), out
    assert e2["event"] == {"content": {"parts": [{"text": "hello"}]}}, e2
    assert e1["invocation"] == "inv-fill" and e1["id"] == "ev" and e1["ts_ms"] > 0, e1
    assert out["updated_ms"] >= out["created_ms"] > 0, out
    r = get(c, "s-alice", events=1)  # the newest only
    assert [e["seq"] for e in r["output"]["events"]] == [2], r
    r = get(c, "s-alice")  # default: the newest 100
    assert len(r["output"]["events"]) == 2, r
    r = get(c, "s-alice", events=0)
    assert r["output"]["events"] == [] and r["output"]["events_total"] == 2, r
    r = get(c, "s-bob")  # alice's app:theme was deleted for the whole app
    assert r["output"]["state"] == {"user:lang": "fr"}, r
    r = get(c, "s-alice", app="shop", user="alice")
    assert r["type"] == "result", r
    b.stop()


def test_session_get_unknown_or_foreign_is_not_found_must():
    """MUST: session.get of a session that does not exist (or not under the app and user
    given) is answered with error `not_found`."""
    b, _ = sample_broker()
    c = b.client()
    expect_error(get(c, "nope"), "not_found", "no session 'nope'")
    expect_error(get(c, "s-alice", app="bank"), "not_found")
    expect_error(get(c, "s-alice", user="bob"), "not_found")
    r = req(c, {"type": "session.get", "id": 7, "session": "nope"})
    assert r["id"] == 7, r
    b.stop()


def test_session_list_pages_in_id_order_with_filters():
    b, _ = sample_broker()
    c = b.client()
    r = listing(c)
    assert r["type"] == "result", r
    rows = r["output"]["sessions"]
    assert [s["session"] for s in rows] == ["s-alice", "s-bob", "s-other"], rows
    assert r["output"]["next"] is None, r
    assert rows[0] == {"session": "s-alice", "app": "shop", "user": "alice", "events": 2,
                       "created_ms": rows[0]["created_ms"],
                       "updated_ms": rows[0]["updated_ms"]}, rows[0]
    r = listing(c, limit=2)
    assert [s["session"] for s in r["output"]["sessions"]] == ["s-alice", "s-bob"], r
    assert r["output"]["next"] == "s-bob", r
    r = listing(c, limit=2, after="s-bob")
    assert [s["session"] for s in r["output"]["sessions"]] == ["s-other"], r
    assert r["output"]["next"] is None, r
    r = listing(c, app="shop")
    assert [s["session"] for s in r["output"]["sessions"]] == ["s-alice", "s-bob"], r
    r = listing(c, user="alice")
    assert [s["session"] for s in r["output"]["sessions"]] == ["s-alice", "s-other"], r
    r = listing(c, app="bank", user="alice")
    assert [s["session"] for s in r["output"]["sessions"]] == ["s-other"], r
    r = listing(c, app="none")
    assert r["output"] == {"sessions": [], "next": None}, r
    b.stop()


def test_session_delete_then_gone():
    b, _ = sample_broker()
    c = b.client()
    r = req(c, {"type": "session.delete", "id": "d", "session": "s-bob"})
    assert r["type"] == "result" and r["output"] == {"deleted": True}, r
    r = req(c, {"type": "session.delete", "id": "d", "session": "s-bob"})
    assert r["output"] == {"deleted": False}, r
    expect_error(get(c, "s-bob"), "not_found")
    assert [s["session"] for s in listing(c)["output"]["sessions"]] == ["s-alice", "s-other"]
    b.stop()


def test_bad_session_requests_are_answered_naming_the_field():
    b, _ = sample_broker()
    c = b.client()
    expect_error(req(c, {"type": "session.get", "id": "x"}), "bad_request",
                 "field 'session' is missing")
    expect_error(req(c, {"type": "session.get", "session": "s-alice"}), "bad_request",
                 "field 'id' is missing")
    expect_error(req(c, {"type": "session.get", "id": 1, "session": "s", "events": -1}),
                 "bad_request", "field 'events' must be a non-negative integer")
    expect_error(get(c, "s-alice", events=10001), "bad_request",
                 "field 'events' is 10001, over the limit of 10000")
    expect_error(get(c, ""), "bad_request", "field 'session' must not be empty")
    expect_error(get(c, "x" * 300), "bad_request", "field 'session' is longer than 256 bytes")
    expect_error(req(c, {"type": "session.list", "id": 1, "limit": 0}), "bad_request",
                 "field 'limit' must be a positive integer")
    expect_error(listing(c, limit=5000), "bad_request",
                 "field 'limit' is 5000, over the limit of 1000")
    expect_error(listing(c, app=5), "bad_request", "field 'app' must be a string")
    r = listing(c, after=b"\xff".decode("latin-1"))  # a str, but not of the ids here
    assert r["type"] == "result", r
    c.send_frames([abtest.pack({"v": 1, "type": "session.list", "id": 1, "user": 3})])
    expect_error(c.recv(), "bad_request", "field 'user' must be a string")
    # the broker keeps serving; a REQ socket gets the one reply too
    q = b.client("req")
    q.send({"v": 1, "type": "session.list", "id": "r", "limit": 1})
    r = q.recv()
    assert r["type"] == "result" and r["output"]["next"] == "s-alice", r
    b.stop()


def test_default_store_is_memory_and_empty():
    b = Broker("--max-sessions", "5").start()
    c = b.client()
    assert listing(c)["output"] == {"sessions": [], "next": None}
    expect_error(get(c, "s"), "not_found")
    r = req(c, {"type": "session.delete", "id": "d", "session": "s"})
    assert r["output"] == {"deleted": False}, r
    assert "event=sessions store=memory path=- sessions=0 max_sessions=5" in b.log(), b.log()
    b.stop()


def test_unusable_session_file_stops_the_broker():
    path = db_path("junk.db")
    with open(path, "w") as f:
        f.write("not a database" * 100)
    b = Broker("--sessions", path)
    p = abtest.spawn(b.argv(), "broker-junk.log")
    assert p.wait(10) == 1
    assert "event=sessions_failed" in abtest.read_log(p), abtest.read_log(p)


def test_broker_restart_keeps_sessions():
    """A session survives a broker restart: a clean SIGTERM, then a kill -9 right after a
    delete (a committed write survives the process)."""
    b, path = sample_broker()
    c = b.client()
    before = get(c, "s-alice", events=10)["output"]
    b.stop()
    b2 = Broker("--sessions", path).start()
    c2 = b2.client()
    after = get(c2, "s-alice", events=10)["output"]
    assert after == before, (before, after)
    r = req(c2, {"type": "session.delete", "id": "d", "session": "s-other"})
    assert r["output"] == {"deleted": True}, r
    b2.kill()
    b3 = Broker("--sessions", path).start()
    c3 = b3.client()
    names = [s["session"] for s in listing(c3)["output"]["sessions"]]
    assert names == ["s-alice", "s-bob"], names
    assert get(c3, "s-alice", events=10)["output"] == before
    assert "sessions=2" in b3.log(), b3.log()
    b3.stop()


# ---------------------------------------------------------------- actorctl


def ctl(b, *args):
    exe = os.environ.get("ACTORCTL")
    assert exe and os.path.isfile(exe), "set ACTORCTL to the actorctl binary"
    p = subprocess.run([exe, "--broker", b.clients] + list(args), capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_actorctl_session_commands():
    b, _ = sample_broker()
    rc, out, err = ctl(b, "session", "list")
    assert rc == 0, (rc, out, err)
    lines = out.splitlines()
    assert lines[0].split() == ["SESSION", "APP", "USER", "EVENTS", "UPDATED"], out
    assert [ln.split()[0] for ln in lines[1:]] == ["s-alice", "s-bob", "s-other"], out
    assert lines[1].split()[1:4] == ["shop", "alice", "2"], out
    rc, out, err = ctl(b, "session", "list", "--limit", "1")
    assert rc == 0 and len(out.splitlines()) == 2, (out, err)
    assert "more: actorctl session list --after s-alice" in err, err
    rc, out, err = ctl(b, "session", "list", "--limit", "1", "--all", "--app", "shop")
    assert [ln.split()[0] for ln in out.splitlines()[1:]] == ["s-alice", "s-bob"], out
    rc, out, err = ctl(b, "--json", "session", "list", "--user", "alice")
    body = json.loads(out)
    assert [s["session"] for s in body["output"]["sessions"]] == ["s-alice", "s-other"], out
    rc, out, err = ctl(b, "session", "get", "s-alice", "--events", "1")
    assert rc == 0, (rc, out, err)
    assert out.startswith("session s-alice  app shop  user alice  events 2 (showing 1)"), out
    assert 'state {"k":2,"seen":true,"user:lang":"en"}' in out, out
    assert "#2 " in out and " agent: " in out and "#1 " not in out, out
    rc, out, err = ctl(b, "--json", "session", "get", "s-alice")
    assert rc == 0 and json.loads(out)["output"]["events_total"] == 2, out
    rc, out, err = ctl(b, "session", "get", "nope")
    assert rc == 1 and "error not_found: no session 'nope'" in err, (rc, err)
    rc, out, err = ctl(b, "session", "get", "s-alice", "--app", "bank")
    assert rc == 1 and "not_found" in err, (rc, err)
    rc, out, err = ctl(b, "session", "delete", "s-other")
    assert rc == 0 and out.strip() == "deleted s-other", (rc, out, err)
    rc, out, err = ctl(b, "session", "delete", "s-other")
    assert rc == 1 and "no session 's-other'" in err, (rc, out, err)
    for bad in (["session"], ["session", "get"], ["session", "list", "x"], ["session", "nap"]):
        rc, out, err = ctl(b, *bad)
        assert rc == 2, (bad, rc, out, err)
    b.stop()


# ---------------------------------------------------------------- scale


def test_scale_list_10k_sessions_and_get_3k_events_over_the_wire():
    path = db_path("scale.db")
    fill(path, [("bulk", "sess-", 10000, "bench", 10), ("events", "sess-004242", 3000)])
    b = Broker("--sessions", path).start()
    c = b.client()
    t0 = time.perf_counter()
    r = listing(c, limit=1000)
    one_page = (time.perf_counter() - t0) * 1000
    assert len(r["output"]["sessions"]) == 1000 and r["output"]["next"] == "sess-000999", r
    t0 = time.perf_counter()
    total, after, pages = 0, None, 0
    while True:
        kw = {"limit": 1000}
        if after:
            kw["after"] = after
        out = listing(c, **kw)["output"]
        total += len(out["sessions"])
        pages += 1
        after = out["next"]
        if after is None:
            break
    all_pages = (time.perf_counter() - t0) * 1000
    assert total == 10000 and pages == 10, (total, pages)
    t0 = time.perf_counter()
    out = get(c, "sess-004242", events=3000)["output"]
    load = (time.perf_counter() - t0) * 1000
    assert len(out["events"]) == 3000 and out["events"][-1]["seq"] == 3000, len(out["events"])
    assert out["state"] == {"turn": 2999}, out["state"]
    print("# over the wire: session.list one page of 1000 of 10000: %.1f ms; all 10 pages: "
          "%.1f ms; session.get with 3000 events: %.1f ms" % (one_page, all_pages, load),
          flush=True)
    b.stop()


if __name__ == "__main__":
    if not os.environ.get("ACTOR_SESSION_FILL"):
        abtest.skip("ACTOR_SESSION_FILL is not set")
    abtest.run_tests(dict(globals()))
