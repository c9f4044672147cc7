#!/usr/bin/env bash
# The newcomer's main job: a simulated plant, a local broker, the agent and a live verified view.
# Arguments go to `edge-sim demo`, e.g. `bash scripts/demo.sh --duration 20`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
export PATH="$PATH:/usr/sbin"
if ! command -v mosquitto >/dev/null && ! .venv/bin/python -c 'import amqtt' 2>/dev/null; then
  echo "demo: Mosquitto not found; installing the pure-Python demo broker (amqtt)" >&2
  .venv/bin/python -m pip install -q -e ".[demo]"
fi
exec .venv/bin/edge-sim demo "$@"
