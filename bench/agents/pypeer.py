#!/usr/bin/python3
"""bench/agents/pypeer.py: the Python side of bench/agents. The same LLM agent as ours (two
tools, get_weather and get_time, called concurrently; then the final text), written as the
seed writes it (ADK's runner loop, an in-memory session service with a lock per session,
concurrent tools through asyncio.gather and wait_for) on asyncio with the standard library
only: an HTTP/1.1 keep-alive client on asyncio streams, json. It drives itself: --concurrency
invocations in flight, prints one JSON line. With --sync it prints {"warm": true} after the
warm-up and waits for a line on stdin (the driver reads our CPU time then).
"""
import argparse
import asyncio
import json
import os
import sys
import time

INSTRUCTION = "You are a helpful assistant. Use the tools to answer about weather and time."
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "The local time in a time zone.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                       "required": ["tz"]}}},
]
TOOL_TIMEOUT_S = 30.0
MAX_STEPS = 10


# ---------------------------------------------------------------- HTTP/1.1 keep-alive client

class HttpError(Exception):
    pass


class HttpPool:
    """Keep-alive connections to one host, at most `limit` open; each request takes one."""

    def __init__(self, host, port, limit):
        self.host, self.port = host, port
        self.idle = []
        self.sem = asyncio.Semaphore(limit)

    async def post_json(self, path, body, stream=False):
        data = json.dumps(body, separators=(",", ":")).encode()
        head = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                "Accept: %s\r\nContent-Length: %d\r\n\r\n"
                % (path, self.host, self.port,
                   "text/event-stream" if stream else "application/json", len(data))).encode()
        async with self.sem:
            conn = self.idle.pop() if self.idle else await asyncio.open_connection(
                self.host, self.port)
            reader, writer = conn
            try:
                writer.write(head + data)
                status, headers, body = await self._response(reader)
            except BaseException:
                writer.close()
                raise
            if headers.get("connection", "").lower() == "close":
                writer.close()
            else:
                self.idle.append(conn)
        if status != 200:
            raise HttpError("HTTP %d: %s" % (status, body[:200]))
        if headers.get("content-type", "").startswith("text/event-stream"):
            return sse_to_message(body)
        return json.loads(body)

    @staticmethod
    async def _response(reader):
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            return status, headers, b"".join(parts)
        return status, headers, await reader.readexactly(int(headers.get("content-length", 0)))

    def close(self):
        for _, w in self.idle:
            w.close()
        self.idle.clear()


def sse_to_message(body):
    """Assembles a streamed chat completion into the non-streamed shape."""
    text, calls, finish = [], {}, None
    for line in body.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        choice = json.loads(line[6:])["choices"][0]
        delta = choice.get("delta", {})
        if delta.get("content"):
            text.append(delta["content"])
        for tc in delta.get("tool_calls") or ():
            c = calls.setdefault(tc["index"], {"id": "", "type": "function",
                                               "function": {"name": "", "arguments": ""}})
            c["id"] = tc.get("id") or c["id"]
            fn = tc.get("function", {})
            c["function"]["name"] += fn.get("name") or ""
            c["function"]["arguments"] += fn.get("arguments") or ""
        finish = choice.get("finish_reason") or finish
    msg = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        msg["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"choices": [{"index": 0, "message": msg, "finish_reason": finish}]}


# ---------------------------------------------------------------- events and sessions

_event_n = 0


def new_event(ctx, author, content=None, state_delta=None, final=False, error=None):
    global _event_n
    _event_n += 1
    ev = {"id": "e-%016x" % _event_n, "invocation_id": ctx.invocation_id, "author": author,
          "ts_ms": int(time.time() * 1000)}
    if content is not None:
        ev["content"] = content
    if final:
        ev["final"] = True
    if state_delta:
        ev["actions"] = {"state_delta": state_delta}
    if error:
        ev["error_code"], ev["error_message"] = error
    return ev


class Session:
    def __init__(self, sid, app, user):
        self.id, self.app, self.user = sid, app, user
        self.state, self.events = {}, []


class SessionService:
    """In-memory sessions with a lock per session (the seed's Session Locking pattern)."""

    def __init__(self):
        self.sessions, self.locks = {}, {}

    def lock(self, sid):
        if sid not in self.locks:
            self.locks[sid] = asyncio.Lock()
        return self.locks[sid]

    async def get_or_create_session(self, sid, app="default", user=""):
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = Session(sid, app, user)
        return s

    async def append_event(self, session, event):
        if event.get("partial"):
            return
        delta = event.get("actions", {}).get("state_delta") or {}
        for k, v in delta.items():
            if k.startswith("temp:"):
                continue
            if v is None:
                session.state.pop(k, None)
            else:
                session.state[k] = v
        session.events.append(event)


# ---------------------------------------------------------------- the agent

async def get_weather(city):
    return {"city": city, "temp_c": 18, "sky": "sunny"}


async def get_time(tz):
    return {"tz": tz, "time": "14:05"}


TOOL_FNS = {"get_weather": get_weather, "get_time": get_time}


class InvocationContext:
    def __init__(self, session, invocation_id, user_input):
        self.session, self.invocation_id, self.input = session, invocation_id, user_input


async def run_single_tool(call):
    """One tool call under its timeout: the function response, or an error the model sees."""
    name, cid = call["function"]["name"], call["id"]
    try:
        args = json.loads(call["function"]["arguments"] or "{}")
        result = await asyncio.wait_for(TOOL_FNS[name](**args), timeout=TOOL_TIMEOUT_S)
        return {"function_response": {"id": cid, "name": name, "response": result}}, None
    except asyncio.TimeoutError:
        err = {"code": "timeout", "message": "tool %s timed out" % name}
    except Exception as e:  # noqa: BLE001 - every tool failure goes back to the model
        err = {"code": "tool_failed", "message": "tool %s: %s" % (name, e)}
    return ({"function_response": {"id": cid, "name": name, "response": {"error": err}}},
            ("tool_error", err["message"]))


class LlmAgent:
    def __init__(self, name, pool, stream, output_key="last_answer"):
        self.name, self.pool, self.stream, self.output_key = name, pool, stream, output_key

    async def run_async(self, ctx):
        messages = [{"role": "system", "content": INSTRUCTION},
                    {"role": "user", "content": ctx.input}]
        for _ in range(MAX_STEPS):
            reply = await self.pool.post_json("/v1/chat/completions", {
                "model": "bench", "messages": messages, "tools": TOOLS,
                "stream": self.stream}, stream=self.stream)
            msg = reply["choices"][0]["message"]
            calls = msg.get("tool_calls") or []
            if not calls:
                text = msg.get("content") or ""
                yield new_event(ctx, self.name, {"role": "model", "parts": [{"text": text}]},
                                state_delta={self.output_key: text}, final=True)
                return
            yield new_event(ctx, self.name, {"role": "model", "parts": [
                {"function_call": {"id": c["id"], "name": c["function"]["name"],
                                   "args": json.loads(c["function"]["arguments"] or "{}")}}
                for c in calls]})
            results = await asyncio.gather(*[run_single_tool(c) for c in calls])
            for part, error in results:
                if error:
                    yield new_event(ctx, self.name, error=error)
            yield new_event(ctx, self.name, {"role": "tool", "parts": [p for p, _ in results]})
            messages.append({"role": "assistant", "content": msg.get("content"),
                             "tool_calls": calls})
            for part, _ in results:
                fr = part["function_response"]
                messages.append({"role": "tool", "tool_call_id": fr["id"],
                                 "content": json.dumps(fr["response"])})
        raise RuntimeError("agent %s: no final answer in %d steps" % (self.name, MAX_STEPS))


_invocation_n = 0


async def runner_loop(agent, sessions, sid, query):
    """The seed's runner loop: session, user event, the agent's events (state applied and
    appended as they come), the output. Holds the session's lock for the invocation."""
    global _invocation_n
    _invocation_n += 1
    async with sessions.lock(sid):
        session = await sessions.get_or_create_session(sid)
        ctx = InvocationContext(session, "i-%016x" % _invocation_n, query)
        await sessions.append_event(session, new_event(
            ctx, "user", {"role": "user", "parts": [{"text": query}]}))
        all_events, output = [], None
        async for event in agent.run_async(ctx):
            await sessions.append_event(session, event)
            all_events.append(event)
            if event.get("final"):
                output = event["content"]["parts"][0]["text"]
        return output, all_events


# ---------------------------------------------------------------- the driver

async def drive(agent, sessions, a, count, seconds):
    """Keeps a.concurrency invocations in flight until count are done or seconds passed."""
    done = events = 0
    next_n = 0
    stop = time.monotonic() + seconds

    async def one_lane():
        nonlocal done, events, next_n
        while next_n < count and time.monotonic() < stop:
            n = next_n
            next_n += 1
            output, evs = await runner_loop(agent, sessions, "s-%d" % (n % a.sessions),
                                            "What is the weather and the time in Paris?")
            if not output:
                raise RuntimeError("invocation %d ended without output" % n)
            done += 1
            events += len(evs)

    await asyncio.gather(*[one_lane() for _ in range(a.concurrency)])
    return done, events


async def main_async(a):
    pool = HttpPool("127.0.0.1", a.port, a.connections or a.concurrency)
    agent = LlmAgent("weather_agent", pool, a.stream)
    sessions = SessionService()
    if a.warmup:
        await drive(agent, sessions, a, a.warmup, 60)
    if a.sync:
        print(json.dumps({"warm": True}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    c0 = os.times()
    t0 = time.perf_counter()
    done, events = await drive(agent, sessions, a, a.count, a.seconds)
    secs = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    pool.close()
    print(json.dumps({"invocations": done, "seconds": round(secs, 4),
                      "ips": round(done / secs, 1), "events": events,
                      "concurrency": a.concurrency, "cpu_s": round(cpu, 3),
                      "cpu_us_per_invocation": round(cpu / max(done, 1) * 1e6, 1)}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True, help="the model server's port")
    p.add_argument("--concurrency", type=int, default=64, help="invocations in flight")
    p.add_argument("--connections", type=int, default=0, help="HTTP connections (0: one per "
                   "invocation in flight)")
    p.add_argument("--sessions", type=int, default=0, help="session ids, used round-robin "
                   "(0: 2 x concurrency)")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--stream", action="store_true", help="ask the model to stream")
    p.add_argument("--sync", action="store_true")
    a = p.parse_args()
    if not (1 <= a.concurrency <= 10000 and 0 < a.seconds <= 600 and a.count >= 1):
        p.error("--concurrency 1..10000, --seconds (0, 600], --count >= 1")
    a.sessions = a.sessions or 2 * a.concurrency
    asyncio.run(main_async(a))


if __name__ == "__main__":
    main()
