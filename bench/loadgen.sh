#!/usr/bin/env bash
# Side-by-side loopback figures for every runtime of `tether serve`, beside
# the bare C floor and a bare async-std echo server, all in ONE run, with the
# load client the issues' figures were measured with (../shared/loadgen).
#
#   bench/loadgen.sh [--repeat N] [--quick] [--benches churn,kick,fanout,idle]
#                    [runtime:shards[:variant...] ...]
#   (default: every runtime with 1 and 2 shards, e.g. tokio:2; variants
#   echo, reuseport, record, prev: see spec_flags below; every bench by default,
#   the floors and bare servers included. Specs run interleaved: every spec
#   once per round, in reverse order on even rounds.)
#
# Prints `uptime` before every measurement and refuses to start above load
# 1.5 (set TETHER_BENCH_ANY_LOAD=1 to override, and do not publish such
# figures). Raw output: target/loadgen/results.txt (LOADGEN_OUT=DIR for
# another directory; LOADGEN_PORT=N for other ports; LOADGEN_FAN_LINES=N for
# a longer fan-out than 1,000 lines, which lasts only ~0.1-0.3 s: too short
# to average out a noisy host); summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

REPEAT=3
QUICK=0
BENCHES=churn,kick,fanout,idle
RUNTIMES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) REPEAT="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --benches) BENCHES="$2"; shift 2 ;;
    *) RUNTIMES+=("$1"); shift ;;
  esac
done
[ ${#RUNTIMES[@]} -gt 0 ] || RUNTIMES=(async-std:1 async-std:2 smol:1 smol:2 threads:1 threads:2 tokio:1 tokio:2)

LG=${LOADGEN:-../shared/loadgen}
OUT=${LOADGEN_OUT:-target/loadgen}
mkdir -p "$OUT"
RES="$OUT/results.txt"
: > "$RES"

gcc -O2 -pthread -o "$OUT/pc" "$LG/pc.c"
gcc -O2 -o "$OUT/floor" "$LG/floor.c"
# The floor's echo on N threads (one SO_REUSEPORT listener and epoll each):
# how much 2 threads can gain over 1 at churn on this machine at all.
gcc -O2 -pthread -o "$OUT/floor-threads" bench/floor_threads.c
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p tether --bin tether
cargo build --release -q -p tether-async-std --example bare_async_std_echo
cp "$TARGET/release/examples/bare_async_std_echo" "$OUT/bare-async-std"
cargo build --release -q -p tether-tokio --example bare_tokio_echo
cp "$TARGET/release/examples/bare_tokio_echo" "$OUT/bare-tokio"
# Copies: a rebuild during the run (another checkout's, a helper's) cannot
# swap the binary under a measurement.
cp "$TARGET/release/tether" "$OUT/tether"
TETHER="$OUT/tether"
if [ -n "${TETHER_PREV:-}" ]; then cp "$TETHER_PREV" "$OUT/tether-prev"; fi
PC="$OUT/pc"

CHURN_SECS=5; FAN_CLIENTS=1000; FAN_LINES=${LOADGEN_FAN_LINES:-1000}; KICKS=1000; IDLE=10000
if [ "$QUICK" = 1 ]; then CHURN_SECS=2; FAN_CLIENTS=200; FAN_LINES=200; KICKS=200; IDLE=1000; fi

ulimit -n 20000 2>/dev/null || true

# shellcheck source=bench/load.sh
. bench/load.sh

wants() { [[ ",$BENCHES," == *",$1,"* ]]; }

record() { # name key=value...
  echo "$*" | tee -a "$RES"
}

FIRST_PORT=${LOADGEN_PORT:-31000}
PORT=$FIRST_PORT
# Each measurement takes fresh ports (the last ones may still be in
# TIME_WAIT), wrapping before the kernel's ephemeral range (32768 on): a
# listener there can find its port taken by a client's connection, as a
# run of 8 rounds did at 32800. A port comes round again only after ~170
# measurements, minutes later.
next_port() {
  PORT=$((PORT + 10))
  if [ $((PORT + 2)) -ge 32768 ]; then PORT=$((FIRST_PORT < 32000 ? FIRST_PORT : 20000)); fi
}

# A server spec is runtime:shards[:variant...]; each variant adds flags:
#   echo       --echo (lines back to their sender only: the bare servers' cycle)
#   reuseport  --accept reuseport (one SO_REUSEPORT listener per shard)
#   record     --record FILE (the flight recorder on)
#   prev       no flag: the binary in $TETHER_PREV (e.g. the previous
#              commit's release build) instead of this checkout's, so that
#              `tokio:2:prev` against `tokio:2` is a same-run ratio
spec_flags() { # spec -> extra flags on stdout
  local IFS=: words
  read -ra words <<<"$1"
  for w in "${words[@]:2}"; do
    case "$w" in
      echo) echo --echo ;;
      reuseport) echo --accept reuseport ;;
      record) echo --record "$OUT/record-${1//:/-}/rec" ;;
      prev) ;;
      *) echo "unknown variant $w in $1" >&2; return 1 ;;
    esac
  done
}

start_tether() { # spec port
  local IFS=: words extra
  read -ra words <<<"$1"
  extra=$(spec_flags "$1") || exit 2
  if [[ "$1" == *:record* ]]; then rm -rf "$OUT/record-${1//:/-}"; mkdir -p "$OUT/record-${1//:/-}"; fi
  IFS=$' \t\n'
  local bin="$TETHER"
  if [[ "$1" == *:prev* ]]; then
    [ -x "$OUT/tether-prev" ] || { echo "spec $1 needs TETHER_PREV=<binary>" >&2; exit 2; }
    bin="$OUT/tether-prev"
  fi
  # shellcheck disable=SC2086 # extra is a list of flags
  # TETHER_WEB=off: no WebSocket listener on its default port (older
  # binaries ignore the variable).
  TETHER_WEB=off "$bin" serve --runtime "${words[0]}" --shards "${words[1]}" --listen "127.0.0.1:$2" --admin "127.0.0.1:$(($2 + 1))" \
    --max-channels 20000 --queue-limit 1m $extra >"$OUT/server-${1//:/-}.log" 2>&1 &
  SRV=$!
  wait_port "$2"
}

stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# One measurement of the server listening on $PORT, recorded with its uptime.
churn() { # name
  record "round=$round server=$1 bench=churn uptime=\"$(uptime)\" $("$PC" churn "$PORT" "$CHURN_SECS" 4 10)"
}
kick() { # name (waits for the load first: it follows another measurement)
  load_ok
  record "round=$round server=$1 bench=kick uptime=\"$(uptime)\" $("$PC" kick "$PORT" $((PORT + 1)) "$KICKS" 1000 seq | kick_summary)"
}

for round in $(seq 1 "$REPEAT"); do
  echo "== round $round"
  # --- the floors
  if wants churn || wants kick; then
    load_ok; next_port
    "$OUT/floor" "$PORT" & F=$!; wait_port "$PORT"
    if wants churn; then
      churn floor
    fi
    if wants kick; then
      kick floor
    fi
    stop $F
  fi
  if wants fanout; then
    load_ok; next_port
    "$OUT/floor" "$PORT" bcast & F=$!; wait_port "$PORT"
    record "round=$round server=floor-bcast bench=fanout uptime=\"$(uptime)\" $("$PC" fanout "$PORT" "$FAN_CLIENTS" "$FAN_LINES" 64 $F)"
    stop $F
  fi
  if wants churn; then
    for n in 1 2; do
      load_ok; next_port
      "$OUT/floor-threads" "$PORT" "$n" & F=$!; wait_port "$PORT"
      churn "floor-threads:$n"
      stop $F
    done
    for bare in async-std tokio; do
      load_ok; next_port
      "$OUT/bare-$bare" "127.0.0.1:$PORT" >/dev/null & B=$!; wait_port "$PORT"
      churn "bare-$bare"
      stop $B
    done
  fi
  # --- every runtime of tether serve; even rounds in reverse order, so a
  # spec and its variant (e.g. tokio:2 and tokio:2:prev) take turns going
  # first and an order effect (the port's TIME_WAIT left by the spec
  # before, the machine warming) cancels out of the paired ratios.
  order=("${RUNTIMES[@]}")
  if [ $((round % 2)) = 0 ]; then
    order=()
    for ((k = ${#RUNTIMES[@]} - 1; k >= 0; k--)); do order+=("${RUNTIMES[k]}"); done
  fi
  for rt in "${order[@]}"; do
    if wants churn || wants kick; then
      load_ok; next_port; start_tether "$rt" "$PORT"
      if wants churn; then
        churn "$rt"
      fi
      if wants kick; then
        kick "$rt"
      fi
      stop $SRV
    fi
    # --echo sends lines back to their sender only: no fan-out to measure.
    if wants fanout && [[ "$rt" != *:echo* ]]; then
      load_ok; next_port; start_tether "$rt" "$PORT"
      record "round=$round server=$rt bench=fanout uptime=\"$(uptime)\" $("$PC" fanout "$PORT" "$FAN_CLIENTS" "$FAN_LINES" 64 $SRV)"
      stop $SRV
    fi
    if [ "$round" = 1 ] && wants idle && [[ "$rt" != *:echo* ]]; then
      load_ok; next_port; start_tether "$rt" "$PORT"
      record "round=$round server=$rt bench=idle uptime=\"$(uptime)\" $("$PC" idle "$PORT" "$IDLE" 8 20 $SRV | tr '\n' ' ')"
      stop $SRV
    fi
  done
done

echo
echo "== summary (median over rounds; raw lines in $RES)"
python3 - "$RES" <<'PY'
import os, re, statistics, sys
sys.path.insert(0, 'bench')
from results import kept_rows, load  # the load rule, written once
rows = kept_rows(sys.argv[1])
def med(server, bench, key):
    v = [float(r[key]) for r in rows if r.get('server') == server and r.get('bench') == bench and key in r]
    return (statistics.median(v), min(v), max(v)) if v else None
servers = sorted({r['server'] for r in rows})
for s in servers:
    for bench, key in [('churn', 'rate'), ('fanout', 'msgs_per_s'), ('fanout', 'cpu_us_per_msg'), ('kick', 'p99_us'), ('kick', 'p50_us')]:
        m = med(s, bench, key)
        if m:
            print(f"{s:16} {bench:7} {key:15} median={m[0]:,.1f} min={m[1]:,.1f} max={m[2]:,.1f}")
for r in rows:
    if r.get('bench') == 'idle' and 'rss_after_kb' in r:
        per = (float(r['rss_after_kb']) - float(r['rss_before_kb'])) / max(1, int(r['greeted']))
        print(f"{r['server']:16} idle    greeted={r['greeted']} dead={r['dead']} rss_per_conn_kib={per:.2f}")
floor = med('floor', 'churn', 'rate')
for s in servers:
    c = med(s, 'churn', 'rate')
    if not c or s.startswith('floor') or s.startswith('bare'):
        continue
    base = 'bare-tokio' if s.startswith('tokio') else 'bare-async-std'
    b = med(base, 'churn', 'rate')
    if b and floor:
        print(f"{s:16} churn ratio vs {base} = {c[0] / b[0]:.2f}x (vs C floor {c[0] / floor[0]:.2f}x)")
def parts(spec):
    w = spec.split(':')
    return w[0], w[1] if len(w) > 1 else '', w[2:]
for s in servers:
    rt, shards, variant = parts(s)
    if shards != '2' or s.startswith(('floor', 'bare')):
        continue
    one = ':'.join([rt, '1'] + variant)
    f1, f2 = med(one, 'fanout', 'msgs_per_s'), med(s, 'fanout', 'msgs_per_s')
    c1, c2 = med(one, 'churn', 'rate'), med(s, 'churn', 'rate')
    if f1 and f2:
        print(f"{s:16} 2 shards / 1 shard: fan-out {f2[0] / f1[0]:.2f}x")
    if c1 and c2:
        print(f"{s:16} 2 shards / 1 shard: churn {c2[0] / c1[0]:.2f}x")
# What any server can gain from a second thread here: the C floor's echo on
# 2 threads against 1, beside the load client on the same cores.
t1, t2 = med('floor-threads:1', 'churn', 'rate'), med('floor-threads:2', 'churn', 'rate')
if t1 and t2:
    print(f"{'floor-threads:2':16} 2 threads / 1 thread: churn {t2[0] / t1[0]:.2f}x (the C floor's ceiling here)")
# Variants against the same spec without them, e.g. smol:1:record vs smol:1.
for s in servers:
    rt, shards, variant = parts(s)
    for v in variant:
        base = ':'.join([rt, shards] + [x for x in variant if x != v])
        for bench, key in [('churn', 'rate'), ('fanout', 'msgs_per_s')]:
            a, b = med(s, bench, key), med(base, bench, key)
            if a and b:
                print(f"{s:16} {bench} with {v} / without = {a[0] / b[0]:.2f}x (vs {base})")
            # The same, pair by pair: both specs of one round ran seconds
            # apart, so a round's ratio is spared the drift between rounds.
            # For `prev` the ratio is turned round: this binary / the previous.
            by_round = lambda spec: {r['round']: float(r[key]) for r in rows
                                     if r.get('server') == spec and r.get('bench') == bench and key in r}
            va, vb = by_round(s), by_round(base)
            ratios = [vb[k] / va[k] if v == 'prev' else va[k] / vb[k]
                      for k in sorted(va, key=int) if k in vb and va[k] and vb[k]]
            if ratios:
                what = f"{base} / {s}" if v == 'prev' else f"{s} / {base}"
                print(f"{s:16} {bench} {what} by round: median {statistics.median(ratios):.2f}x "
                      f"[{' '.join(f'{x:.2f}' for x in ratios)}]")
PY
