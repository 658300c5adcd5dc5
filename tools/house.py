#!/usr/bin/env python3
"""house.py: draws the source tree as a house: files as rooms, #include "..." as arrows.

A file's floor is one above the highest floor it includes, so every arrow points down unless
files include each other in a circle. Prints, per folder, the floors it spans, the arrows
that leave it, and every circle of files; --check exits 1 when a rule is broken:
  - no circle of files (a strongly connected set of more than one file);
  - no arrow from a lower layer up to a higher one (--layer LOW HIGH, repeatable: no file
    under LOW may include a file under HIGH);
  - no two C sources of one name anywhere in the tree (a name says what a file is, so two
    files of one name would mean two things), but the names --same-name allows (main.c:
    one per program).

  tools/house.py worker                       # the drawing of worker/ (and what it reaches)
  tools/house.py --check --layer worker/agent worker --allow worker/include worker
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SKIP = ("build", ".git", "node_modules", "bench/out")


def sources():
    out = []
    for d, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(d, ROOT)
        dirs[:] = [x for x in dirs if not any(os.path.join(rel, x).lstrip("./").startswith(s)
                                              for s in SKIP) and not x.startswith("build")]
        out += [os.path.normpath(os.path.join(rel, f)) for f in files if f.endswith((".c", ".h"))]
    return sorted(out)


def resolve(src, name, by_suffix):
    local = os.path.normpath(os.path.join(os.path.dirname(src), name))
    if os.path.exists(os.path.join(ROOT, local)):
        return local
    cands = by_suffix.get(os.path.basename(name), [])
    cands = [c for c in cands if c.endswith("/" + name) or c == name]
    if len(cands) > 1:  # the same name in two places: the one nearest the includer wins
        top = src.split("/")[0]
        near = [c for c in cands if c.split("/")[0] == top]
        cands = near or cands
    return cands[0] if cands else None


def graph(files):
    by_suffix = {}
    for f in files:
        by_suffix.setdefault(os.path.basename(f), []).append(f)
    edges = {}
    for f in files:
        with open(os.path.join(ROOT, f), errors="replace") as fh:
            text = fh.read()
        edges[f] = sorted({r for n in INCLUDE.findall(text) if (r := resolve(f, n, by_suffix))
                           and r != f})
    return edges


def circles(edges):
    """Tarjan's strongly connected components of more than one file."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def floors(edges):
    memo = {}

    def floor(v, seen=()):
        if v in memo:
            return memo[v]
        if v in seen:
            return 0  # inside a circle: reported separately
        f = 1 + max((floor(w, seen + (v,)) for w in edges.get(v, [])), default=-1)
        memo[v] = f
        return f

    return {v: floor(v) for v in edges}


def same_names(files, allowed):
    """C sources (.c) that share a basename, except the allowed names."""
    by_name = {}
    for f in files:
        if f.endswith(".c"):
            by_name.setdefault(os.path.basename(f), []).append(f)
    return {n: fs for n, fs in sorted(by_name.items()) if len(fs) > 1 and n not in allowed}


def under(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*",
                    default=["base", "proto", "libactor", "worker/agent", "worker", "broker"])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--layer", nargs=2, action="append", default=[], metavar=("LOW", "HIGH"))
    ap.add_argument("--allow", action="append", default=[], metavar="FOLDER",
                    help="a folder under HIGH that LOW may include (an ABI header's)")
    ap.add_argument("--same-name", action="append", default=["main.c"], metavar="NAME",
                    help="a C source name more than one folder may use (main.c is allowed)")
    a = ap.parse_args()
    files = sources()
    edges = graph(files)
    fl = floors(edges)
    broken = []
    for folder in a.folders:
        mine = sorted(f for f in edges if under(f, folder))
        if not mine:
            continue
        top = max(fl[f] for f in mine)
        print(f"{folder}/: {len(mine)} files on {top + 1} floors")
        for f in sorted(mine, key=lambda x: (-fl[x], x)):
            arrows = ", ".join(edges[f]) or "-"
            print(f"  {fl[f]:2d} {f} -> {arrows}")
    for comp in circles(edges):
        if any(under(f, d) for f in comp for d in a.folders):
            broken.append("circle: " + " <-> ".join(comp))
    for low, high in a.layer:
        for f, tos in edges.items():
            if under(f, low):
                for t in tos:
                    if under(t, high) and not under(t, low) and \
                            not any(under(t, x) for x in a.allow):
                        broken.append(f"up: {f} -> {t} ({low} must not include {high})")
    for name, fs in same_names(files, set(a.same_name)).items():
        broken.append(f"same name: {name}: " + ", ".join(fs))
    for b in broken:
        print(b)
    print(f"{len(broken)} broken rules")
    return 1 if a.check and broken else 0


if __name__ == "__main__":
    sys.exit(main())
