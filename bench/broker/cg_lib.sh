# bench/broker/cg_lib.sh: what broker_cg.sh, worker_cg.sh and worker_sys.sh share; sourced from
# the repository root, with T (their temp folder) set.

# Prints n free loopback TCP ports (bound and released: another broker on this machine may
# hold the default ones).
free_ports() {
    /usr/bin/python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# Waits until file $1 holds pattern $2 (valgrind starts slowly on a busy machine), 30 s at most.
wait_for() {
    i=0
    until grep -q "$2" "$1" 2>/dev/null || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
}

# The user-space instruction total of a callgrind file.
cg_total() {
    grep -h '^totals:\|^summary:' "$1" | head -1 | awk '{print $2}'
}

# With FUNCS=N: the N functions of largest inclusive cost per unit (query or message), from
# the callgrind files $T/cg.N1 and $T/cg.N2 differenced as the totals are (cg_funcs.py).
cg_funcs() {
    [ -n "${FUNCS:-}" ] || return 0
    for n in "$1" "$2"; do
        callgrind_annotate --inclusive=yes --threshold=100 "$T/cg.$n" >"$T/inc.$n" 2>/dev/null
        callgrind_annotate --threshold=100 "$T/cg.$n" >"$T/self.$n" 2>/dev/null
    done
    /usr/bin/python3 bench/broker/cg_funcs.py "$T" "$1" "$2" "$FUNCS"
}
