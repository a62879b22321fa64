#!/usr/bin/env bash
# Instructions per connection of `tether serve` under churn, counted by
# callgrind: repeatable on a busy machine (it counts instructions, not
# seconds), so a change that wall-clock churn cannot resolve from noise can
# still be compared binary against binary.
#
#   bench/churn_instructions.sh [--secs S] BINARY[:RUNTIME:SHARDS] ...
#   e.g. bench/churn_instructions.sh target/release/tether:tokio:2 /tmp/old/tether:tokio:2
#
# For each binary: the server runs under `valgrind --tool=callgrind`, `pc
# churn` (4 client threads, 10 connections each, S seconds, default 8) runs
# against it, then SIGTERM. Prints the instructions of the whole run, the
# connections served and their quotient (start-up and shutdown, a few
# million instructions, are included: compare runs of equal length). The
# callgrind profiles stay in target/churn-instructions/ for
# `callgrind_annotate`. Needs `pc`, built by bench/loadgen.sh (or PC=path).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=8
if [ "${1:-}" = "--secs" ]; then SECS=$2; shift 2; fi
[ $# -ge 1 ] || { sed -n 2,16p "$0"; exit 2; }
PC=${PC:-target/loadgen/pc}
[ -x "$PC" ] || { echo "no $PC: run bench/loadgen.sh --quick once, or set PC" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 2; }
OUT=target/churn-instructions
mkdir -p "$OUT"
PORT=${CHURN_PORT:-21000}

for spec in "$@"; do
  IFS=: read -r bin runtime shards <<<"$spec"
  runtime=${runtime:-tokio}
  shards=${shards:-2}
  PORT=$((PORT + 2))
  profile="$OUT/$(basename "$(dirname "$bin")")-$runtime-$shards-$PORT.callgrind"
  rm -f "$profile"*
  TETHER_WEB=off valgrind --tool=callgrind --callgrind-out-file="$profile" "$bin" serve \
    --runtime "$runtime" --shards "$shards" --listen "127.0.0.1:$PORT" \
    --admin "127.0.0.1:$((PORT + 1))" --max-channels 20000 --queue-limit 1m \
    >"$profile.log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  result=$("$PC" churn "$PORT" "$SECS" 4 10)
  kill -TERM "$server"
  wait "$server" || true
  ok=$(grep -oE '^ok=[0-9]+' <<<"$result" | cut -d= -f2)
  # One `totals:` line per profile part (callgrind may split by thread).
  instructions=$(cat "$profile"* 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}')
  echo "spec=$spec uptime=\"$(uptime)\" instructions=$instructions connections=$ok per_connection=$((instructions / (ok > 0 ? ok : 1)))"
done
