#!/usr/bin/env bash
# Side-by-side loopback figures for the WebSocket transport of `tether
# serve --web` (issue 19, item 5), all in ONE run, interleaved per round:
#
#   fan-out   WebSocket clients (bench/wsload `fanout`) against TCP-line
#             clients (../shared/loadgen `pc fanout`) on the same server:
#             1,000 clients, client 0 sends 1,000 lines of 64 B, every
#             client (the sender too) reads every line. Target >= 0.7x.
#   churn     connect, upgrade, greeting, one line, own reply, close
#             (`wsload churn`, 4 threads) against the bare tungstenite echo
#             server (`ws-echo`, one mio loop per shard) doing the same
#             cycle. Target >= 0.95x. The TCP-line churn of the same server
#             (`pc churn`) is recorded beside it for reference.
#   idle      10,000 upgraded WebSocket connections held open: the server's
#             VmRSS before and after, per connection (target <= 4 KiB),
#             and the same for 10,000 TCP-line connections (`pc idle`).
#
#   bench/web.sh [--repeat N] [--quick] [--benches fanout,churn,idle]
#                [runtime:shards ...]          (default: tokio:1 tokio:2)
#
# Prints `uptime` with every figure and waits for load < 1.5 before each
# (bench/load.sh; TETHER_BENCH_ANY_LOAD=1 to override, and do not publish
# such figures). Raw lines: bench/results/<date>-web/results.txt
# (WEB_OUT=DIR for another directory), summary (median [min-max] over the
# rounds) on stdout and in summary.txt. Binaries and server logs go to
# $CARGO_TARGET_DIR/web-bench. WEB_PORT=N for other ports (default 30000,
# below the ephemeral range).
set -euo pipefail
cd "$(dirname "$0")/.."

REPEAT=3
QUICK=0
BENCHES=fanout,churn,idle
SPECS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) REPEAT="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --benches) BENCHES="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) SPECS+=("$1"); shift ;;
  esac
done
[ ${#SPECS[@]} -gt 0 ] || SPECS=(tokio:1 tokio:2)

LG=${LOADGEN:-../shared/loadgen}
TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/web-bench"
OUT=${WEB_OUT:-bench/results/$(date -u +%Y-%m-%d-%H%M)-web}
mkdir -p "$BIN" "$OUT"
RES="$OUT/results.txt"
: > "$RES"

gcc -O2 -pthread -o "$BIN/pc" "$LG/pc.c"
cargo build --release -q -p tether --bin tether
cargo build --release -q -p tether-wsload --bin wsload --bin ws-echo
# Copies: a rebuild during the run cannot swap a binary under a measurement.
for b in tether wsload ws-echo; do cp "$TARGET/release/$b" "$BIN/$b"; done
PC="$BIN/pc"; WSLOAD="$BIN/wsload"

CHURN_SECS=5; FAN_CLIENTS=1000; FAN_LINES=1000; IDLE=10000
if [ "$QUICK" = 1 ]; then CHURN_SECS=2; FAN_CLIENTS=200; FAN_LINES=200; IDLE=1000; fi

ulimit -n 20000 2>/dev/null || true

# shellcheck source=bench/load.sh
. bench/load.sh

wants() { [[ ",$BENCHES," == *",$1,"* ]]; }

record() { # fields...
  echo "$*" | tee -a "$RES"
}

PORT=${WEB_PORT:-30000}
next_port() { PORT=$((PORT + 10)); }

# tether serve: TCP lines on $PORT, the console on +1, WebSocket on +2.
start_tether() { # spec
  local rt=${1%%:*} shards=${1#*:}
  "$BIN/tether" serve --runtime "$rt" --shards "$shards" --listen "127.0.0.1:$PORT" \
    --admin "127.0.0.1:$((PORT + 1))" --web "127.0.0.1:$((PORT + 2))" \
    --max-channels 20000 --queue-limit 1m >"$BIN/server-${1//:/-}.log" 2>&1 &
  SRV=$!
  wait_port "$PORT"
  wait_port "$((PORT + 2))"
}

stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# One measurement, recorded with the uptime taken just before it.
measure() { # server bench command...
  local server=$1 bench=$2 up
  shift 2
  up=$(uptime)
  record "round=$round server=$server bench=$bench uptime=\"$up\" $("$@" | tr '\n' ' ')"
}

for round in $(seq 1 "$REPEAT"); do
  echo "== round $round"
  if wants churn; then
    # The bare echo with as many loops as the spec has shards.
    for threads in $(printf '%s\n' "${SPECS[@]}" | sed 's/.*://' | sort -un); do
      load_ok; next_port
      "$BIN/ws-echo" "127.0.0.1:$PORT" "$threads" >"$BIN/ws-echo.log" 2>&1 & E=$!
      wait_port "$PORT"
      measure "bare-ws:$threads" churn-ws "$WSLOAD" churn "$PORT" "$CHURN_SECS" 4 10
      stop $E
    done
  fi
  for spec in "${SPECS[@]}"; do
    if wants churn; then
      load_ok; next_port; start_tether "$spec"
      measure "$spec" churn-ws "$WSLOAD" churn "$((PORT + 2))" "$CHURN_SECS" 4 10
      stop $SRV
      load_ok; next_port; start_tether "$spec"
      measure "$spec" churn-tcp "$PC" churn "$PORT" "$CHURN_SECS" 4 10
      stop $SRV
    fi
    if wants fanout; then
      # A fresh server for each: neither run inherits the other's state.
      load_ok; next_port; start_tether "$spec"
      measure "$spec" fanout-tcp "$PC" fanout "$PORT" "$FAN_CLIENTS" "$FAN_LINES" 64 $SRV
      stop $SRV
      load_ok; next_port; start_tether "$spec"
      measure "$spec" fanout-ws "$WSLOAD" fanout "$((PORT + 2))" "$FAN_CLIENTS" "$FAN_LINES" 64 $SRV
      stop $SRV
    fi
    if wants idle; then
      load_ok; next_port; start_tether "$spec"
      measure "$spec" idle-tcp "$PC" idle "$PORT" "$IDLE" 8 20 $SRV
      stop $SRV
      load_ok; next_port; start_tether "$spec"
      measure "$spec" idle-ws "$WSLOAD" idle "$((PORT + 2))" "$IDLE" 1 $SRV 8 20
      stop $SRV
    fi
  done
done

echo
echo "== summary (median [min-max] over rounds; raw lines in $RES)"
python3 - "$RES" <<'PY' | tee "$OUT/summary.txt"
import os, re, statistics, sys
sys.path.insert(0, 'bench')
from results import kept_rows, load  # the load rule, written once
rows = kept_rows(sys.argv[1])
def idle_per_conn(r):
    if 'rss_after_kb' not in r or int(r.get('greeted', 0)) == 0:
        return None
    return (float(r['rss_after_kb']) - float(r['rss_before_kb'])) / int(r['greeted'])
def value(r, key):
    if key == 'rss_per_conn_kib':
        return idle_per_conn(r)
    return float(r[key]) if key in r else None
def per_round(server, bench, key):
    return {r['round']: v for r in rows if r['server'] == server and r['bench'] == bench
            for v in [value(r, key)] if v is not None}
def fmt(vals, unit=''):
    v = sorted(vals)
    return f"{statistics.median(v):,.2f}{unit} [{v[0]:,.2f}-{v[-1]:,.2f}] (n={len(v)})"
servers = sorted({r['server'] for r in rows})
for s in servers:
    for bench, key in [('churn-ws', 'rate'), ('churn-tcp', 'rate'), ('fanout-ws', 'msgs_per_s'),
                       ('fanout-tcp', 'msgs_per_s'), ('fanout-ws', 'cpu_us_per_msg'),
                       ('fanout-tcp', 'cpu_us_per_msg'), ('idle-ws', 'rss_per_conn_kib'),
                       ('idle-tcp', 'rss_per_conn_kib')]:
        v = per_round(s, bench, key)
        if v:
            print(f"{s:12} {bench:10} {key:17} {fmt(v.values())}")
# Ratios: of the medians, and [min-max] of the same-round ratios.
def ratio(label, a, b, target, better):
    if not a or not b:
        return
    rounds = [a[k] / b[k] for k in a if k in b and b[k]]
    m = statistics.median(a.values()) / statistics.median(b.values())
    ok = m >= target if better == 'higher' else m <= target
    span = f" [{min(rounds):.2f}-{max(rounds):.2f} per round]" if rounds else ""
    print(f"{label:60} {m:.2f}x{span} target {'>=' if better == 'higher' else '<='} {target} {'MET' if ok else 'MISSED'}")
print()
for s in servers:
    if s.startswith('bare'):
        continue
    shards = s.split(':')[1] if ':' in s else '1'
    ratio(f"{s}: WebSocket fan-out / TCP-line fan-out (msgs/s)",
          per_round(s, 'fanout-ws', 'msgs_per_s'), per_round(s, 'fanout-tcp', 'msgs_per_s'), 0.7, 'higher')
    ratio(f"{s}: WebSocket churn / bare-ws:{shards} (conn/s)",
          per_round(s, 'churn-ws', 'rate'), per_round(f"bare-ws:{shards}", 'churn-ws', 'rate'), 0.95, 'higher')
    ws = per_round(s, 'idle-ws', 'rss_per_conn_kib')
    if ws:
        v = sorted(ws.values())
        tcp = per_round(s, 'idle-tcp', 'rss_per_conn_kib')
        beside = f" (TCP line: {statistics.median(tcp.values()):.2f} KiB)" if tcp else ""
        verdict = 'MET' if statistics.median(v) <= 4 else 'MISSED'
        print(f"{s + ': idle memory per WebSocket connection (KiB)':60} {statistics.median(v):.2f} [{v[0]:.2f}-{v[-1]:.2f}]{beside} target <= 4 {verdict}")
PY
