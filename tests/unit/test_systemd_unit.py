"""The shipped systemd unit: hardened (offline security score), valid (systemd-analyze verify
without warnings), and in step with the install script and the example config."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "edge-agent.service"
INSTALL = REPO / "systemd" / "install.sh"
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def directives() -> dict[str, list[str]]:
    """Every `Key=value` of the unit, a key that repeats keeping all its values."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def exposure(unit: Path) -> float:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    return float(match.group(1))


@needs_analyze
def test_offline_security_score_is_at_most_2(tmp_path: Path) -> None:
    assert exposure(UNIT) <= MAX_EXPOSURE


@needs_analyze
def test_the_score_would_notice_lost_hardening(tmp_path: Path) -> None:
    """Guards the parsing above: the same unit without its sandbox scores far worse."""
    weakened = tmp_path / "edge-agent.service"
    weakened.write_text("\n".join(line for line in UNIT.read_text().splitlines()
                                  if not line.startswith(("Protect", "SystemCall", "Restrict", "Capability"))))
    assert exposure(weakened) > MAX_EXPOSURE + 2


@needs_analyze
def test_systemd_analyze_verify_passes_without_warnings(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists: point it at the agent installed in this venv.
    agent = shutil.which("edge-agent") or str(Path(__file__).resolve().parents[2] / ".venv/bin/edge-agent")
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-agent/venv/bin/edge-agent", agent))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=120)
    # Unknown or misspelt directives are only warnings (exit 0): any output is a failure.
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", result.stderr


def test_unit_has_the_required_shape() -> None:
    d = directives()
    for key, value in {"Type": "notify", "Restart": "on-failure", "User": "edge-agent",
                       "StateDirectory": "edge-agent", "ConfigurationDirectory": "edge-agent",
                       "ProtectSystem": "strict", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
                       "SupplementaryGroups": "dialout"}.items():
        assert d.get(key) == [value], key
    assert "WatchdogSec" in d
    # Things that would break the collectors.
    assert "ProcSubset" not in d and d.get("ProtectProc", ["default"]) == ["default"]
    assert "AF_NETLINK" in d["RestrictAddressFamilies"][0]
    assert d.get("PrivateDevices", ["no"]) == ["no"] and "char-ttyUSB rw" in d["DeviceAllow"]
    # ProtectSystem=strict leaves a ConfigurationDirectory= writable; the config must not be.
    assert f"/etc/{d['ConfigurationDirectory'][0]}" in d["ReadOnlyPaths"]
    # /bin/kill (procps) is missing on minimal systems; /bin/sh never is.
    assert d["ExecReload"][0].startswith("/bin/sh -c ")
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_install_script_unit_and_example_config_agree() -> None:
    script = INSTALL.read_text()
    settings = dict(re.findall(r"^([A-Z_]+)=(\S+)$", script, re.MULTILINE))
    d = directives()
    assert d["ExecStart"][0].startswith(f"{settings['PREFIX']}/venv/bin/edge-agent run --config "
                                        f"{settings['CONF_DIR']}/agent.toml")
    assert settings["STATE_DIR"] == f"/var/lib/{d['StateDirectory'][0]}"
    assert settings["CONF_DIR"] == f"/etc/{d['ConfigurationDirectory'][0]}"
    assert settings["USER_NAME"] == d["User"][0]
    assert "--system-site-packages" in script  # python3-apt comes from Debian, not PyPI
    # The bare command the docs use is the one the unit runs.
    assert Path(settings["BIN_LINK"]).name == Path(d["ExecStart"][0].split()[0]).name
    example = tomllib.loads((REPO / "config" / "agent.toml").read_text())
    assert example["signing"]["key_file"] == settings["KEY"].strip("\"").replace("$STATE_DIR", settings["STATE_DIR"])
    assert example["state_dir"] == settings["STATE_DIR"]


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_install_script_parses() -> None:
    assert subprocess.run(["sh", "-n", str(INSTALL)], capture_output=True, timeout=30).returncode == 0
