#!/usr/bin/env bash
# Render a karuku report in headless Chromium (Debian's chromium package) and save a screenshot.
#   scripts/render_report.sh runs/<run>/report.html [out.png]
# Needs: apt-get install chromium fonts-noto-cjk (the CJK fonts for --lang ja reports).
set -euo pipefail
html=$(realpath "$1")
png=${2:-${html%.html}.png}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size=1100,2600 --screenshot="$png" "file://$html" >/dev/null 2>&1
test -s "$png"
echo "$png"
