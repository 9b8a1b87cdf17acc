#!/usr/bin/env bash
# npm run demo: a busy working day of examples/demo/trace.csv replayed in about a minute.
#
# Parmanu reconciles examples/demo (a replay emitter at speed 600, two pools on the local
# platform: every node is a terraform_data resource) with `reconcile --watch --for`, one line per
# pool and cycle, then writes report.html. The demo keeps everything in its own state directory,
# .parmanu/demo (history, terraform state, the replay's place and runners), removed at the start:
# each run is a fresh day, and nothing outside that directory and report.html is touched (the
# history is the file store there, even when REDIS_URL is set).
#   PARMANU_DEMO_FOR=65s  how long to watch (the day takes about 64 s at speed 600)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v "${PARMANU_TERRAFORM:-terraform}" >/dev/null || { echo "demo: needs terraform (≥ 1.11) on PATH, or PARMANU_TERRAFORM" >&2; exit 2; }
[ -f dist/src/cli/main.js ] || npm run --silent build
state=.parmanu/demo
rm -rf "$state"
mkdir -p "$state"
export PARMANU_STATE_DIR="$state"
unset REDIS_URL
echo "parmanu demo: replaying $(($(wc -l < examples/demo/trace.csv) - 1)) jobs of $(sed -n 2p examples/demo/trace.csv | cut -c1-10) at 600× (state in $state)"
echo "a line per cycle: trace time; per pool: nodes (█), queued (q), running (r); nodes created +, drained ~, destroyed -"
started=$(date +%s)
code=0
# One line per cycle (scripts/demo-lines.mjs); the cycles' logs are kept in $state/reconcile.log.
node bin/parmanu.js reconcile --policy examples/demo --watch --for "${PARMANU_DEMO_FOR:-65s}" --metrics-listen none --json 2>"$state/reconcile.log" | node scripts/demo-lines.mjs "$state" demo || code=$?
node bin/parmanu.js report --policy examples/demo --out report.html
echo "parmanu demo: $(($(date +%s) - started)) s; report.html written (open it in a browser)"
exit "$code"
