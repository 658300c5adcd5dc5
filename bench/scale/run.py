"""bench/scale/run.py: throughput of `sleep` queries (--ms, default 10) through one broker with
1, 2, 4 and 8 real workers of --capacity 16 each, against the ideal workers x capacity / ms,
printed as a markdown table (and written to --out). Each row starts a fresh broker and its
workers on free loopback ports and keeps 2 x workers x capacity queries outstanding, so the
workers always have a queue to take from. Uses tests/lib/abtest.py to run processes."""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
import abtest  # noqa: E402


def row(o, n):
    os.environ["ACTOR_BROKER"] = o.broker
    os.environ["ACTOR_WORKER"] = o.worker
    b = abtest.Broker(heartbeat_ms=1000, log_level="warn").start()
    try:
        names = ["scale-%d" % i for i in range(n)]
        abtest.start_workers(b, names, real=True, capacity=o.capacity,
                             extra=["--log-level", "warn"])
        inflight = 2 * n * o.capacity
        r = subprocess.run([o.drive, "--endpoint", b.clients, "--inflight", str(inflight),
                            "--ms", str(o.ms), "--seconds", str(o.seconds), "--warmup", "1"],
                           capture_output=True, text=True, timeout=o.seconds + 30)
        if r.returncode != 0:
            raise SystemExit("scaledrive failed: " + r.stderr)
        res = json.loads(r.stdout)
    finally:
        abtest.kill_all()
    ideal = n * o.capacity * 1000.0 / o.ms
    return {"workers": n, "inflight": inflight, "qps": res["qps"], "errors": res["errors"],
            "ideal": ideal, "ratio": res["qps"] / ideal}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("--drive", required=True)
    ap.add_argument("--workers", default="1,2,4,8")
    ap.add_argument("--capacity", type=int, default=16)
    ap.add_argument("--ms", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out")
    o = ap.parse_args()
    rows = [row(o, int(n)) for n in o.workers.split(",")]
    lines = ["Scaling: `sleep` %d ms queries, capacity %d per worker, %d CPU cores, %.0f s "
             "per row" % (o.ms, o.capacity, os.cpu_count(), o.seconds), "",
             "| workers | outstanding | q/s | ideal q/s | ratio | errors |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %d | %d | %.0f | %.0f | %.2f | %d |" % (
            r["workers"], r["inflight"], r["qps"], r["ideal"], r["ratio"], r["errors"]))
    text = "\n".join(lines)
    print(text, flush=True)
    if o.out:
        os.makedirs(os.path.dirname(o.out) or ".", exist_ok=True)
        with open(o.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
