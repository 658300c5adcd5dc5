#!/usr/bin/python3
"""fake_openai.py: a scripted OpenAI-compatible chat-completions server for the model tests.

Standard library only. Listens on 127.0.0.1 (--port 0: a free port), prints "PORT <n>" on
stdout, and exits when its stdin closes (so it dies with the test that started it) or on
SIGTERM. The request's "model" picks the script of replies (SCRIPTS below); a script may
depend on how many requests that model has had since the last reset (e.g. 429, then 200).
A request with "stream": true gets server-sent events in HTTP chunks, split at awkward
places (mid-line, mid-JSON, CRLF endings, comments) to exercise incremental parsing.

Control endpoints, for tests:
  POST /_reset              forget counters and recorded requests
  GET  /_stats?model=M      "requests=N aborted=N in_flight=N max_in_flight=N connections=N
                            wasted=N" (requests and aborted for model M; the others are over
                            all models: connections accepted, and requests that came on a
                            connection the server had already closed its side of, which
                            get no answer: a client wrote them into a dead connection)
  GET  /_last?model=M       the last request body that model M received (JSON)
The "agent" model is what the LLM agent tests drive: see Handler.s_agent.
"""
import argparse
import email.utils
import json
import os
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TEXT_PIECES = ["Hel", "lo, ", "wor", "ld! ", "Streaming ", "wörks."]
TEXT = "".join(TEXT_PIECES)
WEATHER_ARGS = '{"city":"Paris","unit":"c"}'
TIME_ARGS = '{"tz":"Europe/Paris"}'

lock = threading.Lock()
state = {"requests": {}, "aborted": {}, "last": {}, "in_flight": 0, "max_in_flight": 0,
         "connections": 0, "wasted": 0}


def reset():
    with lock:
        state["requests"].clear()
        state["aborted"].clear()
        state["last"].clear()
        state["max_in_flight"] = state["in_flight"]
        state["connections"] = 0
        state["wasted"] = 0


def completion(model, message, finish):
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def chunk(model, delta, finish=None):
    return {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
        "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def tool_call(index, cid, name, args):
    return {"index": index, "id": cid, "type": "function",
            "function": {"name": name, "arguments": args}}


def text_events(model):
    events = [chunk(model, {"role": "assistant", "content": ""})]
    events += [chunk(model, {"content": p}) for p in TEXT_PIECES]
    events.append(chunk(model, {}, "stop"))
    return events


def tool_events(model):
    """Two tool calls whose argument fragments interleave: assembled by index."""
    def frag(index, args):
        return chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": args}}]})
    return [
        chunk(model, {"role": "assistant", "content": None,
                      "tool_calls": [tool_call(0, "call_a", "get_weather", "")]}),
        frag(0, '{"city":'),
        chunk(model, {"tool_calls": [tool_call(1, "call_b", "get_time", '{"tz":')]}),
        frag(0, '"Paris","unit":"c"}'),
        frag(1, '"Europe/Paris"}'),
        chunk(model, {}, "tool_calls"),
    ]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    api_key = None

    def log_message(self, fmt, *args):  # quiet: the C test prints what matters
        pass

    def setup(self):
        super().setup()
        self.half_closed = False
        with lock:
            state["connections"] += 1

    def half_close(self):
        """Ends the reply and closes our side at once, though the head promised keep-alive
        (as llama.cpp's server does after a streamed reply): the last chunk and the FIN
        leave together (TCP_CORK), and we keep reading to count what a client still sends."""
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        self.write_chunk(b"data: [DONE]\n\n")
        self.write_chunk(b"")
        self.connection.shutdown(socket.SHUT_WR)
        self.half_closed = True

    # ---- plumbing ----
    def leave(self):
        """This request stops counting as in flight: called just before the bytes that let
        the client see the end of the reply, so that a client which starts its next request
        the moment it has this one (the model budget test) never finds it still counted."""
        if getattr(self, "counted", False):
            self.counted = False
            with lock:
                state["in_flight"] -= 1

    def send_json(self, status, obj, headers=()):
        body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.leave()
        self.wfile.write(body)

    def send_text(self, text):
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def stream(self, events, include_usage, crlf_at=2):
        """Writes events as SSE, each split in two HTTP chunks in the middle."""
        self.start_stream()
        self.write_chunk(b": keep-alive comment\n\n")
        for i, ev in enumerate(events):
            nl = b"\r\n" if i == crlf_at else b"\n"
            data = b"data: " + json.dumps(ev).encode() + nl + nl
            half = len(data) // 2
            self.write_chunk(data[:half])
            time.sleep(0.002)
            self.write_chunk(data[half:])
        if include_usage:
            usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [],
                     "usage": {"prompt_tokens": 11, "completion_tokens": 7,
                               "total_tokens": 18}}
            self.write_chunk(b"data: " + json.dumps(usage).encode() + b"\n\n")
        self.leave()
        self.write_chunk(b"data: [DONE]\n\n")
        self.write_chunk(b"")

    def wait_or_abort(self, seconds):
        """Sleeps, watching the socket: True if the client is still there at the end."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([self.connection], [], [], 0.02)
            if r:
                try:
                    data = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    data = b""
                if not data:
                    return False
        return True

    # ---- endpoints ----
    def do_GET(self):
        url = urlparse(self.path)
        model = parse_qs(url.query).get("model", [""])[0]
        with lock:
            if url.path == "/_stats":
                text = ("requests=%d aborted=%d in_flight=%d max_in_flight=%d "
                        "connections=%d wasted=%d") % (
                    state["requests"].get(model, 0), state["aborted"].get(model, 0),
                    state["in_flight"], state["max_in_flight"], state["connections"],
                    state["wasted"])
                return self.send_text(text)
            if url.path == "/_last":
                return self.send_json(200, state["last"].get(model, {}))
        self.send_json(404, {"error": {"message": "no such path"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if self.half_closed:  # written into a connection we had closed: lost
            with lock:
                state["wasted"] += 1
            self.close_connection = True
            return
        if self.path == "/_reset":
            reset()
            return self.send_text("ok")
        if not self.path.endswith("/chat/completions"):
            return self.send_json(404, {"error": {"message": "no such path"}})
        if self.api_key and self.headers.get("Authorization") != "Bearer " + self.api_key:
            return self.send_json(401, {"error": {"message": "bad api key"}})
        try:
            req = json.loads(raw)
        except ValueError:
            return self.send_json(400, {"error": {"message": "request is not JSON"}})
        model = req.get("model", "")
        with lock:
            count = state["requests"][model] = state["requests"].get(model, 0) + 1
            state["last"][model] = req
            state["in_flight"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        self.counted = True
        try:
            self.reply(model, count, req)
        finally:
            self.leave()

    def reply(self, model, count, req):
        stream = bool(req.get("stream"))
        usage = bool((req.get("stream_options") or {}).get("include_usage"))
        self.req_messages = req.get("messages") or []
        script = SCRIPTS.get(model)
        if script is None:
            return self.send_json(404, {"error": {"message": "unknown model " + model}})
        script(self, model, count, stream, usage)

    # ---- scripts ----
    def s_text(self, model, count, stream, usage):
        if stream:
            return self.stream(text_events(model), usage)
        self.send_json(200, completion(model, {"role": "assistant", "content": TEXT}, "stop"))

    def s_tool(self, model, count, stream, usage):
        if stream:
            return self.stream(tool_events(model), usage)
        calls = [tool_call(0, "call_a", "get_weather", WEATHER_ARGS),
                 tool_call(1, "call_b", "get_time", TIME_ARGS)]
        for c in calls:
            del c["index"]
        msg = {"role": "assistant", "content": None, "tool_calls": calls}
        self.send_json(200, completion(model, msg, "tool_calls"))

    def s_rate_limited(self, model, count, stream, usage):
        if count == 1:
            return self.send_json(429, {"error": {"message": "slow down"}},
                                  [("Retry-After", "1")])
        self.s_text(model, count, stream, usage)

    def s_rate_limited_date(self, model, count, stream, usage):
        if count == 1:
            when = email.utils.formatdate(time.time() + 1, usegmt=True)
            return self.send_json(429, {"error": {"message": "slow down"}},
                                  [("Retry-After", when)])
        self.s_text(model, count, stream, usage)

    def s_always500(self, model, count, stream, usage):
        self.send_json(500, {"error": {"message": "boom %d" % count}})

    def s_slow(self, model, count, stream, usage):
        if not self.wait_or_abort(10):
            with lock:
                state["aborted"][model] = state["aborted"].get(model, 0) + 1
            self.close_connection = True
            return
        self.s_text(model, count, stream, usage)

    def s_slow_ok(self, model, count, stream, usage):
        time.sleep(0.3)
        self.s_text(model, count, stream, usage)

    def s_badjson(self, model, count, stream, usage):
        if stream:
            self.start_stream()
            self.write_chunk(b"data: {\"choices\": [{\"delta\": {\"content\": \"x\"\n\n")
            self.write_chunk(b"")
            return
        self.send_json(200, b'{"choices": [{"message": {"content": "truncated')

    def s_big(self, model, count, stream, usage):
        self.send_json(200, completion(model, {"role": "assistant", "content": "x" * 65536},
                                       "stop"))

    def s_long_stream(self, model, count, stream, usage):
        """3000 deltas of 100 bytes ("00042:xxx..."), written as fast as the socket takes
        them: a client that reads slowly must hold back (curl's pause), not lose bytes."""
        self.start_stream()
        out = []
        for i in range(3000):
            ev = chunk(model, {"content": "%05d:" % i + "x" * 94})
            out.append(b"data: " + json.dumps(ev).encode() + b"\n\n")
            if len(out) == 500:
                self.write_chunk(b"".join(out))
                out = []
        self.write_chunk(b"".join(out) + b"data: [DONE]\n\n")
        self.write_chunk(b"")

    def s_close_after(self, model, count, stream, usage):
        """Streams a short text, then closes the connection with the last chunk."""
        self.start_stream()
        for ev in [chunk(model, {"content": "ok"}), chunk(model, {}, "stop")]:
            self.write_chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
        self.leave()
        self.half_close()

    def s_stream_error_kind(self, model, count, stream, usage):
        """The first request of each model gets an in-stream error object whose type comes
        from the model's name (stream-err-<type>); later ones get the text."""
        if count > 1:
            return self.s_text(model, count, stream, usage)
        etype = model[len("stream-err-"):]
        code = {"rate_limit_error": "rate_limit_exceeded", "authentication_error":
                "invalid_api_key", "invalid_request_error": None, "server_error": 500}[etype]
        self.start_stream()
        err = {"error": {"message": "in-stream " + etype, "type": etype, "code": code}}
        self.write_chunk(b"data: " + json.dumps(err).encode() + b"\n\n")
        self.write_chunk(b"")

    def s_gzip(self, model, count, stream, usage):
        """Answers compressed whatever the request asked (a client must refuse it), and
        says in the text whether the request asked for identity."""
        import gzip
        asked = self.headers.get("Accept-Encoding", "")
        body = gzip.compress(json.dumps(completion(model, {
            "role": "assistant", "content": "asked " + asked}, "stop")).encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.leave()
        self.wfile.write(body)

    def s_identity(self, model, count, stream, usage):
        """Echoes the request's Accept-Encoding as the answer."""
        text = "asked " + self.headers.get("Accept-Encoding", "")
        self.send_json(200, completion(model, {"role": "assistant", "content": text}, "stop"))

    def s_cut(self, model, count, stream, usage):
        """An answer cut by the token limit ("length") or a filter ("filtered" models):
        text, or with "tool" in the model's name a tool call cut mid-arguments (streamed), or
        raw <tool_call> markup as text (not streamed)."""
        finish = "content_filter" if "filtered" in model else "length"
        if "tool" in model:
            if not stream:
                text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa'
                return self.send_json(200, completion(model, {"role": "assistant",
                                                              "content": text}, finish))
            events = [chunk(model, {"role": "assistant", "content": None, "tool_calls": [
                tool_call(0, "call_cut", "get_weather", '{"city": "Pa')]}),
                chunk(model, {}, finish)]
            return self.stream(events, usage)
        if not stream:
            return self.send_json(200, completion(model, {"role": "assistant",
                                                          "content": "The answer is"}, finish))
        events = [chunk(model, {"content": p}) for p in ["The ", "answer ", "is"]]
        events.append(chunk(model, {}, finish))
        self.stream(events, usage)

    def s_stream_error(self, model, count, stream, usage):
        self.start_stream()
        self.write_chunk(b"data: " + json.dumps(chunk(model, {"content": "par"})).encode()
                         + b"\n\n")
        self.write_chunk(b'data: {"error": {"message": "overloaded"}}\n\n')
        self.write_chunk(b"")


    # ---- the agent script: what the LLM agent tests drive ----
    def s_agent(self, model, count, stream, usage):
        """Answers as the last message asks. After tool results: "done: " and the results
        joined by " | ". A user message that is a JSON object {"calls": [{"name", "args"}],
        "text": str} asks for those tool calls (or that text); any other text is echoed
        ("echo: <text>"). Streams (text in words, calls in fragments) when asked to."""
        msgs = self.req_messages
        last = msgs[-1] if msgs else {}
        if last.get("role") == "tool":
            results = []
            for m in reversed(msgs):
                if m.get("role") != "tool":
                    break
                results.insert(0, str(m.get("content")))
            return self.agent_text(model, "done: " + " | ".join(results), stream, usage)
        content = last.get("content") or ""
        try:
            ask = json.loads(content)
        except ValueError:
            ask = None
        if not isinstance(ask, dict):
            return self.agent_text(model, "echo: " + content, stream, usage)
        calls = [tool_call(i, "call_%d" % i, c["name"], json.dumps(c.get("args", {})))
                 for i, c in enumerate(ask.get("calls", []))]
        if not calls:
            return self.agent_text(model, ask.get("text", ""), stream, usage)
        if stream:
            events = [chunk(model, {"role": "assistant", "content": None,
                                    "tool_calls": [dict(c, function=dict(c["function"],
                                                                         arguments=""))]})
                      for c in calls]
            events += [chunk(model, {"tool_calls": [{"index": c["index"], "function": {
                "arguments": c["function"]["arguments"]}}]}) for c in calls]
            events.append(chunk(model, {}, "tool_calls"))
            return self.stream(events, usage)
        for c in calls:
            del c["index"]
        msg = {"role": "assistant", "content": None, "tool_calls": calls}
        self.send_json(200, completion(model, msg, "tool_calls"))

    def agent_text(self, model, text, stream, usage):
        if not stream:
            return self.send_json(200, completion(model, {"role": "assistant",
                                                          "content": text}, "stop"))
        words = text.split(" ")
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        events = [chunk(model, {"role": "assistant", "content": ""})]
        events += [chunk(model, {"content": p}) for p in pieces if p]
        events.append(chunk(model, {}, "stop"))
        self.stream(events, usage)


SCRIPTS = {
    "agent": Handler.s_agent,
    "text": Handler.s_text,
    "tool": Handler.s_tool,
    "rate-limited": Handler.s_rate_limited,
    "rate-limited-date": Handler.s_rate_limited_date,
    "always500": Handler.s_always500,
    "slow": Handler.s_slow,
    "slow-ok": Handler.s_slow_ok,
    "badjson": Handler.s_badjson,
    "big": Handler.s_big,
    "stream-error": Handler.s_stream_error,
    "long-stream": Handler.s_long_stream,
    "close-after": Handler.s_close_after,
    "stream-err-rate_limit_error": Handler.s_stream_error_kind,
    "stream-err-authentication_error": Handler.s_stream_error_kind,
    "stream-err-invalid_request_error": Handler.s_stream_error_kind,
    "stream-err-server_error": Handler.s_stream_error_kind,
    "gzip": Handler.s_gzip,
    "identity": Handler.s_identity,
    "cut": Handler.s_cut,
    "cut-tool": Handler.s_cut,
    "cut-filtered": Handler.s_cut,
}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away (the tests abort transfers on purpose)
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()
    Handler.api_key = args.api_key
    server = Server(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    for _ in sys.stdin:  # the parent holds our stdin: EOF means it is gone
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
