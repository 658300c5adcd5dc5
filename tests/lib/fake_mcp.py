#!/usr/bin/python3
"""fake_mcp.py: a scripted MCP server over stdio for tests/agent/test_mcp.c (stdlib only).

It answers initialize, tools/list (two pages) and tools/call, and its tools misbehave on
request: slow or never answering, crashing, writing garbage lines, answering a group of calls
in reverse order, writing to stderr. It records every message it receives; the tool
`received` returns them, so a test can check what the client sent (notifications included).

Flags: --protocol V      answer initialize with version V (default: the one offered)
       --init-error      answer initialize with a JSON-RPC error
       --exit-at-start   exit before reading anything
       --ignore-eof      keep running when stdin closes (the client must signal us)
       --ignore-term     ignore SIGTERM (the client must SIGKILL us)
       --quirky-tools    tools/list also lists nameless and duplicate tools
       --same-cursor     tools/list pages never end
       --grandchild      start a child process (`sleep 60`); the tool `grandchild` gives its pid
"""
import json
import os
import select
import signal
import subprocess
import sys
import time

ARGS = sys.argv[1:]
TOOLS = [
    ("echo", "Returns its text", {"text": {"type": "string"}}),
    ("fail", "A tool that reports failure (isError)", {"text": {"type": "string"}}),
    ("gate", "Held until n gate calls wait, then all answered in reverse order",
     {"n": {"type": "integer"}, "tag": {"type": "string"}}),
    ("hang", "Never answers", {}),
    ("sleep", "Answers after ms milliseconds", {"ms": {"type": "integer"}}),
    ("crash", "Exits at once without answering", {"code": {"type": "integer"}}),
    ("garbage", "Writes garbage lines before answering", {"text": {"type": "string"}}),
    ("bad_result", "Answers with a result that is not an object", {}),
    ("both", "Answers with both result and error", {}),
    ("rpc_error", "Answers with a JSON-RPC error", {}),
    ("stderr", "Writes n lines to stderr, then answers", {"n": {"type": "integer"}}),
    ("big", "Answers with a text of the given bytes", {"bytes": {"type": "integer"}}),
    ("args", "Returns its arguments as JSON text", {}),
    ("list_changed", "Sends notifications/tools/list_changed, then answers", {}),
    ("env", "Returns the value of environment variable name", {"name": {"type": "string"}}),
    ("cwd", "Returns the working directory", {}),
    ("grandchild", "Returns the pid of the child process (--grandchild)", {}),
    ("received", "Returns every message received so far", {}),
    ("cancelled", "Returns the ids of held requests the client cancelled", {}),
    ("structured", "Answers with structuredContent and text: the text is its JSON (mode "
     "json), a sentence (prose), or absent (only)", {"mode": {"type": "string"}}),
]
PAGE = 3  # tools on the first page

received = []      # every message, in order
held = {}          # id -> request: hang and gate calls not answered yet
gates = []         # gate request ids in arrival order
cancelled_ids = []
tags = {}          # tools/call id -> its arguments' tag (gate answers with it)
child = None       # --grandchild: a process of our own
timers = []        # (due, fn)


def send(obj):
    write_line(json.dumps(obj))


def write_line(text):
    try:
        sys.stdout.buffer.write(text.encode() + b"\n")
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        os._exit(0)


def result(rid, res):
    send({"jsonrpc": "2.0", "id": rid, "result": res})


def text_result(rid, text, is_error=False):
    res = {"content": [{"type": "text", "text": text}]}
    if is_error:
        res["isError"] = True
    result(rid, res)


def tool_list(cursor):
    if "--same-cursor" in ARGS:  # pagination that never ends
        return {"tools": [], "nextCursor": "again"}
    if cursor is None:
        items, nxt = TOOLS[:PAGE], "page-2"
    elif cursor == "page-2":
        items, nxt = TOOLS[PAGE:], None
    else:
        return None
    tools = [{"name": n, "description": d,
              "inputSchema": {"type": "object", "properties": p}} for n, d, p in items]
    if "--quirky-tools" in ARGS and cursor is None:  # entries a client must skip
        tools += [{"description": "no name"}, {"name": 5}, {"name": ""},
                  {"name": "echo", "description": "a second echo"}]
    page = {"tools": tools}
    if nxt:
        page["nextCursor"] = nxt
    return page


def garbage(rid, text):
    for line in ["this is not json", "[1, 2", "42", "   ",
                 '{"jsonrpc":"2.0","id":"abc","result":{}}',
                 '{"jsonrpc":"2.0","id":999999,"result":{}}',
                 '{"jsonrpc":"2.0","method":"notifications/message",'
                 '"params":{"level":"info","data":"hi"}}',
                 '{"jsonrpc":"2.0","id":"srv-1","method":"ping"}',
                 '{"jsonrpc":"2.0","id":"srv-2","method":"roots/list"}']:
        write_line(line)
    text_result(rid, text)


def call_tool(rid, name, a):
    if name == "echo":
        text_result(rid, a.get("text", ""))
    elif name == "fail":
        text_result(rid, a.get("text", "failed"), True)
    elif name == "gate":
        held[rid] = name
        gates.append(rid)
        if len(gates) >= a.get("n", 1):
            for g in reversed(gates):
                del held[g]
                text_result(g, tags[g])
            gates.clear()
    elif name == "hang":
        held[rid] = name
    elif name == "sleep":
        timers.append((time.monotonic() + a.get("ms", 0) / 1000.0,
                       lambda: text_result(rid, "slept")))
    elif name == "crash":
        os._exit(a.get("code", 3))
    elif name == "structured":
        data = {"city": "Paris", "temp": 21}
        mode = a.get("mode", "json")
        content = {"json": [{"type": "text", "text": json.dumps(data)}],
                   "prose": [{"type": "text", "text": "It is 21 C in Paris."}],
                   "only": []}[mode]
        result(rid, {"content": content, "structuredContent": data})
    elif name == "garbage":
        garbage(rid, a.get("text", "after garbage"))
    elif name == "bad_result":
        result(rid, "not an object")
    elif name == "both":
        send({"jsonrpc": "2.0", "id": rid, "result": {}, "error": {"code": 1, "message": "x"}})
    elif name == "rpc_error":
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "bad params"}})
    elif name == "stderr":
        for i in range(a.get("n", 1)):
            sys.stderr.write("fake stderr %d\n" % (i + 1))
        sys.stderr.flush()
        text_result(rid, "wrote")
    elif name == "big":
        text_result(rid, "b" * a.get("bytes", 0))
    elif name == "args":
        text_result(rid, json.dumps(a, sort_keys=True, ensure_ascii=False))
    elif name == "list_changed":
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        text_result(rid, "changed")
    elif name == "env":
        text_result(rid, os.environ.get(a.get("name", ""), ""))
    elif name == "cwd":
        text_result(rid, os.getcwd())
    elif name == "grandchild":
        text_result(rid, str(child.pid if child else 0))
    elif name == "received":
        text_result(rid, json.dumps(received))
    elif name == "cancelled":
        text_result(rid, json.dumps(cancelled_ids))
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "no tool"}})



def handle(msg):
    received.append(msg)
    method, rid, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
    if method is None:
        return  # a response to our ping / roots requests: recorded above
    if method == "initialize":
        if "--init-error" in ARGS:
            send({"jsonrpc": "2.0", "id": rid,
                  "error": {"code": -32600, "message": "initialize refused"}})
            return
        version = params.get("protocolVersion")
        if "--protocol" in ARGS:
            version = ARGS[ARGS.index("--protocol") + 1]
        result(rid, {"protocolVersion": version, "capabilities": {"tools": {"listChanged": True}},
                     "serverInfo": {"name": "fake-mcp", "version": "1.0"}})
    elif method == "tools/list":
        page = tool_list(params.get("cursor"))
        if page is None:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "cursor"}})
        else:
            result(rid, page)
    elif method == "tools/call":
        tags[rid] = (params.get("arguments") or {}).get("tag", "")
        call_tool(rid, params.get("name"), params.get("arguments") or {})
    elif method == "notifications/cancelled":
        target = params.get("requestId")
        if target in held:
            del held[target]
            cancelled_ids.append(target)
    elif rid is not None and not method.startswith("notifications/"):
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no method"}})


def main():
    if "--exit-at-start" in ARGS:
        sys.exit(5)
    global child
    if "--ignore-term" in ARGS:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "--grandchild" in ARGS:
        child = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    buf, eof = b"", False
    while True:
        now = time.monotonic()
        for t in [t for t in timers if t[0] <= now]:
            timers.remove(t)
            t[1]()
        wait = min([t[0] for t in timers], default=now + 1.0) - now
        if eof:
            if "--ignore-eof" not in ARGS:
                return
            time.sleep(max(0.0, min(wait, 0.1)))
            continue
        ready, _, _ = select.select([0], [], [], max(0.0, wait))
        if not ready:
            continue
        data = os.read(0, 65536)
        if not data:
            eof = True
            continue
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                handle(json.loads(line))


if __name__ == "__main__":
    main()
