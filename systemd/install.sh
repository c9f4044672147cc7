#!/bin/sh
# Install or upgrade the edge agent as a hardened systemd service. Idempotent: run it again
# after `git pull` to upgrade; it never replaces an existing config or key.
#
#   sudo systemd/install.sh [--no-start]
#
# Puts: the agent in a venv at /opt/edge-agent/venv (with system site packages, so Debian's
# python3-apt is importable), the unit in /etc/systemd/system, config/agent.toml in
# /etc/edge-agent (if none is there), a signing key in /var/lib/edge-agent (if none), a
# dedicated system user `edge-agent` in group dialout (serial Modbus), and `edge-agent` on
# PATH (a symlink in /usr/local/bin). It writes nothing into this checkout.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/edge-agent
CONF_DIR=/etc/edge-agent
STATE_DIR=/var/lib/edge-agent
KEY="$STATE_DIR/node.key"
USER_NAME=edge-agent
# The bare `edge-agent` that README and docs use.
BIN_LINK=/usr/local/bin/edge-agent
PYTHON=/usr/bin/python3  # Debian's: python3-apt is built for it, not for a python3 on PATH
START=yes
[ "${1:-}" = "--no-start" ] && START=no

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ -x "$PYTHON" ] || { echo "install.sh: $PYTHON is missing (apt-get install python3-venv)" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "install.sh: $PYTHON must be 3.11 or newer" >&2; exit 1; }
"$PYTHON" -c 'import apt_pkg' 2>/dev/null \
    || echo "install.sh: note: python3-apt is not installed; the patch collector falls back to apt-get" >&2

# 1. A system user with no login and no home of its own.
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "edge readiness agent" "$USER_NAME"
fi
getent group dialout >/dev/null && usermod --append --groups dialout "$USER_NAME"

# 2. The code: a fresh venv each time, so an upgrade never mixes versions. A venv cannot be
# moved (its scripts name their interpreter), so `venv` is a symlink swapped atomically.
# pip builds a source folder in place (build/, *.egg-info): build from a copy, so the
# checkout is left as it was (and may be read-only). Offline: PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR.
install -d -m 0755 "$PREFIX" "$PREFIX/docs"
BUILD_COPY=$(mktemp -d)
trap 'rm -rf "$BUILD_COPY"' EXIT
trap 'exit 1' INT TERM
# Two steps, not a pipe: sh has no pipefail, and a failed read must stop the install.
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ -cf "$BUILD_COPY/src.tar" .
mkdir "$BUILD_COPY/src"
tar -C "$BUILD_COPY/src" -xf "$BUILD_COPY/src.tar"
NEW_VENV="$PREFIX/venv-$(date +%Y%m%d%H%M%S)-$$"
"$PYTHON" -m venv --system-site-packages "$NEW_VENV"
"$NEW_VENV/bin/pip" install --quiet --disable-pip-version-check "$BUILD_COPY/src"
[ -d "$PREFIX/venv" ] && [ ! -L "$PREFIX/venv" ] && rm -rf "$PREFIX/venv"
ln -sfn "$(basename "$NEW_VENV")" "$PREFIX/venv.link"
mv -T "$PREFIX/venv.link" "$PREFIX/venv"
for old in "$PREFIX"/venv-*; do
    [ "$old" = "$NEW_VENV" ] || rm -rf "$old"
done
install -m 0644 "$SRC"/docs/*.md "$PREFIX/docs/" 2>/dev/null || true
AGENT="$PREFIX/venv/bin/edge-agent"
install -d -m 0755 "$(dirname "$BIN_LINK")"
ln -sfn "$AGENT" "$BIN_LINK"

# 3. Config (root-owned, readable by the service's group only) and state.
install -d -m 0750 -o root -g "$USER_NAME" "$CONF_DIR"
install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE_DIR"
if [ ! -e "$CONF_DIR/agent.toml" ]; then
    # Its [signing] key_file is $KEY, the key made below.
    install -m 0640 "$SRC/config/agent.toml" "$CONF_DIR/agent.toml"
    echo "install.sh: wrote $CONF_DIR/agent.toml: set node.id and mqtt.url before starting"
    START=no
fi
chown root:"$USER_NAME" "$CONF_DIR/agent.toml"
chmod 0640 "$CONF_DIR/agent.toml"

# 4. The signing key, created as the service user so its mode and owner are right.
if [ ! -e "$KEY" ]; then
    runuser -u "$USER_NAME" -- "$AGENT" keygen --key "$KEY"
    echo "install.sh: on each consumer, file $KEY.pub with: edge-agent trust add <node-id> node.key.pub --trust DIR"
fi

# 5. The unit.
install -m 0644 "$SRC/systemd/edge-agent.service" /etc/systemd/system/edge-agent.service
"$AGENT" check-config --config "$CONF_DIR/agent.toml" || START=no
if [ ! -d /run/systemd/system ]; then  # an image being built, a container: install only
    echo "install.sh: systemd is not running here; enable later with: systemctl enable --now edge-agent"
    exit 0
fi
systemctl daemon-reload
systemctl enable edge-agent.service >/dev/null
if [ "$START" = yes ]; then
    systemctl restart edge-agent.service
    echo "install.sh: edge-agent (re)started; see: systemctl status edge-agent"
else
    echo "install.sh: installed; start with: systemctl start edge-agent"
fi
