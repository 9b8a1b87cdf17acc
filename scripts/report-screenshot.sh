#!/usr/bin/env bash
# Renders a Parmanu report in headless Chromium (Debian's `chromium` package) to a PNG, to look at.
#   scripts/report-screenshot.sh report.html shot.png [WIDTH,HEIGHT]
# The same flags as test/gitops/report-screenshot.test.ts: no network of any kind, a fresh profile.
set -euo pipefail
in="${1:-report.html}"; out="${2:-report.png}"; size="${3:-1280,1600}"
command -v chromium >/dev/null || { echo "needs chromium: apt-get install -y chromium" >&2; exit 2; }
profile="$(mktemp -d)"; trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size="$size" --screenshot="$out" "file://$(realpath "$in")" >/dev/null 2>&1
echo "$out"
