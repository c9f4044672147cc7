#!/usr/bin/env bash
# The project's test command: installs what it needs, then runs the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k modbus -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)  # a real broker
command -v chromium >/dev/null || missing+=(chromium)  # the board's page is tested in a headless browser
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: installing ${missing[*]} (integration tests use them)" >&2
  apt_install "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"
exec .venv/bin/python -m pytest "$@"
