"""Facts about a system root that do not need the package resolver: all read-only file reads.

Freshness of the package lists, reboot flag, running vs newest installed kernel, when packages
were last installed, and whether automatic security updates are switched on.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.collectors.patches import deb822, debversion


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _mtime_ms(path: Path) -> int | None:
    try:
        return int(path.stat().st_mtime * 1000)
    except OSError:
        return None


def os_release(root: Path) -> dict[str, str]:
    text = _read(root / "etc/os-release") or _read(root / "usr/lib/os-release") or ""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip("\"'")
    return out


def installed_packages(root: Path) -> dict[str, deb822.Installed]:
    """dpkg's installed packages (none if the status file is unreadable), read line by line."""
    try:
        with (root / "var/lib/dpkg/status").open(errors="replace") as status:
            return deb822.read_dpkg_status(status)
    except OSError:
        return {}


def apt_freshness(root: Path, releases: list[deb822.Release], now_ms: int, stale_after_s: float) -> dict[str, Any]:
    """When the lists were last refreshed and whether the security index is still current.

    `update-success-stamp` (touched by apt's periodic job after a successful update) is the
    best source. Without it the newest list file or the list dir's mtime is used: list files
    carry the server's modification time, so this is a lower bound of the last update.
    """
    lists = root / "var/lib/apt/lists"
    stamp = _mtime_ms(root / "var/lib/apt/periodic/update-success-stamp")
    source = "update-success-stamp" if stamp is not None else None
    if stamp is None:
        candidates = [m for m in (_mtime_ms(p) for p in lists.glob("*_*")) if m is not None]
        if candidates:
            stamp, source = max(candidates), "lists-mtime"
    security = [r for r in releases if r.is_security]
    dates = [r.date_ms for r in security if r.date_ms is not None]
    valid = [r.valid_until_ms for r in security if r.valid_until_ms is not None]
    security_date = min(dates) if dates else None
    valid_until = min(valid) if valid else None
    unknown, stale = [], []
    if not releases:
        unknown.append("no package lists: apt update never ran or the lists were cleaned")
    elif not security:
        unknown.append("no security archive in the sources: security updates cannot be seen")
    if stamp is None:
        unknown.append("no record of a successful apt update")
    elif now_ms - stamp > stale_after_s * 1000:
        stale.append(f"package lists last updated {(now_ms - stamp) // 86_400_000} days ago")
    if valid_until is not None and valid_until < now_ms:
        stale.append("security index Valid-Until has passed")
    return {
        "last_update_ms": stamp,
        "last_update_source": source,
        "index_age_s": None if stamp is None else max(0, (now_ms - stamp) // 1000),
        "security_index_date_ms": security_date,
        "security_index_age_s": None if security_date is None else max(0, (now_ms - security_date) // 1000),
        "security_index_valid_until_ms": valid_until,
        "security_index_expired": None if valid_until is None else valid_until < now_ms,
        "security_archives": sorted({r.codename or r.suite for r in security}),
        "stale_reasons": unknown + stale,
        "status": "unknown" if unknown else ("stale" if stale else "ok"),
    }


def running_kernel(root: Path) -> str | None:
    if root == Path("/"):
        return os.uname().release
    text = _read(root / "proc/sys/kernel/osrelease")
    return text.strip() if text else None


_KERNEL_PKG = re.compile(r"^linux-image-(?:unsigned-)?(\d+\.\d+\S*)$")


def installed_kernels(root: Path, installed: dict[str, deb822.Installed] | None) -> dict[str, str]:
    """Kernel release -> sortable package version (dpkg), else /lib/modules directory names."""
    if installed is not None:
        found = {}
        for item in installed.values():
            if match := _KERNEL_PKG.match(item.name):
                found[match.group(1)] = item.version
        return found
    modules = root / "lib/modules"
    try:
        return {d.name: d.name for d in modules.iterdir() if (d / "modules.dep").exists() or (d / "vmlinuz").exists()}
    except OSError:
        return {}


def reboot_state(root: Path, kernels: dict[str, str]) -> dict[str, Any]:
    """The reboot flag, and the running kernel against the newest of `installed_kernels`."""
    flag = root / "run/reboot-required"
    required: bool | None = flag.exists()
    packages = sorted(set((_read(root / "run/reboot-required.pkgs") or "").split())) if required else []
    running = running_kernel(root)
    newest = None
    if kernels:
        newest = max(kernels, key=lambda release: (_SortKey(kernels[release]), _SortKey(release)))
    kernel_pending = None if running is None or newest is None else newest != running
    if not (root / "run").is_dir():
        required = None  # a copied disk image has no /run: the flag cannot be known
    return {
        "required": required,
        "flag_packages": packages,
        "running_kernel": running,
        "newest_kernel": newest,
        "kernel_pending": kernel_pending,
        "installed_kernels": sorted(kernels, key=lambda r: _SortKey(kernels[r])),
    }


class _SortKey:
    def __init__(self, version: str):
        self.version = version

    def __lt__(self, other: "_SortKey") -> bool:
        return debversion.compare(self.version, other.version) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SortKey) and debversion.compare(self.version, other.version) == 0


def _local_zone(root: Path) -> ZoneInfo:
    name = (_read(root / "etc/timezone") or "").strip()
    if not name:
        try:
            target = os.readlink(root / "etc/localtime")
            name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
        except OSError:
            name = ""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _tail(path: Path, size: int = 256 * 1024) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


_DPKG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:install|upgrade) ", re.M)
_HISTORY_END = re.compile(r"^End-Date: (\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d)", re.M)


def last_install_ms(root: Path) -> int | None:
    """The last time dpkg installed or upgraded a package (dpkg.log, then apt history)."""
    zone = _local_zone(root)
    for path, pattern in (
        (root / "var/log/dpkg.log", _DPKG_LINE),
        (root / "var/log/dpkg.log.1", _DPKG_LINE),
        (root / "var/log/apt/history.log", _HISTORY_END),
    ):
        stamps = pattern.findall(_tail(path))
        if stamps:
            moment = datetime.strptime(" ".join(stamps[-1].split()), "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
            return int(moment.timestamp() * 1000)
    return None


_APT_SETTING = re.compile(r'^\s*(APT::Periodic::[\w-]+)\s+"([^"]*)"\s*;', re.M)


def unit_enabled(root: Path, unit: str) -> bool:
    """A *.wants/ link exists; links into a copied image dangle, so test the link itself."""
    for base in ("etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"):
        if any(os.path.lexists(wants / unit) for wants in (root / base).glob("*.wants")):
            return True
    return False


def auto_updates(root: Path, unattended_upgrades: bool | None) -> dict[str, Any]:
    """Whether security updates install themselves: unattended-upgrades (`unattended_upgrades`:
    whether dpkg has the package) or dnf-automatic (None: not a dpkg system)."""
    if unattended_upgrades is None:  # RHEL family
        conf = _read(root / "etc/dnf/automatic.conf") or ""
        timer = unit_enabled(root, "dnf-automatic.timer") or unit_enabled(root, "dnf-automatic-install.timer")
        applies = bool(re.search(r"^\s*apply_updates\s*=\s*(yes|true|1)", conf, re.M | re.I))
        security_only = bool(re.search(r"^\s*upgrade_type\s*=\s*security", conf, re.M | re.I))
        enabled = timer and (applies or unit_enabled(root, "dnf-automatic-install.timer"))
        return {
            "enabled": enabled,
            "mechanism": "dnf-automatic",
            "evidence": f"timer_enabled={timer} apply_updates={applies} upgrade_type_security={security_only}",
        }
    settings: dict[str, str] = {}
    conf_dir = root / "etc/apt/apt.conf.d"
    files = [root / "etc/apt/apt.conf", *sorted(conf_dir.glob("*"))] if conf_dir.is_dir() else []
    for path in files:
        for key, value in _APT_SETTING.findall(_read(path) or ""):
            settings[key] = value  # later files win, as in apt
    package = unattended_upgrades
    periodic = settings.get("APT::Periodic::Unattended-Upgrade", "0") not in ("0", "")
    timer = unit_enabled(root, "apt-daily-upgrade.timer")
    has_systemd = (root / "lib/systemd/system").is_dir() or (root / "usr/lib/systemd/system").is_dir()
    enabled = package and periodic and (timer or not has_systemd)
    return {
        "enabled": enabled,
        "mechanism": "unattended-upgrades",
        "evidence": (
            f"package_installed={package} "
            f"APT::Periodic::Unattended-Upgrade={settings.get('APT::Periodic::Unattended-Upgrade', 'unset')} "
            f"apt-daily-upgrade.timer_enabled={timer}"
        ),
    }
