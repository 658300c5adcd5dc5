"""bench/broker/cg_funcs.py T N1 N2 TOP: the TOP functions of largest inclusive cost per unit,
from callgrind_annotate's inclusive (T/inc.N) and self (T/self.N) listings of an N1- and an
N2-unit run, differenced: (cost(N2) - cost(N1)) / (N2 - N1), so start and stop cancel out."""
import re
import sys

t, n1, n2, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
line = re.compile(r'^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)(?:\s+\[[^\]]*\])?\s*$')


def load(path, agg):
    out = {}
    for l in open(path, errors='replace'):
        m = line.match(l)
        if not m or '=>' in l or ':' not in m.group(2):
            continue
        # callgrind names a function once by its relative and once by its absolute file
        k = m.group(2).rsplit('/', 1)[-1]
        out[k] = agg(out.get(k, 0), int(m.group(1).replace(',', '')))
    return out


inc = [load(f'{t}/inc.{n}', max) for n in (n1, n2)]
slf = [load(f'{t}/self.{n}', lambda a, b: a + b) for n in (n1, n2)]
d = n2 - n1
rows = [((inc[1].get(k, 0) - inc[0].get(k, 0)) / d, k) for k in inc[1]]
print(f"{'incl/q':>9} {'self/q':>9}  function")
for v, k in sorted(rows, reverse=True)[:top]:
    s = (slf[1].get(k, 0) - slf[0].get(k, 0)) / d
    print(f"{v:9.0f} {s:9.0f}  {k}")
