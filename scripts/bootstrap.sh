#!/usr/bin/env bash
# Make ./.venv with the agent and its test tools installed. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  command -v apt-get >/dev/null || { echo "bootstrap: please install: $*" >&2; return 1; }
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: Python 3.11 or newer is required (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv 2>/dev/null || { apt_install python3-venv && rm -rf .venv && "$PYTHON" -m venv .venv; }
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  # pip and setuptools narrate (deprecation banners, build steps): keep that in a log, show it on failure.
  echo "bootstrap: installing the agent and its test tools into .venv (log: .venv/install.log)" >&2
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e ".[test]"; } \
      > .venv/install.log 2>&1; then
    tail -n 30 .venv/install.log >&2
    echo "bootstrap: installation failed; the whole log is .venv/install.log" >&2
    exit 1
  fi
  touch "$stamp"
fi
