#!/usr/bin/env python3
"""Watches the actorbus bus with pyzmq and msgpack only: SUB to the broker's publish endpoint,
prints `topic json-body` per message. Every query's events, result and error appear there
under `query.<agent>.<session or ->`.
    subscribe.py [--bus tcp://127.0.0.1:5557] [--count N] [--timeout S] [TOPIC-PREFIX ...]"""
import argparse
import json
import sys

import msgpack
import zmq


def main():
    ap = argparse.ArgumentParser(description="print messages from the actorbus bus")
    ap.add_argument("--bus", default="tcp://127.0.0.1:5557")
    ap.add_argument("--count", type=int, default=0, help="exit after N messages (0: never)")
    ap.add_argument("--timeout", type=float, default=0, help="exit 1 after S s of silence")
    ap.add_argument("topics", nargs="*", default=[""], help="prefixes (default: all)")
    args = ap.parse_args()

    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    for t in args.topics:
        sock.setsockopt(zmq.SUBSCRIBE, t.encode())
    sock.connect(args.bus)
    print("subscribed", args.bus, flush=True)
    seen = 0
    while args.count == 0 or seen < args.count:
        if args.timeout and not sock.poll(int(args.timeout * 1000)):
            return 1
        topic, body = sock.recv_multipart()[:2]
        data = msgpack.unpackb(body)
        print(topic.decode(errors="replace"),
              json.dumps(data, separators=(",", ":"), sort_keys=True,
                         ensure_ascii=False, default=repr),
              flush=True)
        seen += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
