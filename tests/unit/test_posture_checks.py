"""Posture checks against fixture roots and captured /proc text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.collectors.host.clock import STA_UNSYNC, TIME_ERROR, ClockState
from agent.collectors.posture import collector as posture
from agent.collectors.posture.config import PostureConfig

ROOTS = Path(__file__).parent.parent / "fixtures" / "roots"
IDS = {
    "firewall", "ssh_root_login", "ssh_password_auth", "listening_ports", "time_sync",
    "auditd", "mac", "usb_storage", "disk_encryption", "auto_security_updates",
}


def no_units(unit: str) -> None:
    return None


def by_id(root: Path, **config: object) -> dict[str, dict[str, str]]:
    body = posture.run_checks(root, PostureConfig(**config), units=no_units)
    return {c["id"]: c for c in body["checks"]}


@pytest.mark.parametrize("name", ["debian12", "ubuntu2404", "rhel9"])
def test_every_check_answers_on_every_root(name: str) -> None:
    body = posture.run_checks(ROOTS / name, PostureConfig(), units=no_units)
    assert {c["id"] for c in body["checks"]} == IDS
    assert all(c["status"] in ("pass", "fail", "unknown") and c["evidence"] for c in body["checks"])
    assert body["pass"] + body["fail"] + body["unknown"] == len(IDS)
    # a copied root has no kernel to ask: these cannot be known, and say so
    checks = {c["id"]: c for c in body["checks"]}
    assert checks["time_sync"]["status"] == "unknown" and checks["listening_ports"]["status"] == "unknown"


def test_sshd_drop_in_first_value_wins_and_match_loosens() -> None:
    checks = by_id(ROOTS / "debian12")
    # sshd_config says "PermitRootLogin yes" after the Include; the drop-in's "no" came first
    assert checks["ssh_root_login"]["status"] == "pass"
    assert checks["ssh_password_auth"]["status"] == "fail"
    assert "Match User backup" in checks["ssh_password_auth"]["evidence"]


def test_sshd_defaults_count_as_unsafe() -> None:
    checks = by_id(ROOTS / "ubuntu2404")
    assert checks["ssh_root_login"]["status"] == "fail"
    assert "prohibit-password (OpenSSH default)" in checks["ssh_root_login"]["evidence"]
    assert "Match Address 10.0.0.0/8" in checks["ssh_root_login"]["evidence"]
    assert checks["ssh_password_auth"]["status"] == "fail"


def test_sshd_setting_before_include_beats_drop_in(tmp_path: Path) -> None:
    (tmp_path / "etc/ssh/sshd_config.d").mkdir(parents=True)
    (tmp_path / "etc/ssh/sshd_config").write_text(
        "PasswordAuthentication no\nPermitRootLogin no\nInclude /etc/ssh/sshd_config.d/*.conf\n"
    )
    (tmp_path / "etc/ssh/sshd_config.d/90-vendor.conf").write_text("PasswordAuthentication yes\nMatch User x\n")
    settings, overrides, readable = posture.sshd_settings(tmp_path)
    assert settings["passwordauthentication"] == "no" and readable
    assert overrides == []


def test_unreadable_sshd_drop_in_is_unknown(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads mode-000 files")
    (tmp_path / "etc/ssh/sshd_config.d").mkdir(parents=True)
    (tmp_path / "etc/ssh/sshd_config").write_text("Include sshd_config.d/*.conf\nPermitRootLogin no\n")
    secret = tmp_path / "etc/ssh/sshd_config.d/10-secret.conf"
    secret.write_text("PermitRootLogin yes\n")
    secret.chmod(0)
    assert by_id(tmp_path)["ssh_root_login"]["status"] == "unknown"


PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 1 1
   1: 00000000:01F6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:075B 0100007F:B8E2 01 00000000:00000000 00:00000000 00000000   105        0 3 1
"""
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000
"""
PROC_UDP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2 0 0
  2: 0A00000F:A1B2 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 5 2 0 0
"""


def test_proc_net_parsing() -> None:
    assert posture.parse_proc_net(PROC_TCP, "tcp") == [
        {"proto": "tcp", "address": "127.0.0.1", "port": 1883},
        {"proto": "tcp", "address": "0.0.0.0", "port": 502},
    ]
    assert posture.parse_proc_net(PROC_TCP6, "tcp6") == [{"proto": "tcp", "address": "::1", "port": 22}]
    assert posture.parse_proc_net(PROC_UDP, "udp") == [{"proto": "udp", "address": "0.0.0.0", "port": 68}]


def test_port_policy() -> None:
    sockets = posture.parse_proc_net(PROC_TCP, "tcp") + posture.parse_proc_net(PROC_UDP, "udp")
    assert posture.check_ports(sockets, None)["status"] == "unknown"
    assert posture.check_ports(sockets, [502, 68])["status"] == "pass"
    failed = posture.check_ports(sockets, [502])
    assert failed["status"] == "fail" and "udp/68" in failed["evidence"] and "1883" not in failed["evidence"]


def test_time_sync_from_adjtimex() -> None:
    live = Path("/")
    assert posture.check_time_sync(live, lambda: ClockState(0, 0x2001, 0.0, 1000, 0))["status"] == "pass"
    unsync = ClockState(0, STA_UNSYNC, 0.0, 16_000_000, 0)
    assert posture.check_time_sync(live, lambda: unsync)["status"] == "fail"
    assert posture.check_time_sync(live, lambda: ClockState(TIME_ERROR, 0, 0.0, 0, 0))["status"] == "fail"
    assert posture.check_time_sync(live, lambda: None)["status"] == "unknown"


def test_usb_encryption_auto_updates_mac_on_fixtures() -> None:
    debian, ubuntu, rhel = (by_id(ROOTS / n) for n in ("debian12", "ubuntu2404", "rhel9"))
    assert debian["usb_storage"]["status"] == "pass" and "install usb-storage /bin/false" in debian["usb_storage"]["evidence"]
    assert rhel["usb_storage"]["status"] == "fail"
    assert debian["disk_encryption"]["status"] == "pass" and rhel["disk_encryption"]["status"] == "fail"
    assert debian["auto_security_updates"]["status"] == "pass"
    assert ubuntu["auto_security_updates"]["status"] == "fail"
    assert rhel["auto_security_updates"]["status"] == "pass"
    assert rhel["mac"]["status"] == "pass" and debian["mac"]["status"] == "unknown"


def test_firewall_states(tmp_path: Path) -> None:
    assert by_id(ROOTS / "rhel9")["firewall"]["status"] == "fail"
    root = tmp_path / "ufw"
    (root / "etc/ufw").mkdir(parents=True)
    (root / "etc/ufw/ufw.conf").write_text("ENABLED=yes\n")
    assert by_id(root)["firewall"]["status"] == "pass"
    enabled = tmp_path / "nft"
    (enabled / "etc/systemd/system/sysinit.target.wants").mkdir(parents=True)
    os.symlink("/lib/systemd/system/nftables.service", enabled / "etc/systemd/system/sysinit.target.wants/nftables.service")
    # enabled at boot but the copied root cannot show whether it runs
    assert by_id(enabled)["firewall"]["status"] == "unknown"
    active = posture.check_firewall(enabled, lambda unit: "active" if unit == "nftables.service" else "inactive")
    assert active["status"] == "pass" and "nftables.service is active" in active["evidence"]
