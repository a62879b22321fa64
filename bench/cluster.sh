#!/usr/bin/env bash
# Issue 18's cluster figures, side by side in ONE run, over loopback with a
# real redis-server (no persistence):
#   fanout  1 sender, NCLIENTS clients spread over 3 nodes (the sender on
#           n1), NLINES lines of 64 B, against ONE node (no --cluster) with
#           NCLIENTS clients: msgs/s, server CPU per delivered line (all
#           nodes), and Redis CPU per relayed line (INFO cpu before/after);
#           also one node alone with --cluster (what cluster mode costs);
#   kick    graceful kick -> client EOF, p50/p99: the client on n1 kicked
#           from n2's console (cross-node) against from n1's own (local),
#           with `pc kick` (../shared/loadgen);
#   leave   a SIGKILLed node (n4, one client) gone from n1's `nodes` and
#           `list` (ms after the SIGKILL);
# every measurement recorded with `uptime`, REPEAT rounds, then median,
# min and max per figure.
#
#   bench/cluster.sh [--repeat N] [--quick] [runtime:shards]   (default tokio:2, 3 rounds)
#
# Like bench/loadgen.sh: waits for load average < 1.5 before each
# measurement (TETHER_BENCH_ANY_LOAD=1 skips the wait; such figures are
# marked INDICATIVE and are not to be published). Raw lines:
# target/cluster-bench/results.txt (CLUSTER_BENCH_OUT=DIR for another
# directory, CLUSTER_BENCH_PORT=N for other ports; CLUSTER_BENCH_TETHER=BIN
# runs BIN instead of a fresh release build, e.g. a debug build for a smoke
# test). Needs redis-server (.ci/run installs it) and gcc.
set -euo pipefail
cd "$(dirname "$0")/.."

REPEAT=3
QUICK=0
SPEC=tokio:2
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) REPEAT="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) SPEC="$1"; shift ;;
  esac
done
RUNTIME=${SPEC%%:*}
SHARDS=${SPEC#*:}
[ "$SHARDS" != "$SPEC" ] || SHARDS=1

command -v redis-server >/dev/null || { echo "redis-server missing: run .ci/run (it installs it) or apt-get install -y redis-server" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "redis-cli missing (package redis-tools)" >&2; exit 2; }

LG=${LOADGEN:-../shared/loadgen}
OUT=${CLUSTER_BENCH_OUT:-target/cluster-bench}
mkdir -p "$OUT"
RES="$OUT/results.txt"
: > "$RES"

gcc -O2 -pthread -o "$OUT/pc" "$LG/pc.c"
gcc -O2 -pthread -o "$OUT/cluster_pc" bench/cluster_pc.c
TARGET=${CARGO_TARGET_DIR:-target}
if [ -n "${CLUSTER_BENCH_TETHER:-}" ]; then
  # Another binary (e.g. a debug build for a smoke test: not a figure).
  cp "$CLUSTER_BENCH_TETHER" "$OUT/tether"
else
  cargo build --release -q -p tether --bin tether
  # A copy: a rebuild during the run cannot swap the binary under a measurement.
  cp "$TARGET/release/tether" "$OUT/tether"
fi
TETHER="$OUT/tether"
PC="$OUT/pc"
CPC="$OUT/cluster_pc"

FAN_CLIENTS=1000; FAN_LINES=1000; KICKS=1000
if [ "$QUICK" = 1 ]; then FAN_CLIENTS=60; FAN_LINES=50; KICKS=20; fi

ulimit -n 20000 2>/dev/null || true
# shellcheck source=bench/load.sh
. bench/load.sh

record() { echo "$*" | tee -a "$RES"; }

PORT=${CLUSTER_BENCH_PORT:-32000}
REDIS_PORT=$((PORT - 1))
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT

start_redis() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$OUT/redis"; mkdir -p "$OUT/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$OUT/redis" --daemonize no --protected-mode no >"$OUT/redis.log" 2>&1 &
  PIDS+=($!)
  REDIS_PID=$!
  wait_port "$REDIS_PORT"
}
redis_cpu() { # used_cpu_sys + used_cpu_user of redis-server, seconds
  redis-cli -p "$REDIS_PORT" info cpu | tr -d '\r' |
    awk -F: '/^used_cpu_sys:/{s=$2} /^used_cpu_user:/{u=$2} END{printf "%.6f", s+u}'
}

# start_node NAME CHATPORT [--cluster]: starts tether serve, sets NODE_PID.
start_node() {
  local name=$1 port=$2 cluster=()
  if [ "${3:-}" = --cluster ]; then cluster=(--cluster "redis://127.0.0.1:$REDIS_PORT" --node "$name"); fi
  "$TETHER" serve --runtime "$RUNTIME" --shards "$SHARDS" --listen "127.0.0.1:$port" \
    --admin "127.0.0.1:$((port + 1))" --web off --max-channels 20000 --queue-limit 1m "${cluster[@]}" \
    >"$OUT/node-$name.log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  wait_port "$port"
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

P1=$PORT; P2=$((PORT + 10)); P3=$((PORT + 20)); P4=$((PORT + 30)); PS=$((PORT + 40))
for round in $(seq 1 "$REPEAT"); do
  echo "== round $round ($SPEC)"
  # --- one node, no cluster: the baseline of the fan-out
  load_ok
  start_node single "$PS"; S=$NODE_PID
  record "round=$round server=single bench=fanout uptime=\"$(uptime)\" $("$CPC" fanout "$PS" "$FAN_CLIENTS" "$FAN_LINES" 64 "$S")"
  stop "$S"
  # --- the same node in cluster mode, alone: what --cluster costs locally
  start_redis
  load_ok
  start_node c1 "$PS" --cluster; S=$NODE_PID
  record "round=$round server=cluster1 bench=fanout uptime=\"$(uptime)\" $("$CPC" fanout "$PS" "$FAN_CLIENTS" "$FAN_LINES" 64 "$S")"
  stop "$S"
  # --- three nodes over one redis-server
  start_node n1 "$P1" --cluster; N1=$NODE_PID
  start_node n2 "$P2" --cluster; N2=$NODE_PID
  start_node n3 "$P3" --cluster; N3=$NODE_PID
  sleep 1
  load_ok
  r0=$(redis_cpu)
  line=$("$CPC" fanout "$P1,$P2,$P3" "$FAN_CLIENTS" "$FAN_LINES" 64 "$N1,$N2,$N3") || true
  r1=$(redis_cpu)
  redis_us=$(awk -v a="$r0" -v b="$r1" -v n="$FAN_LINES" 'BEGIN{printf "%.2f", (b-a)/n*1e6}')
  record "round=$round server=cluster3 bench=fanout uptime=\"$(uptime)\" $line redis_cpu_s=$(awk -v a="$r0" -v b="$r1" 'BEGIN{printf "%.3f", b-a}') redis_cpu_us_per_line=$redis_us"
  load_ok
  record "round=$round server=cluster3 bench=kick-cross uptime=\"$(uptime)\" $("$PC" kick "$P1" $((P2 + 1)) "$KICKS" 1000 seq | kick_summary)"
  load_ok
  record "round=$round server=cluster3 bench=kick-local uptime=\"$(uptime)\" $("$PC" kick "$P1" $((P1 + 1)) "$KICKS" 1000 seq | kick_summary)"
  start_node n4 "$P4" --cluster; N4=$NODE_PID
  disown "$N4" # cluster_pc kills it: no "Killed" job notice
  load_ok
  record "round=$round server=cluster3 bench=leave uptime=\"$(uptime)\" $("$CPC" leave $((P1 + 1)) n4 "$N4" "$P4")"
  stop "$N1"; stop "$N2"; stop "$N3"
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  wait "$REDIS_PID" 2>/dev/null || true
  PIDS=()
done

echo
echo "== summary (median over rounds; raw lines in $RES)"
python3 - "$RES" <<'PY'
import os, re, statistics, sys
sys.path.insert(0, 'bench')
from results import kept_rows, load  # the load rule, written once
rows = kept_rows(sys.argv[1])
def med(server, bench, key):
    v = []
    for r in rows:
        if r.get('server') == server and r.get('bench') == bench and key in r:
            try:
                x = float(r[key])
            except ValueError:
                continue
            if x >= 0:
                v.append(x)
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
figures = [
    ('single', 'fanout', 'msgs_per_s'), ('cluster1', 'fanout', 'msgs_per_s'), ('cluster3', 'fanout', 'msgs_per_s'),
    ('single', 'fanout', 'cpu_us_per_msg'), ('cluster1', 'fanout', 'cpu_us_per_msg'), ('cluster3', 'fanout', 'cpu_us_per_msg'),
    ('cluster3', 'fanout', 'redis_cpu_us_per_line'),
    ('cluster3', 'kick-cross', 'p50_us'), ('cluster3', 'kick-cross', 'p99_us'),
    ('cluster3', 'kick-local', 'p50_us'), ('cluster3', 'kick-local', 'p99_us'),
    ('cluster3', 'leave', 'leave_nodes_ms'), ('cluster3', 'leave', 'leave_list_ms'),
]
for s, b, k in figures:
    m = med(s, b, k)
    if m:
        print(f"{s:9} {b:10} {k:22} median={m[0]:,.1f} min={m[1]:,.1f} max={m[2]:,.1f} rounds={m[3]}")
f1, f3 = med('single', 'fanout', 'msgs_per_s'), med('cluster3', 'fanout', 'msgs_per_s')
if f1 and f3:
    print(f"cross-node fan-out / one node = {f3[0] / f1[0]:.2f}x (issue 18 target >= 0.5x)")
fc = med('cluster1', 'fanout', 'msgs_per_s')
if f1 and fc:
    print(f"one node with --cluster / without = {fc[0] / f1[0]:.2f}x (what cluster mode costs a local fan-out)")
c, l = med('cluster3', 'kick-cross', 'p99_us'), med('cluster3', 'kick-local', 'p99_us')
if c and l:
    print(f"kick -> EOF p99: cross-node {c[0] / 1000:.2f} ms vs local {l[0] / 1000:.2f} ms (issue 18 target cross p99 <= 2 ms)")
bad = [r for r in rows if r.get('bench') == 'fanout' and (r.get('missing_lines', '0') != '0' or r.get('clients_wrong_bytes', '0') != '0')]
for r in bad:
    print(f"INCOMPLETE fan-out: round {r['round']} {r['server']}: missing_lines={r.get('missing_lines')} clients_wrong_bytes={r.get('clients_wrong_bytes')}")
PY
