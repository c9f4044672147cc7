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
# The unit under a real systemd (tests/integration/test_systemd_container.py) needs root, a
# Debian root built by debootstrap and systemd-nspawn; without them that test skips.
container_tools=()
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || container_tools+=(debootstrap)
command -v systemd-nspawn >/dev/null || container_tools+=(systemd-container)
if [ ${#container_tools[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "test: installing ${container_tools[*]} (the systemd container test uses them)" >&2
  apt_install "${container_tools[@]}" || echo "test: could not install ${container_tools[*]}: the systemd container test will skip" >&2
fi
export PATH="$PATH:/usr/sbin"
exec .venv/bin/python -m pytest "$@"
