"""bench/broker/pybroker.py: actor-broker's core written the way one would in Python, with
pyzmq on asyncio (--loop asyncio) or uvloop (--loop uvloop): the peer that actor-broker
should beat by 10x. It speaks enough of 1/ABP (proto/PROTOCOL.md) for the REAL actor-worker:
ready/credit/heartbeat/disconnect, work by credit with a bounded queue, job events, results
and errors back to DEALER or REQ clients, cancel, status, publish, and the bus (SUB -> PUB,
and every query message published under query.<agent>.<session or ->). Not implemented:
timeout_ms, retries of idempotent queries, draining, worker sub-queries, per-client limits.
    pybroker.py --loop asyncio|uvloop --clients EP --workers EP --pub EP --sub EP
"""
import argparse
import asyncio
import collections
import time

import msgpack
import zmq
import zmq.asyncio

HEARTBEAT_S = 1.0
LIVENESS = 3
MAX_QUEUE = 10000
HWM = 100000  # actor-broker's send HWM


class Worker:
    __slots__ = ("ident", "name", "capacity", "in_flight", "agents", "heard")

    def __init__(self, ident, m):
        self.ident = ident
        self.name = m.get("name", "?")
        self.capacity = int(m.get("capacity", 1))
        self.in_flight = 0
        self.agents = set(m.get("agents") or ())
        self.heard = time.monotonic()


class Job:
    __slots__ = ("client", "req", "id", "agent", "session", "input", "worker", "seq",
                 "cancelled")

    def __init__(self, client, req, m):
        self.client, self.req = client, req
        self.id, self.agent = m.get("id"), m["agent"]
        self.session, self.input = m.get("session"), m.get("input")
        self.worker, self.seq, self.cancelled = None, 0, False


class Broker:
    def __init__(self, a):
        self.ctx = zmq.asyncio.Context()
        self.clients = self.bind(zmq.ROUTER, a.clients)
        self.workers = self.bind(zmq.ROUTER, a.workers)
        self.pub = self.bind(zmq.PUB, a.pub)
        self.sub = self.bind(zmq.SUB, a.sub)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.wk = {}                    # identity -> Worker
        self.jobs = {}                  # job number -> Job
        self.by_client = {}             # (client identity, id) -> job number
        self.queue = collections.deque()  # job numbers waiting for credit
        self.next_job = 1
        self.pack = msgpack.Packer().pack

    def bind(self, kind, ep):
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.SNDHWM, HWM)
        s.setsockopt(zmq.LINGER, 0)
        if kind == zmq.ROUTER:
            s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.bind(ep)
        return s

    # -- sending (a peer that is gone or full loses the message, as in actor-broker)
    async def send(self, sock, frames):
        try:
            await sock.send_multipart(frames, flags=zmq.DONTWAIT)
        except zmq.ZMQError:
            pass

    async def to_client(self, job, m):
        body = self.pack(m)
        frames = [job.client, b"", body] if job.req else [job.client, body]
        if not job.req or m["type"] != "event":
            await self.send(self.clients, frames)
        m["agent"] = job.agent
        if job.session is not None:
            m["session"] = job.session
        topic = "query.%s.%s" % (job.agent, job.session or "-")
        await self.send(self.pub, [topic.encode(), self.pack(m)])

    async def to_worker(self, ident, m):
        await self.send(self.workers, [ident, self.pack(m)])

    async def error(self, ident, req, id, code, message):
        m = {"v": 1, "type": "error", "id": id, "code": code, "message": message}
        body = self.pack(m)
        await self.send(self.clients, [ident, b"", body] if req else [ident, body])

    # -- clients
    async def client_loop(self):
        while True:
            frames = await self.clients.recv_multipart()
            ident, req = frames[0], len(frames) == 3 and frames[1] == b""
            if len(frames) != 2 and not req:
                await self.error(ident, False, None, "bad_request", "wrong frame count")
                continue
            try:
                m = msgpack.unpackb(frames[-1])
                if not isinstance(m, dict) or m.get("v") != 1:
                    raise ValueError("not a 1/ABP message")
            except Exception as e:  # noqa: BLE001 - any bad input gets an answer
                await self.error(ident, req, None, "bad_request", str(e))
                continue
            t = m.get("type")
            if t == "query":
                await self.on_query(ident, req, m)
            elif t == "cancel":
                await self.on_cancel(ident, req, m)
            elif t == "status":
                await self.send(self.clients, ([ident, b""] if req else [ident])
                                + [self.pack(self.status(m.get("id")))])
            elif t == "publish":
                ev = {"v": 1, "type": "event", "topic": m.get("topic", ""), "data": m.get("data")}
                await self.send(self.pub, [str(ev["topic"]).encode(), self.pack(ev)])
                await self.send(self.clients, ([ident, b""] if req else [ident]) + [self.pack(
                    {"v": 1, "type": "result", "id": m.get("id"), "output": None})])
            else:
                await self.error(ident, req, m.get("id"), "bad_request", "unknown type")

    async def on_query(self, ident, req, m):
        id, agent = m.get("id"), m.get("agent")
        if id is None or not isinstance(agent, str):
            return await self.error(ident, req, id, "bad_request", "query needs id and agent")
        if (ident, id) in self.by_client:
            return await self.error(ident, req, id, "duplicate_id", "id already in flight")
        if not any(agent in w.agents for w in self.wk.values()):
            return await self.error(ident, req, id, "unknown_agent", "no worker hosts " + agent)
        if len(self.queue) >= MAX_QUEUE:
            return await self.error(ident, req, id, "overloaded", "queue full")
        n = self.next_job
        self.next_job += 1
        self.jobs[n] = Job(ident, req, m)
        self.by_client[(ident, id)] = n
        self.queue.append(n)
        await self.dispatch()

    async def on_cancel(self, ident, req, m):
        n = self.by_client.get((ident, m.get("id")))
        job = self.jobs.get(n)
        await self.send(self.clients, ([ident, b""] if req else [ident]) + [self.pack(
            {"v": 1, "type": "result", "id": m.get("id"), "output": {"cancelled": bool(job)}})])
        if job and not job.cancelled:
            job.cancelled = True
            del self.by_client[(ident, job.id)]
            await self.to_client(job, {"v": 1, "type": "error", "id": job.id,
                                       "code": "cancelled", "message": "cancelled"})
            if job.worker is None:
                self.queue.remove(n)
                del self.jobs[n]
            else:
                await self.to_worker(job.worker, {"v": 1, "type": "cancel", "job": n})

    # -- dispatch by credit: the waiting job goes to the hosting worker with most credit
    async def dispatch(self):
        while self.queue:
            job = self.jobs[self.queue[0]]
            best = None
            for w in self.wk.values():
                if job.agent in w.agents and w.in_flight < w.capacity and (
                        best is None or w.capacity - w.in_flight > best.capacity - best.in_flight):
                    best = w
            if best is None:
                return
            n = self.queue.popleft()
            best.in_flight += 1
            job.worker = best.ident
            work = {"v": 1, "type": "work", "job": n, "agent": job.agent, "input": job.input,
                    "attempt": 1}
            if job.session is not None:
                work["session"] = job.session
            await self.to_worker(best.ident, work)

    # -- workers
    async def worker_loop(self):
        while True:
            frames = await self.workers.recv_multipart()
            if len(frames) != 2:
                continue
            ident = frames[0]
            try:
                m = msgpack.unpackb(frames[1])
                t = m["type"]
            except Exception:  # noqa: BLE001 - a broken worker message is dropped
                continue
            w = self.wk.get(ident)
            if t == "ready":
                self.wk[ident] = Worker(ident, m)
                await self.dispatch()
            elif w is None:
                await self.to_worker(ident, {"v": 1, "type": "disconnect"})
            else:
                w.heard = time.monotonic()
                await self.on_worker_msg(w, t, m)

    async def on_worker_msg(self, w, t, m):
        if t in ("event", "result", "error"):
            n = m.get("job")
            job = self.jobs.get(n)
            if job is None or job.worker != w.ident:
                return
            if t == "event":
                job.seq += 1
                out = {"v": 1, "type": "event", "id": job.id, "seq": job.seq,
                       "event": m.get("event")}
            elif t == "result":
                out = {"v": 1, "type": "result", "id": job.id, "output": m.get("output")}
            else:
                out = {"v": 1, "type": "error", "id": job.id, "code": m.get("code", "internal"),
                       "message": m.get("message", "")}
            if t != "event":
                del self.jobs[n]
                w.in_flight -= 1
                if not job.cancelled:
                    del self.by_client[(job.client, job.id)]
            if not job.cancelled:
                await self.to_client(job, out)
            if t != "event":
                await self.dispatch()
        elif t == "credit":
            w.capacity = int(m.get("capacity", w.capacity))
            await self.dispatch()
        elif t == "disconnect":
            await self.lose(w)
        elif t == "query":  # a worker's sub-query (fanout): not in this minimal broker
            await self.to_worker(w.ident, {"v": 1, "type": "error", "id": m.get("id"),
                                           "code": "internal", "message": "not supported"})

    async def lose(self, w):
        del self.wk[w.ident]
        for n, job in list(self.jobs.items()):
            if job.worker == w.ident:
                del self.jobs[n]
                if not job.cancelled:
                    del self.by_client[(job.client, job.id)]
                    await self.to_client(job, {"v": 1, "type": "error", "id": job.id,
                                               "code": "worker_lost", "message": w.name})

    async def heartbeat_loop(self):
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            now = time.monotonic()
            for w in list(self.wk.values()):
                if now - w.heard > HEARTBEAT_S * LIVENESS:
                    await self.lose(w)
                else:
                    await self.to_worker(w.ident, {"v": 1, "type": "heartbeat"})

    async def bus_loop(self):
        while True:
            frames = await self.sub.recv_multipart()
            if len(frames) == 2:
                await self.send(self.pub, frames)

    def status(self, id):
        ws = [{"name": w.name, "capacity": w.capacity, "in_flight": w.in_flight,
               "agents": sorted(w.agents)} for w in self.wk.values()]
        return {"v": 1, "type": "result", "id": id, "output": {
                "workers": ws, "capacity": sum(w.capacity for w in self.wk.values()),
                "in_flight": sum(w.in_flight for w in self.wk.values()),
                "queued": len(self.queue), "clients": len({j.client for j in self.jobs.values()})}}

    async def run(self):
        await asyncio.gather(self.client_loop(), self.worker_loop(), self.heartbeat_loop(),
                             self.bus_loop())


def main():
    ap = argparse.ArgumentParser(description="a minimal 1/ABP broker in Python (benchmark peer)")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    for name, port in (("clients", 5555), ("workers", 5556), ("pub", 5557), ("sub", 5558)):
        ap.add_argument("--" + name, default="tcp://127.0.0.1:%d" % port)
    a = ap.parse_args()
    if a.loop == "uvloop":
        import uvloop
        uvloop.install()
    asyncio.run(Broker(a).run())


if __name__ == "__main__":
    main()
