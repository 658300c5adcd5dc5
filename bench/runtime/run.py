#!/usr/bin/python3
"""run.py: drives bench/runtime. Runs every row on libactor (bench_runtime), asyncio and
uvloop (bench_asyncio.py), each row of each runtime in a fresh process, interleaved row by row,
and prints a markdown table with libactor's ratio to uvloop and the issue's targets. Writes the
table and the raw JSON to bench/out/runtime-<date>.md. Exits 0 even when targets are missed."""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PYTHON = "/usr/bin/python3"  # Debian's, with python3-uvloop (a pyenv python3 has no uvloop)
RUNTIMES = ("libactor", "asyncio", "uvloop")
RATIO_TARGET = 20.0          # every throughput (and overhead) row: >= 20x uvloop
PARKED_DEFAULT_MAX = 4096 + 256


def run_one(cmd, timeout):
    """Runs one process and returns its JSON rows (an error row if it failed)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{"value": None, "error": f"timed out after {timeout}s"}]
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode != 0 or not rows:
        err = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        rows = rows or [{"value": None, "error": err}]
    return rows


def commands(args, row):
    quick = ["--quick"] if args.quick else []
    script = os.path.join(HERE, "bench_asyncio.py")
    return {
        "libactor": [args.bin, "--row", row] + quick,
        "asyncio": [PYTHON, script, "--loop", "asyncio", "--row", row] + quick,
        "uvloop": [PYTHON, script, "--loop", "uvloop", "--row", row] + quick,
    }


def collect(args, rows):
    """results[row][runtime] = that row's JSON object."""
    results = {}
    for row in rows:
        results[row] = {}
        for rt, cmd in commands(args, row).items():
            print(f"  {row:<20} {rt:<9}", end="", file=sys.stderr, flush=True)
            got = run_one(cmd, args.timeout)[0]
            got.setdefault("row", row)
            results[row][rt] = got
            v = got.get("value")
            print(f" {v if v is not None else got.get('error', got.get('skipped'))}",
                  file=sys.stderr, flush=True)
    return results


def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.1f}"


def ratio(lib, uv, better):
    """> 1 always means libactor is better. None when it cannot be computed."""
    if lib is None or uv is None:
        return None
    if better == "higher":
        return lib / uv if uv > 0 else None
    return uv / lib if lib > 0 else float("inf")  # lib <= 0: below measurement noise


def judge(row, res, r):
    """Returns (target text, ok or None when not measurable)."""
    lib = res["libactor"].get("value")
    if row == "task_switch":
        return "< 20 ns", None if lib is None else lib < 20
    if row == "mem_new_task":
        return "< 256 B", None if lib is None else lib < 256
    if row == "mem_parked_small":
        ref = res["asyncio"].get("value")
        ok = None if lib is None or ref is None else lib <= ref
        return f"<= asyncio ({fmt(ref)} B)", ok
    if row == "mem_parked_default":
        ok = None if lib is None else (lib <= PARKED_DEFAULT_MAX
                                       and not res["libactor"].get("enomem"))
        return f"<= {PARKED_DEFAULT_MAX} B", ok
    return f">= {RATIO_TARGET:.0f}x uvloop", None if r is None else r >= RATIO_TARGET


def lib_cell(obj):
    if obj.get("skipped"):
        return f"skipped: {obj['skipped']}"
    cell = fmt(obj.get("value"))
    if obj.get("enomem"):
        cell += f" (ENOMEM: {obj['enomem']} of {obj.get('n')})"
    if obj.get("error") and obj.get("value") is None:
        cell += f" ({obj['error']})"
    return cell


def table(results):
    lines = ["| row | unit | libactor | asyncio | uvloop | x vs uvloop | target | ok |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    misses = []
    for row, res in results.items():
        lib, uv = res["libactor"], res["uvloop"]
        r = ratio(lib.get("value"), uv.get("value"), lib.get("better", "higher"))
        target, ok = judge(row, res, r)
        rtxt = "n/a" if r is None else ("inf" if r == float("inf") else f"{r:.1f}x")
        oktxt = {True: "yes", False: "**MISS**", None: "n/a"}[ok]
        lines.append(f"| {row} | {lib.get('unit', '')} | {lib_cell(lib)} | "
                     f"{fmt(res['asyncio'].get('value'))} | {fmt(uv.get('value'))} | {rtxt} | "
                     f"{target} | {oktxt} |")
        if ok is False:
            misses.append(f"{row}: libactor {fmt(lib.get('value'))} {lib.get('unit', '')}, "
                          f"x vs uvloop {rtxt}, target {target}")
        elif ok is None:
            misses.append(f"{row}: not measured: {lib_cell(lib)}")
    return "\n".join(lines), misses


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    py = subprocess.run([PYTHON, "-c", "import sys, uvloop; "
                         "print(sys.version.split()[0], uvloop.__version__)"],
                        capture_output=True, text=True).stdout.split()
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    return (f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}; "
            f"Python {py[0] if py else '?'}, uvloop {py[1] if len(py) > 1 else '?'}; "
            f"commit {git or '?'}")


def write_report(out_dir, header, tab, misses, results):
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    path = os.path.join(out_dir, f"runtime-{stamp}.md")
    raw = [dict(obj, runtime=rt) for res in results.values() for rt, obj in res.items()]
    with open(path, "w") as f:
        f.write(f"# bench/runtime {stamp}\n\n{header}\n\n{tab}\n\n")
        f.write("## Misses\n\n" + ("\n".join(f"- {m}" for m in misses) or "none") + "\n\n")
        f.write("## Raw rows\n\n```json\n")
        f.write("\n".join(json.dumps(o) for o in raw) + "\n```\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench/bench/bench_runtime"))
    ap.add_argument("--row", action="append", default=[], help="run only these rows")
    ap.add_argument("--quick", action="store_true", help="sizes / 10 (a smoke test)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per process")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/out"))
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        print(f"run.py: no {args.bin}; build it with bench/run.sh", file=sys.stderr)
        return 2
    listed = subprocess.run([args.bin, "--list"], capture_output=True, text=True).stdout.split()
    rows = [r for r in listed if not args.row or r in args.row]
    print(f"bench/runtime: {len(rows)} rows x {RUNTIMES}", file=sys.stderr)
    results = collect(args, rows)
    header = f"Machine: {machine()}." + (" QUICK run (sizes / 10)." if args.quick else "")
    tab, misses = table(results)
    print(f"\n{header}\n\n{tab}\n")
    print("Targets missed:" if misses else "All targets met.")
    for m in misses:
        print(f"  - {m}")
    print(f"\nwrote {write_report(args.out, header, tab, misses, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
