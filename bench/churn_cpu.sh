#!/usr/bin/env bash
# Where the CPU goes during `pc churn`: the server's CPU (utime+stime from
# /proc/PID/stat), the load client's (its rusage), and the machine's idle
# share (/proc/stat), over one 5 s churn with 4 client threads — to see
# whether a second shard has a core to run on at all.
#
#   bench/churn_cpu.sh [spec ...]     (after bench/loadgen.sh has built target/loadgen)
#   spec: floor-threads:N, or runtime:shards[:echo] of tether serve
#   default: floor-threads:1 floor-threads:2 tokio:1:echo tokio:2:echo smol:1:echo smol:2:echo
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${LOADGEN_OUT:-target/loadgen}
PORT=${LOADGEN_PORT:-31500}
[ $# -gt 0 ] || set -- floor-threads:1 floor-threads:2 tokio:1:echo tokio:2:echo smol:1:echo smol:2:echo
ulimit -n 20000 2>/dev/null || true
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8, $5}' /proc/stat; }
hz=$(getconf CLK_TCK)
# shellcheck source=bench/load.sh
. bench/load.sh
for spec in "$@"; do
  PORT=$((PORT + 10))
  IFS=: read -ra w <<<"$spec"
  if [ "${w[0]}" = floor-threads ]; then
    "$OUT/floor-threads" "$PORT" "${w[1]}" & S=$!
  else
    flags=(); [ "${w[2]:-}" = echo ] && flags=(--echo)
    "$OUT/tether" serve --runtime "${w[0]}" --shards "${w[1]}" --listen "127.0.0.1:$PORT" \
      --admin "127.0.0.1:$((PORT + 1))" --max-channels 20000 --queue-limit 1m "${flags[@]}" >/dev/null 2>&1 & S=$!
  fi
  sleep 1
  load_ok
  up=$(uptime)
  s0=$(ticks $S); read -r t0 i0 < <(cpu)
  # `times` prints the shell's children's user and system time: the client's.
  out=$( { "$OUT/pc" churn "$PORT" 5 4 10; times; } 2>&1 )
  s1=$(ticks $S); read -r t1 i1 < <(cpu)
  kill $S; wait $S 2>/dev/null || true
  client=$(echo "$out" | tail -1 | awk '{gsub(/[ms]/," "); print ($1*60+$2) + ($3*60+$4)}')
  rate=$(echo "$out" | grep -o 'rate=[0-9.]*' | cut -d= -f2)
  awk -v spec="$spec" -v rate="$rate" -v s=$((s1 - s0)) -v hz="$hz" -v c="$client" \
      -v idle=$((i1 - i0)) -v total=$((t1 - t0)) -v up="$up" 'BEGIN {
    printf "%-16s rate=%s server_cores=%.2f client_cores=%.2f idle_of_2_cores=%.0f%% uptime=\"%s\"\n",
      spec, rate, s / hz / 5, c / 5, 100 * idle / total, up }'
  sleep 1
done
