#!/usr/bin/env python3
"""A complete 1/ABP client with pyzmq and msgpack only (no actorbus code): sends one query,
prints each event as it arrives, then the result. Exit 0 on a result, 1 on an error.
    client.py [--broker tcp://127.0.0.1:5555] [--timeout S] AGENT ['JSON input']"""
import argparse
import json
import sys

import msgpack
import zmq


def show(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                      default=repr)


def main():
    ap = argparse.ArgumentParser(description="send one query to an actorbus broker")
    ap.add_argument("--broker", default="tcp://127.0.0.1:5555")
    ap.add_argument("--timeout", type=float, default=30, help="seconds to wait for a reply")
    ap.add_argument("agent")
    ap.add_argument("input", nargs="?", default="null", help="JSON (default null)")
    args = ap.parse_args()

    sock = zmq.Context.instance().socket(zmq.DEALER)  # DEALER: events, then the end
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(args.broker)
    query = {"v": 1, "type": "query", "id": 1, "agent": args.agent,
             "input": json.loads(args.input)}
    sock.send(msgpack.packb(query))  # one frame: one msgpack map
    while sock.poll(int(args.timeout * 1000)):
        msg = msgpack.unpackb(sock.recv())
        if msg.get("id") != 1:
            continue
        if msg["type"] == "event":
            print("event", msg["seq"], show(msg["event"]), flush=True)
        elif msg["type"] == "result":
            print("result", show(msg["output"]), flush=True)
            return 0
        elif msg["type"] == "error":
            print("error", msg["code"], msg.get("message", ""), flush=True)
            return 1
    print("error no_reply no reply in time", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
