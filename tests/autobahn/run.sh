#!/usr/bin/env bash
# Autobahn|TestSuite conformance of tether's WebSocket transport: runs the
# fuzzing client of the `kosoku` package (Autobahn's own case files, driven
# from Python 3, offline) against `tether serve --echo`, whose /ws is then a
# plain echo (no greeting, no id prefix, text and binary echoed as they
# came, messages up to 16 MiB). Fails unless every case of sections 1-10 is
# OK, NON-STRICT or INFORMATIONAL. Sections 12-13 (permessage-deflate,
# which tether declines) are not run: they would be "unimplemented".
#
#   tests/autobahn/run.sh [OUTDIR]      (default: target/autobahn)
#
# Needs python3 with venv; builds the release binary unless TETHER_BIN names
# one. The venv is kept in target/autobahn-venv between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-target/autobahn}
VENV=target/autobahn-venv
if [ ! -x "$VENV/bin/kosoku" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check kosoku
fi
BIN=${TETHER_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin tether
  BIN=target/release/tether
fi
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN" serve --echo --shards 1 --listen 127.0.0.1:0 --admin 127.0.0.1:0 --web 127.0.0.1:0 \
  >"$OUT/server.out" 2>"$OUT/server.err" &
SRV=$!
trap 'kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true' EXIT
ADDR=
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's|^ *web: *http://\([^/]*\)/.*|\1|p' "$OUT/server.out" | head -n 1)
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "autobahn: the server printed no web address" >&2; cat "$OUT/server.err" >&2; exit 1; }
"$VENV/bin/kosoku" -m fuzzingclient "ws://$ADDR/ws" -o "$OUT/report" -x '12.*' -x '13.*' -p 2 \
  >"$OUT/kosoku.log" 2>&1 || true
tail -n 3 "$OUT/kosoku.log"
python3 - "$OUT/report/index.json" <<'PY'
import json, sys
from collections import Counter
index = json.load(open(sys.argv[1]))
cases = next(iter(index.values()))
passing = {"OK", "NON-STRICT", "INFORMATIONAL"}
wanted = {c: r for c, r in cases.items() if 1 <= int(c.split(".")[0]) <= 10}
bad = {c: (r["behavior"], r.get("behaviorClose")) for c, r in wanted.items()
       if r["behavior"] not in passing or r.get("behaviorClose") not in passing}
print("autobahn: sections 1-10:", len(wanted), "cases;",
      dict(Counter(r["behavior"] for r in wanted.values())))
if len(wanted) < 290 or bad:
    print("autobahn: FAILED:", bad or f"only {len(wanted)} cases ran", file=sys.stderr)
    sys.exit(1)
print(f"{len(wanted)} passed, 0 failed")
PY
