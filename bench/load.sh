# Sourced by the bench scripts: measure only at load average < 1.5, and the
# helpers they share (wait_port, kick_summary).
# load_ok waits (up to 5 minutes) until the 1-minute load is below 1.5;
# TETHER_BENCH_ANY_LOAD=1 skips the wait (and such figures are not to be
# published: bench/loadgen.sh's summary marks them INDICATIVE).
load_ok() {
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  if [ "${TETHER_BENCH_ANY_LOAD:-0}" != 1 ] && awk -v l="$load" 'BEGIN{exit !(l >= 1.5)}'; then
    echo "load average $load >= 1.5: waiting (TETHER_BENCH_ANY_LOAD=1 to override)" >&2
    for _ in $(seq 1 60); do
      sleep 5
      load=$(cut -d' ' -f1 /proc/loadavg)
      awk -v l="$load" 'BEGIN{exit !(l < 1.5)}' && break
    done
  fi
}

# Waits (up to 10 s) until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  return 1
}

# p50/p99/max of `pc kick` output (stdin): one kick -> EOF time per line.
kick_summary() { # stdin: pc kick output
  awk '!/^#/ && $3 == 0 { print $2 }' | sort -n | awk '{a[NR]=$1} END {
    if (NR == 0) { print "n=0"; exit }
    printf "n=%d p50_us=%.1f p99_us=%.1f max_us=%.1f\n", NR, a[int(NR*0.5)+1], a[int(NR*0.99) < NR ? int(NR*0.99)+1 : NR], a[NR] }'
}
