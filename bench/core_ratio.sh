#!/usr/bin/env bash
# The `lifecycle/full` / `churn/slotmap` ratio of the core benches, taken
# from N separate criterion runs (each measures both, in one process) with
# `uptime` before each, then the median, minimum and maximum of the N
# ratios.
#
# Why more than criterion's own figure: on a shared VM the time of the
# lifecycle (compute-bound, ~3.3 instructions per cycle) swings between
# ~230 and ~460 ns in phases of a few hundred milliseconds inside one
# process, while slotmap churn (bound by cache misses) moves by ~10%; so
# one run's ratio of criterion's means moves by half. Each run therefore
# also gives the ratio of the two benches' fastest samples (criterion's
# 100 samples per bench, each thousands of iterations: time / iterations),
# the estimator least disturbed by noise for deterministic code (Chen &
# Revels, "Robust benchmarking in noisy environments", 2016), and of their
# 10th percentiles. The issue's bar (lifecycle/full ≤ 25× slotmap churn)
# is read off the medians over the runs.
#
#   bench/core_ratio.sh [RUNS] [MEASUREMENT_SECS]    (defaults 15 and 2)
#
# Prints one line per run (`uptime`; criterion's estimates in ns and their
# ratio; the fastest-sample and 10th-percentile ratios) and a summary; the
# raw criterion output and samples stay in target/core-ratio/.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-15}
SECS=${2:-2}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$TARGET/core-ratio
mkdir -p "$OUT"
cargo bench -q -p tether-core --bench lifecycle --no-run >/dev/null 2>&1

ratios=()
fasts=()
p10s=()
for i in $(seq "$RUNS"); do
  load=$(uptime | sed 's/.*load average: //')
  log="$OUT/run-$i.txt"
  cargo bench -q -p tether-core --bench lifecycle -- --warm-up-time 1 \
    --measurement-time "$SECS" "churn/slotmap|lifecycle/full" >"$log" 2>&1
  # criterion's middle estimate, converted to ns.
  est() {
    awk -v name="$1" '$1 == name && /time:/ {
      v = $5; u = $6
      if (u == "ps") v /= 1000; else if (u == "µs" || u == "us") v *= 1000; else if (u == "ms") v *= 1e6
      print v
    }' "$log"
  }
  slotmap=$(est churn/slotmap)
  full=$(est lifecycle/full)
  [ -n "$slotmap" ] && [ -n "$full" ] || { echo "run $i: no estimate, see $log" >&2; exit 1; }
  ratio=$(awk -v a="$full" -v b="$slotmap" 'BEGIN { printf "%.1f", a / b }')
  cp "$TARGET"/criterion/churn/slotmap/new/sample.json "$OUT/run-$i-slotmap.json"
  cp "$TARGET"/criterion/lifecycle/full/new/sample.json "$OUT/run-$i-full.json"
  read -r fast p10 < <(python3 - "$OUT/run-$i-slotmap.json" "$OUT/run-$i-full.json" <<'PY'
import json, sys
def per_iter(path):
    d = json.load(open(path))
    return sorted(t / n for t, n in zip(d["times"], d["iters"]))
s, f = per_iter(sys.argv[1]), per_iter(sys.argv[2])
p10 = lambda v: v[len(v) // 10]
print("%.1f %.1f" % (f[0] / s[0], p10(f) / p10(s)))
PY
)
  ratios+=("$ratio")
  fasts+=("$fast")
  p10s+=("$p10")
  echo "run $i  load $load  slotmap ${slotmap} ns  lifecycle/full ${full} ns  ratio ${ratio}x  fastest ${fast}x  p10 ${p10}x"
done

summary() {
  printf '%s\n' "${@:2}" | sort -n | awk -v what="$1" '
    { r[NR] = $1 }
    END {
      m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
      printf "%-28s runs %d  median %.1fx  min %.1fx  max %.1fx\n", what, NR, m, r[1], r[NR]
    }'
}
summary "criterion estimates" "${ratios[@]}"
summary "fastest samples" "${fasts[@]}"
summary "10th-percentile samples" "${p10s[@]}"
