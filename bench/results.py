"""Reading a bench script's raw lines (`key=value ...`, each with the
`uptime` it was taken at), written once for bench/loadgen.sh, bench/web.sh
and bench/cluster.sh, whose summaries import it.

The rule: a figure taken at a 1-minute load average >= 1.5 is not a figure.
It is left out, and said so; with TETHER_BENCH_ANY_LOAD=1 it is kept and
the whole summary is marked indicative only (not to be published).
"""
import os
import re

LOAD_LIMIT = 1.5


def load(row):
    """The 1-minute load average in the row's `uptime`, or None."""
    m = re.search(r'load average: ([0-9.]+)', row.get('uptime', ''))
    return float(m.group(1)) if m else None


def kept_rows(path):
    """The rows of `path` that count, after printing what the load rule did."""
    rows = [r for r in (dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line)) for line in open(path))
            if 'server' in r]
    high = [r for r in rows if (load(r) or 0) >= LOAD_LIMIT]
    if os.environ.get('TETHER_BENCH_ANY_LOAD') == '1':
        if high:
            loads = sorted(load(r) for r in high)
            print(f"INDICATIVE ONLY: {len(high)} of {len(rows)} figures taken at load >= {LOAD_LIMIT} "
                  f"({loads[0]:.2f} to {loads[-1]:.2f}; TETHER_BENCH_ANY_LOAD=1): do not publish")
    else:
        for r in high:
            print(f"left out (load {load(r)}): round {r.get('round')} {r['server']} {r.get('bench')}")
        rows = [r for r in rows if (load(r) or 0) < LOAD_LIMIT]
    loads = [load(r) for r in rows if load(r) is not None]
    if loads:
        print(f"load average (1 min) over the kept figures: {min(loads):.2f} to {max(loads):.2f}")
    return rows
