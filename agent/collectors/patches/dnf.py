"""RHEL family: pending and security updates from dnf's cache (`-C`), reboot via needs-restarting.

Parsing is pure and tested against captured command output; `scan_dnf` runs the commands.
Versions are compared with the Debian algorithm, which orders RHEL kernel and package
versions the same way for the usual `N.N.N-N.elX_Y` forms (rpmvercmp differs on `~`/`^` edge cases).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.collectors.patches import debversion
from agent.collectors.patches.common import Update

_SEVERITY = {"critical": "critical", "important": "important", "moderate": "moderate", "low": "low"}
_ARCHES = {"x86_64", "noarch", "aarch64", "i686", "ppc64le", "s390x", "src"}


def split_nevra(nevra: str) -> tuple[str, str, str]:
    """(name, [epoch:]version-release, arch) of `name-[epoch:]version-release.arch`."""
    base, _, arch = nevra.rpartition(".")
    if arch not in _ARCHES:
        base, arch = nevra, ""
    name, version, release = base.rsplit("-", 2)
    return name, f"{version}-{release}", arch


def parse_updateinfo(text: str) -> dict[str, tuple[str, str, list[str]]]:
    """`dnf -C updateinfo list --security`: name -> (fixed version, severity, advisories)."""
    found: dict[str, tuple[str, str, list[str]]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or "/" not in parts[1]:
            continue
        advisory, kind, nevra = parts
        severity = _SEVERITY.get(kind.split("/")[0].lower(), "unspecified")
        name, version, _ = split_nevra(nevra)
        if name in found:
            old_version, old_severity, advisories = found[name]
            rank = list(_SEVERITY).index
            if old_severity != "unspecified" and (severity == "unspecified" or rank(old_severity) <= rank(severity)):
                severity = old_severity
            if debversion.compare(old_version, version) > 0:
                version = old_version
            found[name] = (version, severity, sorted({*advisories, advisory}))
        else:
            found[name] = (version, severity, [advisory])
    return found


def parse_check_update(text: str) -> dict[str, str]:
    """`dnf -C check-update`: name -> candidate version (obsoletes section ignored)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Obsoleting Packages"):
            break
        parts = line.split()
        if len(parts) == 3 and "." in parts[0] and parts[0].rsplit(".", 1)[1] in _ARCHES:
            found[parts[0].rsplit(".", 1)[0]] = parts[1]
    return found


_EXPIRY = re.compile(r"Last metadata expiration check: .*? ago on (.+?)\.?$", re.M)


def metadata_checked_ms(text: str) -> int | None:
    match = _EXPIRY.search(text)
    if not match:
        return None
    for fmt in ("%a %d %b %Y %I:%M:%S %p %Z", "%a %d %b %Y %H:%M:%S %Z", "%a %b %d %H:%M:%S %Y"):
        try:
            moment = datetime.strptime(match.group(1).strip(), fmt)
            return int(moment.replace(tzinfo=timezone.utc).timestamp() * 1000)
        except ValueError:
            continue
    return None


def parse_rpm_qa(text: str) -> dict[str, str]:
    """`rpm -qa --qf '%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n'`: name -> version."""
    installed = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            version = parts[1][2:] if parts[1].startswith("0:") else parts[1]
            if parts[0] not in installed or debversion.compare(version, installed[parts[0]]) > 0:
                installed[parts[0]] = version
    return installed


def parse_needs_restarting(text: str, returncode: int) -> bool | None:
    """`needs-restarting -r`: exit 1 means a reboot is needed, 0 not; anything else unknown."""
    if returncode == 1 or "Reboot is required" in text:
        return True
    if returncode == 0:
        return False
    return None


@dataclass(frozen=True)
class DnfScan:
    updates: list[Update]
    metadata_checked_ms: int | None
    reboot_required: bool | None


def merge(updateinfo: str, check_update: str, rpm_qa: str) -> list[Update]:
    security = parse_updateinfo(updateinfo)
    candidates = parse_check_update(check_update)
    installed = parse_rpm_qa(rpm_qa)
    updates = []
    for name in sorted(set(security) | set(candidates)):
        fixed, severity, advisories = security.get(name, (None, "unspecified", []))
        updates.append(
            Update(
                package=name,
                installed=installed.get(name, ""),
                candidate=candidates.get(name),
                security_version=fixed,
                upgradable=name in candidates,
                in_upgrade=name in candidates,
                in_dist_upgrade=name in candidates,
                severity=severity,
                advisories=tuple(advisories),
            )
        )
    return updates


Run = Callable[[list[str]], tuple[int, str]]


def run_command(argv: list[str]) -> tuple[int, str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    return done.returncode, done.stdout + done.stderr


def scan_dnf(root: Path, run: Run = run_command) -> DnfScan:
    root_opts = [] if root == Path("/") else [f"--installroot={root}"]
    rc, updateinfo = run(["dnf", "-C", "-q", *root_opts, "updateinfo", "list", "--security", "--updates"])
    if rc != 0:
        raise RuntimeError(f"dnf updateinfo failed rc={rc}: {updateinfo.strip()[:300]}")
    rc, check_update = run(["dnf", "-C", *root_opts, "check-update"])
    if rc not in (0, 100):  # 100: updates available
        raise RuntimeError(f"dnf check-update failed rc={rc}: {check_update.strip()[:300]}")
    _, rpm_qa = run(["rpm", *(["--root", str(root)] if root_opts else []), "-qa", "--qf", "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n"])
    reboot: bool | None = None
    if root == Path("/"):
        rc, text = run(["needs-restarting", "-r"])
        reboot = parse_needs_restarting(text, rc)
    return DnfScan(merge(updateinfo, check_update, rpm_qa), metadata_checked_ms(check_update), reboot)


def dnf_freshness(checked_ms: int | None, now_ms: int, stale_after_s: float) -> dict[str, Any]:
    reasons = []
    if checked_ms is None:
        reasons.append("no record of when dnf metadata was last refreshed")
    elif now_ms - checked_ms > stale_after_s * 1000:
        reasons.append(f"dnf metadata last refreshed {(now_ms - checked_ms) // 86_400_000} days ago")
    return {
        "last_update_ms": checked_ms,
        "last_update_source": "dnf-metadata-check" if checked_ms is not None else None,
        "index_age_s": None if checked_ms is None else max(0, (now_ms - checked_ms) // 1000),
        "security_index_date_ms": None,
        "security_index_age_s": None,
        "security_index_valid_until_ms": None,
        "security_index_expired": None,
        "security_archives": [],
        "stale_reasons": reasons,
        "status": "unknown" if checked_ms is None else ("stale" if reasons else "ok"),
    }
