#!/usr/bin/python3
"""tests/fuzz/make_corpus.py: writes the seed corpus for fuzz_decode (corpus/decode/): one
valid message of every 1/ABP type, shaped as proto's encoders write them, plus tricky bytes
(huge counts, deep nesting, truncation, bad versions) and a few JSON texts. Run once; the
files are committed. Usage: /usr/bin/python3 tests/fuzz/make_corpus.py"""
import os

import msgpack

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "decode")


def msg(type_, **fields):
    return msgpack.packb({"v": 1, "type": type_, **fields}, use_bin_type=True)


SEEDS = {
    # every message type, valid
    "query": msg("query", id="q1", agent="echo", input={"x": [1, 2.5, None, True]},
                 session="s1", timeout_ms=1000, idempotent=True),
    "query_int_id": msg("query", id=42, agent="sleep", input={"ms": 10}),
    "cancel_id": msg("cancel", id="q1"),
    "cancel_job": msg("cancel", job=7),
    "publish": msg("publish", topic="news.a", data={"k": b"\x00\x01bin"}, id=3),
    "status": msg("status", id="st"),
    "event": msg("event", id="q1", seq=1, event={"done": 0}),
    "result": msg("result", id="q1", output=[1, "two", {"three": 3.0}]),
    "error": msg("error", id=None, code="bad_request", message="field 'agent' is missing"),
    "ready": msg("ready", name="w1", capacity=16, agents=["echo", "sleep", "fanout"],
                 heartbeat_ms=1000),
    "work": msg("work", job=1 << 40, agent="fanout",
                input={"agent": "echo", "inputs": [1, 2]}, session="s", timeout_ms=500,
                attempt=1),
    "job_event": msg("event", job=9, event={"cleanup": True}),
    "job_result": msg("result", job=9, output={"slept_ms": 5}),
    "job_error": msg("error", job=9, code="cancelled", message="by client"),
    "credit": msg("credit", capacity=4),
    "heartbeat": msg("heartbeat"),
    "disconnect": msg("disconnect"),
    "session_get": msg("session.get", id="g1", session="s1", app="shop", user="ann", events=10),
    "session_list": msg("session.list", id=2, app="shop", user="ann", after="s0", limit=50),
    "session_delete": msg("session.delete", id="d1", session="s1"),
    "status_reply": msg("status", id=None, workers=[{"name": "w1", "capacity": 2,
                        "in_flight": 1, "agents": ["echo"]}], capacity=2, in_flight=1,
                        queued=0, clients=1),
    "budget": msg("budget", model_concurrency=4, model_rps=2.5, model_burst=2),
    "budget_acquire": msg("budget.acquire", req=1, backend="default"),
    "budget_grant": msg("budget.grant", req=1),
    "budget_deny": msg("budget.deny", req=2, code="overloaded", message="too many waiting"),
    "budget_release": msg("budget.release", backend="default"),
    "budget_cancel": msg("budget.cancel", req=3),
    # tricky bytes
    "huge_array32": bytes([0xdd, 0xff, 0xff, 0xff, 0xff]),
    "huge_map32": bytes([0xdf, 0xff, 0xff, 0xff, 0xff]),
    "deep_nesting": bytes([0x91] * 40 + [0xc0]),
    "truncated_str32": bytes([0x81, 0xa1, ord("a"), 0xdb, 0x00, 0x01, 0x00, 0x00]) + b"abc",
    "trailing_bytes": msg("heartbeat") + b"\xc0",
    "version_2": msgpack.packb({"v": 2, "type": "query", "id": 1, "agent": "echo"}),
    "ext_and_keys": msgpack.packb({1: msgpack.ExtType(5, b"abcd"), (1, 2): -1.5, b"b": None},
                                  use_bin_type=True),
    "never_used_c1": bytes([0x92, 0x01, 0xc1]),
    # JSON text (the target also parses each input as JSON)
    "json_object": b'{"a":[1,-2.5e3,true,null,"\\u00e9\\ud83d\\ude00"],"b":{}}',
    "json_numbers": b"[18446744073709551615,-9223372036854775808,1e400,0.1]",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} files to {OUT}")


if __name__ == "__main__":
    main()
