"""Patch status: pending and security updates, index freshness, reboot state, SLA windows.

`build(config, *, root)` returns the collector the daemon schedules and `edge-agent collect
patches` runs once. Package state is re-read only when dpkg status, the apt lists or the dnf
cache changed, or after `rescan_interval`; the cheap file facts are read every cycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.collectors.base import BlockingCollector
from agent.collectors.patches import apt, deb822, dnf, system
from agent.collectors.patches.common import FirstSeen, updates_body
from agent.collectors.patches.config import PatchesConfig
from agent.collectors.patches.isolated import ChildScans
from agent.collectors.patches.scan import Scan
from agent.core.reading import Priority, Reading
from agent.readiness.maintenance import MaintenanceConfig, schedule

if TYPE_CHECKING:
    from agent.config import Config

log = logging.getLogger(__name__)

SCHEMA = 1
_WATCHED = ("var/lib/dpkg/status", "var/lib/apt/lists", "etc/apt/preferences.d", "var/cache/dnf", "var/lib/rpm")


def change_signature(root: Path) -> tuple[float, ...]:
    """mtimes that move when the installed set or the package indexes change."""
    marks = []
    for rel in _WATCHED:
        try:
            marks.append((root / rel).stat().st_mtime)
        except OSError:
            marks.append(0.0)
    return tuple(marks)


def choose_backend(setting: str, root: Path) -> str:
    if setting != "auto":
        return setting
    if (root / "var/lib/dpkg/status").exists():
        return "python-apt" if apt.python_apt_available() else "apt-get"
    ids = system.os_release(root)
    if {"rhel", "fedora", "centos"} & set((ids.get("ID", "") + " " + ids.get("ID_LIKE", "")).split()):
        return "dnf"
    return "none"


@dataclass(frozen=True)
class PackageFacts:
    """What changes only with the package database, read once per scan instead of every cycle:
    the scan, dpkg's status file (parsing it was most of a cycle's cost), the lists' Release
    files, the install logs, and the package part of the body (first-seen times settle at the scan)."""

    scan: Scan
    kernels: dict[str, str]
    unattended_upgrades: bool | None  # installed; None off dpkg systems
    releases: list[deb822.Release]
    last_install_ms: int | None
    packages: dict[str, Any]


def read_facts(scan_result: Scan, root: Path, first_seen: FirstSeen, now_ms: int) -> PackageFacts:
    is_apt = scan_result.backend in ("python-apt", "apt-get")
    installed = system.installed_packages(root) if is_apt else None
    security = [u.package for u in scan_result.updates if u.security_version is not None]
    seen = first_seen.update(security, now_ms) if scan_result.error is None else first_seen.times
    return PackageFacts(
        scan=scan_result,
        kernels=system.installed_kernels(root, installed),
        unattended_upgrades=None if installed is None else "unattended-upgrades" in installed,
        releases=deb822.read_releases(root / "var/lib/apt/lists") if scan_result.backend != "dnf" else [],
        last_install_ms=system.last_install_ms(root),
        packages=updates_body(scan_result.updates, {**{name: now_ms for name in security}, **seen}),
    )


def build_body(
    *, facts: PackageFacts, root: Path, config: PatchesConfig, maintenance: MaintenanceConfig, now: datetime
) -> dict[str, Any]:
    """The patches reading body: see docs/patches.md for every field."""
    now_ms = int(now.timestamp() * 1000)
    scan_result = facts.scan
    if scan_result.backend == "dnf":
        freshness = dnf.dnf_freshness(scan_result.dnf_metadata_ms, now_ms, config.stale_after)
    else:
        freshness = system.apt_freshness(root, facts.releases, now_ms, config.stale_after)
    reboot = system.reboot_state(root, facts.kernels)
    if scan_result.backend == "dnf":
        reboot["required"] = scan_result.dnf_reboot
    status = freshness["status"] if scan_result.error is None else "unknown"
    flags = [reboot["required"], reboot["kernel_pending"]]
    ids = system.os_release(root)
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "status": status,
        "status_reasons": ([scan_result.error] if scan_result.error else []) + freshness["stale_reasons"],
        "backend": scan_result.backend,
        "os": {"id": ids.get("ID", ""), "version_id": ids.get("VERSION_ID", ""), "pretty_name": ids.get("PRETTY_NAME", "")},
        "scanned_ms": scan_result.scanned_ms,
        **facts.packages,
        "freshness": {k: v for k, v in freshness.items() if k not in ("status", "stale_reasons")},
        # the kernel comparison can only add a reason; not knowing it does not hide the flag's answer
        "reboot_required": True if True in flags else (None if reboot["required"] is None else False),
        "reboot": reboot,
        "last_install_ms": facts.last_install_ms,
        "auto_updates": system.auto_updates(root, facts.unattended_upgrades),
    }
    body.update(schedule(maintenance, facts.packages["security_updates"], now))
    return body


class PatchesCollector(BlockingCollector):
    """Publishes one `patches` reading per interval; rescans packages only when they changed."""

    name = "patches"

    def __init__(
        self,
        config: PatchesConfig,
        maintenance: MaintenanceConfig,
        root: Path,
        state_dir: Path | None,
        clock: Callable[[], float] = time.time,
        scanner: Callable[[str, Path, int], Scan] | None = None,
    ):
        self.config = config
        self.maintenance = maintenance
        self.root = root.resolve()  # apt treats a relative Dir= as relative to its own defaults
        self.interval = config.interval
        self.clock = clock
        self.backend = choose_backend(config.backend, root)
        self.first_seen = FirstSeen(None if state_dir is None else state_dir / "patches-first-seen.json")
        self._last: tuple[tuple[float, ...], float, PackageFacts] | None = None
        self.child_scans = ChildScans()
        self.scanner = scanner or self.child_scans

    def read(self) -> list[Reading]:
        now = self.clock()
        signature = change_signature(self.root)
        if (
            self._last is None
            or self._last[0] != signature
            or now - self._last[1] >= self.config.rescan_interval
            or self._last[2].scan.error is not None
        ):
            started = time.monotonic()
            result = self.scanner(self.backend, self.root, int(now * 1000))
            self._last = (signature, now, read_facts(result, self.root, self.first_seen, int(now * 1000)))
            seconds = time.monotonic() - started
            if result.error is None:
                log.info("package scan backend=%s updates=%d seconds=%.2f", self.backend, len(result.updates), seconds)
            else:  # the body says so too (status unknown, the reason); the log must not read as "0 updates"
                log.warning("package scan failed backend=%s error=%s seconds=%.2f", self.backend, result.error, seconds)
        moment = datetime.fromtimestamp(now, timezone.utc)
        body = build_body(facts=self._last[2], root=self.root, config=self.config, maintenance=self.maintenance,
                          now=moment)
        return [Reading(kind="patches", body=body, priority=Priority.SECURITY, retain=True, ts_ms=int(now * 1000))]

    async def close(self) -> None:
        self.child_scans.stop()  # the daemon is stopping: a scan in progress must not hold it


def build(config: Config, *, root: Path = Path("/")) -> list[PatchesCollector]:
    patches = config.collectors.patches
    return [PatchesCollector(patches, config.maintenance, Path(root), config.state_dir)] if patches.enabled else []
