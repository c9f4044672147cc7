#!/usr/bin/env bash
# The project's test command: installs what it needs, then runs the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k modbus -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)  # a real broker
command -v chromium >/dev/null || missing+=(chromium)  # the board's page is tested in a headless browser
# config/prometheus/: promtool checks and unit-tests the alert rules; a real Prometheus scrapes a board.
command -v promtool >/dev/null || [ -x /usr/bin/promtool ] || missing+=(prometheus)
# config/nginx-board.conf: a real nginx terminates TLS in front of the board.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
listening() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
# The fleet store is tested against a real PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth).
installed_postgres=no
if ! listening && ! command -v pg_ctlcluster >/dev/null; then
  missing+=(postgresql)
  installed_postgres=yes
fi
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
if ! listening; then
  version=$(ls /etc/postgresql | sort -n | tail -n 1)
  if [ "$installed_postgres" = yes ]; then
    # A server we just installed for the tests: local TCP connections need no password.
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "/etc/postgresql/$version/main/pg_hba.conf"
  fi
  echo "test: starting PostgreSQL $version (fleet store tests)" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 50); do listening && break; sleep 0.2; done
fi
export PATH="$PATH:/usr/sbin"
# Most integration tests wait on brokers, timers and child processes rather than compute, so
# three workers finish the suite in about half the time even on two cores. TEST_WORKERS=0 runs
# everything in this one process (e.g. to use a debugger).
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-3}" "$@"
