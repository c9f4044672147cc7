"""The dnf backend against captured command output from a RHEL 9 host (fixture root rhel9)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from agent.collectors.patches import dnf
from agent.collectors.patches.collector import build_body, read_facts
from agent.collectors.patches.common import FirstSeen
from agent.collectors.patches.config import PatchesConfig
from agent.collectors.patches.scan import Scan
from agent.readiness.maintenance import MaintenanceConfig

ROOT = Path(__file__).parent.parent / "fixtures" / "roots" / "rhel9"
CAPTURED = ROOT / "captured"
NOW = datetime(2026, 7, 12, 12, 0, tzinfo=timezone.utc)


def captured_run(argv: list[str]) -> tuple[int, str]:
    """Answer the commands scan_dnf issues with the output captured on a RHEL 9 host."""
    if argv[0] == "dnf" and "updateinfo" in argv:
        return 0, (CAPTURED / "updateinfo-security.txt").read_text()
    if argv[0] == "dnf" and "check-update" in argv:
        return 100, (CAPTURED / "check-update.txt").read_text()
    if argv[0] == "rpm":
        return 0, (CAPTURED / "rpm-qa.txt").read_text()
    raise AssertionError(f"unexpected command {argv}")


def test_security_updates_with_severity_and_advisories() -> None:
    result = dnf.scan_dnf(ROOT, run=captured_run)
    updates = {u.package: u for u in result.updates}
    assert updates["openssl"].security_version == "1:3.0.7-27.el9"
    assert updates["openssl"].installed == "1:3.0.7-25.el9_3"
    assert updates["kernel-core"].severity == "critical"
    # two advisories for curl: the newest fixed version and the highest severity win
    assert updates["curl"].security_version == "7.76.1-29.el9_4.1"
    assert updates["curl"].severity == "moderate"
    assert updates["curl"].advisories == ("RHSA-2024:1234", "RHSA-2024:4000")
    assert updates["tzdata"].security_version is None and updates["tzdata"].upgradable
    assert "grub2-tools" not in updates  # obsoletes section is not an update list
    assert result.metadata_checked_ms == int(datetime(2026, 7, 12, 9, 46, 15, tzinfo=timezone.utc).timestamp() * 1000)


def test_body_for_rhel_root() -> None:
    result = dnf.scan_dnf(ROOT, run=captured_run)
    scan = Scan("dnf", result.updates, None, int(NOW.timestamp() * 1000), result.metadata_checked_ms, True)
    facts = read_facts(scan, ROOT, FirstSeen(None), scan.scanned_ms)
    body = build_body(facts=facts, root=ROOT, config=PatchesConfig(), maintenance=MaintenanceConfig(), now=NOW)
    assert body["status"] == "ok"
    assert body["security_pending"] == 5 and body["upgradable"] == 6
    assert body["reboot_required"] is True
    # running 362.8.1, newest installed 427.13.1: numeric order, not string order
    assert body["reboot"]["newest_kernel"] == "5.14.0-427.13.1.el9_4.x86_64"
    assert body["reboot"]["kernel_pending"] is True
    assert body["auto_updates"]["enabled"] is True


def test_stale_dnf_metadata() -> None:
    fresh = dnf.dnf_freshness(1_000_000, 1_000_000 + 3600_000, 7 * 86400)
    stale = dnf.dnf_freshness(1_000_000, 1_000_000 + 30 * 86400_000, 7 * 86400)
    assert fresh["status"] == "ok" and stale["status"] == "stale"
    assert dnf.dnf_freshness(None, 0, 7 * 86400)["status"] == "unknown"


def test_needs_restarting() -> None:
    text = (CAPTURED / "needs-restarting.txt").read_text()
    assert dnf.parse_needs_restarting(text, int((CAPTURED / "needs-restarting.rc").read_text())) is True
    assert dnf.parse_needs_restarting("No core libraries or services have been updated since boot-up.", 0) is False
    assert dnf.parse_needs_restarting("needs-restarting: command not found", 127) is None


def test_nevra_split() -> None:
    assert dnf.split_nevra("openssl-libs-1:3.0.7-27.el9.x86_64") == ("openssl-libs", "1:3.0.7-27.el9", "x86_64")
    assert dnf.split_nevra("tzdata-2024a-1.el9.noarch") == ("tzdata", "2024a-1.el9", "noarch")
