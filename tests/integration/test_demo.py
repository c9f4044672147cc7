"""`edge-sim demo` is the newcomer's first command: it must show verified readings from
both simulated PLCs and the host, and reject nothing."""

import subprocess
import sys

import pytest

from simulators.demo.view import VERIFIED

pytestmark = pytest.mark.integration


def test_demo_shows_verified_readings_from_both_plcs_and_the_host(tmp_path):
    result = subprocess.run([sys.executable, "-m", "simulators.cli", "demo", "--duration", "12",
                             "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    final = result.stdout.rsplit("edge-sim demo  broker", 1)[1]
    assert "rejected 0" in final
    assert "device packaging-plc  [online]" in final and "motor_speed=" in final
    assert "device energy-meter  [online]" in final and "voltage_l1=" in final
    assert "  host    cpu" in final or "  host    mem" in final
    assert final.count(VERIFIED) >= 3
    assert "fleet board (readiness, both lenses; on loopback with no users, so no login): http://127.0.0.1:" in final
    assert (tmp_path / "state" / "node.key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "agent.toml").is_file() and (tmp_path / "trust" / "demo-panel.pub").is_file()


def test_the_demo_board_stays_on_loopback(tmp_path):
    """Its node reports this machine's real updates and hardening, and its board has no login."""
    result = subprocess.run([sys.executable, "-m", "simulators.cli", "demo", "--duration", "5", "--board-listen",
                             "0.0.0.0:0", "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the demo's board has no login" in result.stderr and "ssh -L" in result.stderr
