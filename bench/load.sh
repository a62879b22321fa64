# Sourced by the bench scripts: measure only at load average < 1.5.
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
