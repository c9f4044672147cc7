"""One read of the package state by a backend: the part of the patches collector that runs in
the scan child (agent.collectors.patches.isolated).

Kept to the standard library and the backend modules, so the child starts in a fraction of
what importing the daemon's modules (pydantic and the config models) would cost it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from agent.collectors.patches import apt, dnf
from agent.collectors.patches.common import Update

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scan:
    backend: str
    updates: list[Update]
    error: str | None
    scanned_ms: int
    dnf_metadata_ms: int | None = None
    dnf_reboot: bool | None = None


def scan(backend: str, root: Path, now_ms: int) -> Scan:
    try:
        if backend == "python-apt":
            module = apt.import_apt_pkg()
            if module is None:
                raise RuntimeError("python3-apt is not importable from this Python")
            return Scan(backend, apt.scan_python_apt(module, root), None, now_ms)
        if backend == "apt-get":
            return Scan(backend, apt.scan_apt_get(root), None, now_ms)
        if backend == "dnf":
            result = dnf.scan_dnf(root)
            return Scan(backend, result.updates, None, now_ms, result.metadata_checked_ms, result.reboot_required)
        return Scan(backend, [], "no supported package manager found (neither dpkg nor dnf)", now_ms)
    except (OSError, RuntimeError, ValueError, SystemError) as exc:
        log.warning("package scan failed backend=%s root=%s error=%s", backend, root, exc)
        return Scan(backend, [], f"{type(exc).__name__}: {exc}", now_ms)
