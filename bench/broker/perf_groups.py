#!/usr/bin/python3
"""bench/broker/perf_groups.py: groups the samples of `perf script` (bench/broker/perf.sh) by
thread (the broker's loop, libzmq's I/O thread) and by what they were doing: kernel time is
charged to the syscall that entered it (its first user-space frame), the rest to libzmq, malloc
and free, other libc, or the broker's own code (proto, hash maps, the rest). Percent of all
samples. Usage: perf_groups.py PERF_SCRIPT_OUTPUT"""
import collections
import re
import sys


def category(comm, frames):
    kernel, user = False, None
    for sym, dso in frames:
        if "kernel" in dso:
            kernel = True
            continue
        user = (sym, dso)
        break
    th = "I/O thread" if comm.startswith("ZMQbg") else "loop thread"
    if user is None:
        return "%s: kernel, other" % th
    sym, dso = user
    if kernel:
        return "%s: kernel, %s(2)" % (th, re.sub(r"^(__GI___libc_|__libc_|__)", "", sym))
    if "libzmq" in dso:
        return "%s: libzmq (user)" % th
    if re.search(r"malloc|free|calloc|realloc|lll_lock|unlink_chunk", sym):
        return "%s: malloc/free (libc)" % th
    if "libc" in dso:
        return "%s: libc, other (syscall wrappers, memcpy, memcmp)" % th
    if dso.endswith("actor-broker"):
        if sym.startswith("proto"):
            return "%s: broker code, proto decode/encode" % th
        if sym in ("siphash", "brk_map_get", "brk_map_put", "brk_map_del"):
            return "%s: broker code, hash maps" % th
        return "%s: broker code, the rest" % th
    return "%s: other (%s)" % (th, dso.split("/")[-1])


def main():
    groups, total = collections.Counter(), 0
    comm, frames = None, []
    with open(sys.argv[1], errors="replace") as f:
        for line in list(f) + [""]:
            if not line.strip():
                if comm is not None:
                    groups[category(comm, frames)] += 1
                    total += 1
                comm, frames = None, []
            elif not line.startswith((" ", "\t")):
                comm = line.split()[0]
            else:
                m = re.match(r"\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
                if m:
                    frames.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
    print("%d samples" % total)
    for k, v in groups.most_common():
        print("%5.1f%%  %s" % (100.0 * v / max(total, 1), k))


if __name__ == "__main__":
    main()
