#!/usr/bin/env node
// A complete 1/ABP client with zeromq (v6) and @msgpack/msgpack only (no actorbus code): sends
// one query, prints each event as it arrives, then the result. Exit 0 on a result, 1 on error.
//   node client.js [--broker tcp://127.0.0.1:5555] [--timeout S] AGENT ['JSON input']
"use strict";
const zmq = require("zeromq");
const { encode, decode } = require("@msgpack/msgpack");

// Compact JSON with sorted keys: the same text as client.py prints.
function show(v) {
  if (Array.isArray(v)) return "[" + v.map(show).join(",") + "]";
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    const keys = Object.keys(v).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + show(v[k])).join(",") + "}";
  }
  return JSON.stringify(v === undefined ? null : v);
}

async function main(argv) {
  const opt = { broker: "tcp://127.0.0.1:5555", timeout: 30 };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--broker" || argv[i] === "--timeout") opt[argv[i].slice(2)] = argv[++i];
    else pos.push(argv[i]);
  }
  if (pos.length < 1 || pos.length > 2) {
    console.error("usage: client.js [--broker URL] [--timeout S] AGENT ['JSON input']");
    return 2;
  }
  const sock = new zmq.Dealer({ linger: 0, receiveTimeout: Number(opt.timeout) * 1000 });
  sock.connect(opt.broker);
  const query = { v: 1, type: "query", id: 1, agent: pos[0], input: JSON.parse(pos[1] || "null") };
  await sock.send(encode(query)); // one frame: one msgpack map
  try {
    for (;;) {
      const [frame] = await sock.receive(); // rejects with EAGAIN after receiveTimeout
      const msg = decode(frame);
      if (msg.id !== 1) continue;
      if (msg.type === "event") {
        console.log("event", msg.seq, show(msg.event));
      } else if (msg.type === "result") {
        console.log("result", show(msg.output));
        return 0;
      } else if (msg.type === "error") {
        console.log("error", msg.code, msg.message || "");
        return 1;
      }
    }
  } catch (e) {
    if (e.code !== "EAGAIN") throw e;
    console.log("error no_reply no reply in time");
    return 1;
  } finally {
    sock.close();
  }
}

main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; });
