"""The apt backends against fixture system roots (Debian 12, Ubuntu 24.04).

Both backends run against the same roots: the apt-get parser path always, python3-apt when
Debian's module is installed for this Python version.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from agent.collectors.patches import apt
from agent.collectors.patches.collector import PatchesCollector
from agent.collectors.patches.config import PatchesConfig
from agent.collectors.patches.scan import Scan, scan
from agent.readiness.maintenance import MaintenanceConfig

ROOTS = Path(__file__).parent.parent / "fixtures" / "roots"
# fixture indexes are dated 2026-07-11; their security Valid-Until is 2026-07-18 09:00 UTC
FRESH = datetime(2026, 7, 12, 12, 0, tzinfo=timezone.utc).timestamp()
EXPIRED = datetime(2026, 8, 30, 12, 0, tzinfo=timezone.utc).timestamp()


BACKENDS = [
    "apt-get",
    pytest.param(
        "python-apt",
        marks=pytest.mark.skipif(not apt.python_apt_available(), reason="python3-apt not installed for this Python"),
    ),
]
needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")


def copy_root(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(ROOTS / name, root, symlinks=True)
    return root


def stamp_update(root: Path, when: float) -> None:
    stamp = root / "var/lib/apt/periodic/update-success-stamp"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    os.utime(stamp, (when, when))


def collect(root: Path, backend: str, now: float, state_dir: Path | None = None, **maintenance: Any) -> dict:
    collector = PatchesCollector(
        PatchesConfig(backend=backend), MaintenanceConfig(**maintenance), root, state_dir, clock=lambda: now
    )
    return collector.read()[0].body


def by_package(body: dict) -> dict[str, dict]:
    return {u["package"]: u for u in body["security_updates"]}


@needs_apt
@pytest.mark.parametrize("backend", BACKENDS)
def test_debian_hidden_security_fix_is_counted(backend: str, tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    stamp_update(root, FRESH - 3600)
    body = collect(root, backend, FRESH)
    updates = by_package(body)
    # openssl: candidate 3.0.14 comes from -updates, the fix 3.0.13 only from -security
    assert updates["openssl"] == {
        **updates["openssl"],
        "installed": "3.0.11-1~deb12u1",
        "fixed": "3.0.13-1~deb12u1",
        "candidate": "3.0.14-1~deb12u1",
        "hidden": True,
        "installable": True,
    }
    assert updates["libc6"]["fixed"] == "2.36-9+deb12u7" and not updates["libc6"]["hidden"]
    assert body["security_pending"] == 3 and body["security_hidden"] == 2
    assert body["status"] == "ok", body["status_reasons"]
    # security recognised by the Release label although the mirror host is "apt-cache.plant.local"
    assert body["freshness"]["security_archives"] == ["bookworm-security"]


@needs_apt
@pytest.mark.parametrize("backend", BACKENDS)
def test_debian_held_package_is_reported_not_dropped(
    backend: str, tmp_path: Path
) -> None:
    body = collect(copy_root("debian12", tmp_path), backend, FRESH)
    assert body["held"] == ["tzdata"]
    assert "tzdata" in body["kept_back"]
    assert by_package(body)["tzdata"]["installable"] is False
    assert body["upgradable"] == 4  # openssl, libc6, bash, tzdata (held still shows as upgradable)
    # bash's new version needs a new package: only dist-upgrade installs it
    assert body["upgrade_installs"] == 2 and body["dist_upgrade_installs"] == 3
    assert body["kept_back"] == ["tzdata"]


@needs_apt
def test_debian_kernel_mismatch_and_reboot_flag(tmp_path: Path) -> None:
    body = collect(copy_root("debian12", tmp_path), "apt-get", FRESH)
    reboot = body["reboot"]
    assert reboot["running_kernel"] == "6.1.0-9-amd64"
    assert reboot["newest_kernel"] == "6.1.0-18-amd64"  # 18 > 9, not the string order
    assert reboot["kernel_pending"] is True
    assert reboot["required"] is True and reboot["flag_packages"] == ["linux-image-6.1.0-18-amd64"]
    assert body["reboot_required"] is True


@needs_apt
def test_running_newest_kernel_without_flag_needs_no_reboot(tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    (root / "proc/sys/kernel/osrelease").write_text("6.1.0-18-amd64\n")
    (root / "run/reboot-required").unlink()
    body = collect(root, "apt-get", FRESH)
    assert body["reboot"]["kernel_pending"] is False and body["reboot_required"] is False


@needs_apt
def test_expired_security_index_reports_stale_not_zero(tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    stamp_update(root, EXPIRED - 3600)  # even a recent stamp cannot vouch for an expired index
    body = collect(root, "apt-get", EXPIRED)
    assert body["status"] == "stale"
    assert body["freshness"]["security_index_expired"] is True
    assert any("Valid-Until" in reason for reason in body["status_reasons"])


@needs_apt
def test_old_update_stamp_reports_stale(tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    stamp_update(root, FRESH - 30 * 86400)
    body = collect(root, "apt-get", FRESH)
    assert body["status"] == "stale"
    assert body["freshness"]["last_update_source"] == "update-success-stamp"
    assert body["freshness"]["index_age_s"] == 30 * 86400


@needs_apt
def test_cleaned_lists_report_unknown(tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    for path in (root / "var/lib/apt/lists").iterdir():
        path.unlink()
    body = collect(root, "apt-get", FRESH)
    assert body["status"] == "unknown"
    assert body["security_pending"] == 0  # ... which the status says not to trust


@needs_apt
@pytest.mark.parametrize("backend", BACKENDS)
def test_ubuntu_esm_pin_and_phasing(backend: str, tmp_path: Path) -> None:
    body = collect(copy_root("ubuntu2404", tmp_path), backend, FRESH)
    updates = by_package(body)
    assert set(updates) == {"curl", "nginx", "libmagickcore-6.q16-7t64"}  # ESM apps counts as security
    assert updates["libmagickcore-6.q16-7t64"]["installable"] is True
    assert body["pinned"] == ["nginx"] and updates["nginx"]["installable"] is False
    assert "snapd" in body["kept_back"] and "snapd" not in updates
    if backend == "python-apt":
        assert body["phased"] == ["snapd"]


@needs_apt
def test_first_seen_persists_across_restarts(tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    first = collect(root, "apt-get", FRESH, state_dir=state)
    later = collect(root, "apt-get", FRESH + 86400, state_dir=state)
    assert by_package(later)["openssl"]["first_seen_ms"] == int(FRESH * 1000)
    assert by_package(first)["openssl"]["first_seen_ms"] == int(FRESH * 1000)


@needs_apt
def test_missing_state_dir_is_tolerated(tmp_path: Path) -> None:
    body = collect(copy_root("debian12", tmp_path), "apt-get", FRESH, state_dir=tmp_path / "absent")
    assert by_package(body)["openssl"]["first_seen_ms"] == int(FRESH * 1000)
    assert not (tmp_path / "absent").exists()


@needs_apt
def test_sla_breach_and_next_window(tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    collect(root, "apt-get", FRESH, state_dir=state)
    body = collect(
        root, "apt-get", FRESH + 15 * 86400, state_dir=state,
        time_zone="Europe/Berlin", weekly=[{"day": "sun", "start": "02:00", "duration": "3h"}],
    )
    assert {b["package"] for b in body["sla_breaches"]} == {"openssl", "libc6", "tzdata"}  # 15 d > 14 d
    assert body["next_window"]["start_local"].endswith("02:00:00+02:00")
    assert set(body["due_in_next_window"]) == {"openssl", "libc6", "tzdata"}


@needs_apt
def test_package_state_is_rescanned_only_when_it_changed(tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    now = [FRESH]
    collector = PatchesCollector(PatchesConfig(backend="apt-get"), MaintenanceConfig(), root, None, clock=lambda: now[0])
    first = collector.read()[0].body["scanned_ms"]
    now[0] += 600
    assert collector.read()[0].body["scanned_ms"] == first
    status = root / "var/lib/dpkg/status"
    os.utime(status, (FRESH + 600, FRESH + 600))
    assert collector.read()[0].body["scanned_ms"] == int(now[0] * 1000)


@needs_apt
def test_cached_cycle_reuses_the_package_facts_until_the_database_changes(tmp_path: Path) -> None:
    root = copy_root("debian12", tmp_path)
    scans: list[int] = []

    def counting(backend: str, scanned_root: Path, now_ms: int) -> Scan:
        scans.append(now_ms)
        return scan(backend, scanned_root, now_ms)

    now = [FRESH]
    collector = PatchesCollector(PatchesConfig(backend="apt-get"), MaintenanceConfig(), root, None,
                                 clock=lambda: now[0], scanner=counting)
    first = collector.read()[0].body
    assert first["reboot"]["newest_kernel"] == "6.1.0-18-amd64" and first["auto_updates"]["enabled"] is True
    # a cached cycle: no scan, but the per-cycle facts (the reboot flag) are read afresh
    (root / "run/reboot-required").unlink()
    now[0] += 600
    cached = collector.read()[0].body
    assert len(scans) == 1 and cached["scanned_ms"] == first["scanned_ms"]
    assert cached["reboot"]["required"] is False and cached["security_updates"] == first["security_updates"]
    # dpkg installs a newer kernel and removes unattended-upgrades: a fresh scan and fresh facts
    status = root / "var/lib/dpkg/status"
    text = status.read_text().replace("Package: unattended-upgrades\n", "Package: unattended-upgrades-gone\n")
    status.write_text(text + "\nPackage: linux-image-6.1.0-25-amd64\nStatus: install ok installed\n"
                             "Architecture: amd64\nVersion: 6.1.106-3\n")
    os.utime(status, (FRESH + 700, FRESH + 700))
    now[0] += 600
    changed = collector.read()[0].body
    assert len(scans) == 2 and changed["scanned_ms"] == int(now[0] * 1000)
    assert changed["reboot"]["newest_kernel"] == "6.1.0-25-amd64" and changed["auto_updates"]["enabled"] is False
    # apt update changes the lists: a fresh scan too
    os.utime(root / "var/lib/apt/lists", (FRESH + 800, FRESH + 800))
    now[0] += 600
    collector.read()
    assert len(scans) == 3
