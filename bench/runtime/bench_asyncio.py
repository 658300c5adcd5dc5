#!/usr/bin/python3
"""bench_asyncio.py: the Python side of bench/runtime. Runs the same workloads as
bench_runtime.c on asyncio's own loop or on uvloop and prints one JSON object per row.
Run it with Debian's /usr/bin/python3 (it has python3-uvloop); run.py does.
Usage: bench_asyncio.py --loop asyncio|uvloop [--row NAME]... [--quick] [--list]"""
import argparse
import asyncio
import gc
import json
import os
import sys
import time

REPS = 3         # timed repetitions per throughput row; the best counts
PARK_ROUNDS = 64  # sleeps main allows for its tasks to park (a bound, not a wait)
SCALE = 1        # --quick divides every size by 10


def scaled(n):
    return max(n // SCALE, 1)


def rss_bytes():
    """Resident bytes of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


async def best_of(rep, *args):
    """Warms up once, then returns the fastest of REPS repetitions (seconds)."""
    await rep(*args)
    return min([await rep(*args) for _ in range(REPS)])


def rate(ops, best):
    return {"value": ops / best, "n": ops, "best_s": round(best, 6)}


async def trivial():
    return 0


async def settle(count, n):
    """Lets the spawned tasks run until count() reaches n or stops moving."""
    last = -1
    for _ in range(PARK_ROUNDS):
        if count() >= n or count() == last:
            break
        last = count()
        await asyncio.sleep(0)


# ---- 1. spawn_gather (Python has one kind of task: both rows are the same work) ----

async def rep_spawn_gather(n):
    t0 = time.perf_counter()
    await asyncio.gather(*[trivial() for _ in range(n)])
    return time.perf_counter() - t0


async def row_spawn_gather():
    n = scaled(100000)
    return rate(n, await best_of(rep_spawn_gather, n))


# ---- 2. lock_contention ----

async def rep_lock(tasks, iters):
    lock = asyncio.Lock()

    async def worker():
        for _ in range(iters):
            async with lock:
                await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(tasks)])
    return time.perf_counter() - t0


async def row_lock_contention():
    iters = scaled(1000)
    return rate(100 * iters, await best_of(rep_lock, 100, iters))


# ---- 3. semaphore ----

async def rep_sem(tasks, iters):
    sem = asyncio.Semaphore(100)

    async def worker():
        for _ in range(iters):
            async with sem:
                await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(tasks)])
    return time.perf_counter() - t0


async def row_semaphore():
    tasks = scaled(1000)
    return rate(tasks * 100, await best_of(rep_sem, tasks, 100))


# ---- 4. queue ----

async def rep_queue(items):
    q = asyncio.Queue(1000)

    async def producer():
        for i in range(items):
            await q.put(i + 1)

    async def consumer():
        total = 0
        for _ in range(items):
            total += await q.get()
        return total

    t0 = time.perf_counter()
    await asyncio.gather(producer(), consumer())
    return time.perf_counter() - t0


async def row_queue():
    n = scaled(1000000)
    return rate(n, await best_of(rep_queue, n))


# ---- 5. event_wake ----

async def rep_wake(n):
    ev, all_up, leave = asyncio.Event(), asyncio.Event(), asyncio.Event()
    st = {"parked": 0, "woken": 0}

    async def waiter():
        st["parked"] += 1
        await ev.wait()
        st["woken"] += 1
        if st["woken"] == n:
            all_up.set()
        await leave.wait()  # ending (and freeing) falls outside the timed part

    tasks = [asyncio.create_task(waiter()) for _ in range(n)]
    await settle(lambda: st["parked"], n)
    t0 = time.perf_counter()
    ev.set()
    await all_up.wait()
    secs = time.perf_counter() - t0
    leave.set()
    await asyncio.gather(*tasks)
    return secs


async def row_event_wake():
    n = scaled(10000)
    return rate(n, await best_of(rep_wake, n))


# ---- 6. wait_for_overhead ----

async def plain_rounds(n):
    t0 = time.perf_counter()
    for _ in range(n):
        await trivial()
    return time.perf_counter() - t0


async def wait_for_rounds(n):
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.wait_for(trivial(), 10)
    return time.perf_counter() - t0


async def row_wait_for_overhead():
    n = scaled(100000)
    await wait_for_rounds(n)  # warm-up
    plain, wf = [], []
    for _ in range(REPS):
        plain.append(await plain_rounds(n))
        wf.append(await wait_for_rounds(n))
    return {"value": (min(wf) - min(plain)) / n * 1e9, "n": n,
            "plain_ns": round(min(plain) / n * 1e9, 1),
            "wait_for_ns": round(min(wf) / n * 1e9, 1)}


# ---- 7. task_switch ----

async def rep_switch(iters):
    async def yielder():
        for _ in range(iters):
            await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(yielder(), yielder())
    return time.perf_counter() - t0


async def row_task_switch():
    iters = scaled(1000000)
    best = await best_of(rep_switch, iters)
    return {"value": best / (2 * iters) * 1e9, "n": 2 * iters, "best_s": round(best, 6)}


# ---- 8. mem_new_task ----

async def row_mem_new_task():
    n = scaled(100000)
    tasks = [None] * n  # the list itself is not part of the cost
    gc.collect()
    before = rss_bytes()
    for i in range(n):
        tasks[i] = asyncio.create_task(trivial())  # created, not yet started
    after = rss_bytes()
    await asyncio.gather(*tasks)
    return {"value": (after - before) / n, "n": n, "rss_delta": after - before}


# ---- 9. mem_parked (Python has one kind of task: small and default are the same) ----

async def row_mem_parked():
    n = scaled(100000)
    ev = asyncio.Event()
    st = {"parked": 0}

    async def waiter():
        st["parked"] += 1
        await ev.wait()

    tasks = [None] * n
    gc.collect()
    before = rss_bytes()
    for i in range(n):
        tasks[i] = asyncio.create_task(waiter())
    await settle(lambda: st["parked"], n)
    after = rss_bytes()
    ev.set()
    await asyncio.gather(*tasks)
    parked = st["parked"]
    return {"value": (after - before) / parked if parked else None, "n": n, "parked": parked,
            "rss_delta": after - before}


ROWS = [
    ("spawn_gather", "tasks/s", "higher", row_spawn_gather),
    ("spawn_gather_small", "tasks/s", "higher", row_spawn_gather),
    ("lock_contention", "acquisitions/s", "higher", row_lock_contention),
    ("semaphore", "ops/s", "higher", row_semaphore),
    ("queue", "items/s", "higher", row_queue),
    ("event_wake", "wakes/s", "higher", row_event_wake),
    ("event_wake_small", "wakes/s", "higher", row_event_wake),
    ("wait_for_overhead", "ns", "lower", row_wait_for_overhead),
    ("task_switch", "ns", "lower", row_task_switch),
    ("mem_new_task", "bytes", "lower", row_mem_new_task),
    ("mem_parked_small", "bytes", "lower", row_mem_parked),
    ("mem_parked_default", "bytes", "lower", row_mem_parked),
]


async def run_rows(rows):
    for name, unit, better, fn in rows:
        try:
            out = await fn()
        except Exception as e:  # a benchmark row that breaks is reported, not fatal
            out = {"value": None, "error": repr(e)}
        obj = {"row": name, "value": out.pop("value"), "unit": unit, "better": better}
        obj.update(out)
        print(json.dumps(obj), flush=True)


def new_loop(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main():
    global SCALE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--row", action="append", default=[])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(r[0] for r in ROWS))
        return 0
    SCALE = 10 if a.quick else 1
    by_name = {r[0]: r for r in ROWS}
    bad = [r for r in a.row if r not in by_name]
    if bad:
        print(f"bench_asyncio: no row {bad[0]!r} (see --list)", file=sys.stderr)
        return 2
    rows = [by_name[r] for r in a.row] if a.row else ROWS
    loop = new_loop(a.loop)
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(run_rows(rows))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
