#!/usr/bin/env bash
# The project's test command: installs what it needs, then runs the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k modbus -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "test: installing mosquitto (integration tests run a real broker)" >&2
  apt_install mosquitto
fi
export PATH="$PATH:/usr/sbin"
exec .venv/bin/python -m pytest "$@"
