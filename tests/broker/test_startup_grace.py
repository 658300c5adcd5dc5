"""The broker's startup grace (--startup-grace-ms, liveness x heartbeat by default): right
after it starts, a query for an agent no worker has announced yet waits instead of failing,
since the workers of a restarted broker come back within that time; a held query runs when a
worker announces its agent, ends shutting_down in a drain, and ends unknown_agent (naming the
agent) when the grace ends with no host. Env: ACTOR_BROKER."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402
from abtest import Broker, query, start_workers  # noqa: E402
from test_lifecycle import _terminals  # noqa: E402


def test_queries_right_after_a_restart_wait_for_their_workers():
    b = Broker("--startup-grace-ms", "60000").start()
    c = b.client()
    c.send(query("early", "echo", "before any worker"))
    c.send(query("never", "nosuch", {}))
    c.expect_quiet(0.3)  # held, not refused: a worker may be on its way
    start_workers(b, ["w1"], capacity=2)
    got = c.collect(["early"], timeout=10)
    assert _terminals(got["early"]) == [
        {"v": 1, "type": "result", "id": "early", "output": "before any worker"}], got
    b.stop()  # the drain answers the held query of an agent nobody announced
    got = c.collect(["never"], timeout=10)
    assert [t["code"] for t in _terminals(got["never"])] == ["shutting_down"], got
    # After the grace an agent nobody announced is refused, naming it.
    b2 = Broker("--startup-grace-ms", "0").start()
    _, e = b2.client().call(query("late", "nosuch", {}))
    assert e["code"] == "unknown_agent" and "nosuch" in e["message"], e
    b2.stop()


def test_held_queries_end_unknown_agent_when_the_grace_ends():
    b = Broker("--startup-grace-ms", "300").start()
    c = b.client()
    c.send(query("h1", "nosuch", {}))
    got = c.collect(["h1"], timeout=10)
    (t,) = _terminals(got["h1"])
    assert t["code"] == "unknown_agent" and "nosuch" in t["message"], got
    b.stop()


if __name__ == "__main__":
    abtest.run_tests(globals())
