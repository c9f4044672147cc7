"""The shipped unit under a real systemd.

`systemd/install.sh` runs in a minimal Debian container (container.py) with this checkout
bound read-only; the agent it installs publishes to a private Mosquitto and polls a simulated
PLC, both on the host (the container shares its network). What the test proves: the install
works from a read-only checkout and puts `edge-agent` on PATH; the agent reaches READY; the
sandbox is in force on the running process; every collector still reads what it needs
(checked on the signed messages, verified by `edge-agent verify`); reload; the watchdog
restarts a frozen agent; a stop is clean. Where the host cannot boot a container the test
skips with the reason, in one line.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from container import CannotBoot, Container, debian_root, missing_prerequisite
from simulators.localnet import free_port, wait_for_port
from simulators.mosquitto import PrivateMosquitto
from waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # this checkout's edge-agent and edge-sim
NODE = "nspawn-node"
UNIT = "edge-agent.service"
OFFLINE_PIP = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels"}  # install.sh's pip, from the wheelhouse
# The watchdog step freezes the agent: a short watchdog keeps that wait short.
TEST_DROP_IN = "[Service]\nWatchdogSec=5s\nRestartSec=1s\n"


@dataclass
class Plant:
    container: Container
    broker: PrivateMosquitto
    trust: Path
    verified: Path  # JSON lines of an `edge-agent verify` running all along

    def messages(self) -> list[dict[str, Any]]:
        """Every message so far, each checked valid (signature, topic binding, replay)."""
        lines = self.verified.read_text().splitlines(keepends=True)
        got = [json.loads(line) for line in lines if line.endswith("\n")]
        invalid = [m for m in got if not m["valid"]]
        assert not invalid, invalid[:3]
        return got

    def newest(self, kind: str, subject: str = "") -> dict[str, Any] | None:
        topic = f"edge/{NODE}/{kind}" + (f"/{subject}" if subject else "")
        found = [m for m in self.messages() if m["topic"] == topic]
        return found[-1] if found else None


def agent_config(broker_port: int, plc_port: int) -> str:
    points = subprocess.run([str(BIN / "edge-sim"), "--agent-points", "packaging_line"],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    return f"""state_dir = "/var/lib/edge-agent"
[node]
id = "{NODE}"
[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
protocol = "5"
[signing]
key_file = "/var/lib/edge-agent/node.key"
[collectors.host]
interval = "2s"
[collectors.patches]
interval = "10s"
[collectors.posture]
interval = "10s"
[[modbus.devices]]
name = "line"
transport = "tcp"
host = "127.0.0.1"
port = {plc_port}
unit = 1
interval = "1s"
{points}"""


def build_wheelhouse(folder: Path) -> Path:
    """Wheels of the agent's dependencies and build backend, built by the host's pip: the
    container installs offline (and fast). The agent itself is built by install.sh."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = [*project["build-system"]["requires"], *project["project"]["dependencies"]]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                    "--wheel-dir", str(folder), *requirements], check=True, timeout=600)
    return folder


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Plant]:
    with contextlib.ExitStack() as stack:
        try:
            reason = missing_prerequisite()
            if reason:
                raise CannotBoot(reason)
            root = debian_root()
            binds = {REPO: "/src", build_wheelhouse(tmp_path / "wheels"): "/wheels"}
            container = stack.enter_context(Container(root, binds, tmp_path / "nspawn.log"))
        except CannotBoot as exc:
            pytest.skip(f"cannot boot a systemd container here: {exc}")
        broker = PrivateMosquitto.in_folder(tmp_path / "broker").start()
        stack.callback(broker.stop)
        plc_port = free_port()
        plc = subprocess.Popen([str(BIN / "edge-sim"), "--port", str(plc_port), "--profile", "packaging_line"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(plc.wait, 10)
        stack.callback(plc.terminate)
        wait_for_port(plc_port)

        # A config already in place: install.sh keeps it and starts the service.
        container.write("/etc/edge-agent/agent.toml", agent_config(broker.port, plc_port))
        container.write(f"/etc/systemd/system/{UNIT}.d/test-watchdog.conf", TEST_DROP_IN)
        container.run("/src/systemd/install.sh", env=OFFLINE_PIP, timeout=300)

        trust = tmp_path / "trust"
        trust.mkdir()
        (trust / f"{NODE}.pub").write_text(container.read("/var/lib/edge-agent/node.key.pub"))
        verified = tmp_path / "verified.jsonl"
        with open(verified, "w") as out:
            verify = subprocess.Popen([str(BIN / "edge-agent"), "verify", "--broker", broker.url,
                                       "--trust", str(trust)], stdout=out, stderr=subprocess.DEVNULL)
        stack.callback(verify.wait, 10)
        stack.callback(verify.send_signal, signal.SIGINT)
        yield Plant(container, broker, trust, verified)


def test_installed_agent_under_a_real_systemd(plant: Plant) -> None:
    """One scenario on one container, so a host that cannot boot one skips it in one line.
    Each step starts the service again if the one before stopped it."""
    install_works_from_a_read_only_checkout_and_puts_edge_agent_on_path(plant)
    agent_reaches_ready_and_reports_its_status_to_systemd(plant)
    sandbox_is_in_force_on_the_running_agent(plant)
    collectors_read_what_they_need_inside_the_sandbox(plant)
    reload_rereads_the_config_in_the_same_process(plant)
    watchdog_restarts_a_frozen_agent(plant)
    stop_is_clean_and_leaves_offline_at_the_broker(plant)


def running(container: Container) -> dict[str, str]:
    """Start the service if a step before stopped it; Type=notify: returns once READY."""
    container.run("systemctl", "start", UNIT)
    state = container.show(UNIT, ["ActiveState", "SubState", "MainPID", "NRestarts", "StatusText"])
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    return state


def install_works_from_a_read_only_checkout_and_puts_edge_agent_on_path(plant: Plant) -> None:
    container = plant.container
    # install.sh succeeded (the fixture checks its exit status) with the checkout bound read-only,
    # so it wrote nothing into it (no build/, no *.egg-info).
    probe = container.run("touch", "/src/.install-probe", check=False)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    version = container.run("edge-agent", "--version").stdout  # the bare name, as the docs use it
    assert version.startswith("edge-agent ")
    assert container.run("readlink", "-f", "/usr/local/bin/edge-agent").stdout.startswith("/opt/edge-agent/venv-")
    assert container.read(f"/etc/systemd/system/{UNIT}") == (REPO / "systemd" / UNIT).read_text()


def agent_reaches_ready_and_reports_its_status_to_systemd(plant: Plant) -> None:
    container = plant.container
    running(container)

    def connected() -> str | None:
        text = container.show(UNIT, ["StatusText"])["StatusText"]
        return text if text.startswith("connected") else None

    assert "spool" in wait_until(connected, "STATUS=connected...")
    local = json.loads(container.run("edge-agent", "status", "-c", "/etc/edge-agent/agent.toml", "--json").stdout)
    assert local["running"] is True


def sandbox_is_in_force_on_the_running_agent(plant: Plant) -> None:
    container = plant.container
    pid = running(container)["MainPID"]
    status = dict(line.split(":", 1) for line in container.read(f"/proc/{pid}/status").splitlines())
    uid = container.run("id", "-u", "edge-agent").stdout.strip()
    assert status["Uid"].split() == [uid] * 4
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # a seccomp filter (SystemCallFilter=)
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0

    def write_in_agent_mounts(folder: str) -> subprocess.CompletedProcess[str]:
        # As root in the agent's mount namespace: only the mount's own read-only flag stops it.
        return container.run("nsenter", "-t", pid, "-m", "--", "sh", "-c",
                             'touch "$1/.sandbox-probe" && rm "$1/.sandbox-probe"', "sh", folder, check=False)

    for folder in ("/usr", "/etc", "/etc/edge-agent", "/opt/edge-agent"):
        probe = write_in_agent_mounts(folder)
        assert probe.returncode != 0 and "Read-only file system" in probe.stderr, folder
    assert write_in_agent_mounts("/var/lib/edge-agent").returncode == 0  # its state stays writable
    # Outside the agent's namespace the same root may write /etc: the probe can tell.
    assert container.run("sh", "-c", "touch /etc/.sandbox-probe && rm /etc/.sandbox-probe").returncode == 0


def collectors_read_what_they_need_inside_the_sandbox(plant: Plant) -> None:
    running(plant.container)
    host = wait_until(lambda: plant.newest("host"), "a host message")["body"]
    assert host["memory"]["total_bytes"] > 0 and host["cpu"]["count"] > 0
    assert host["disks"] and all(disk["total_bytes"] > 0 for disk in host["disks"])
    # ProtectClock= forbids adjtimex(2): the clock state must come from timedated over D-Bus.
    assert host["clock"]["source"] == "timedated" and isinstance(host["clock"]["synchronized"], bool)

    def online() -> dict[str, Any] | None:
        newest = plant.newest("modbus", "line")
        return newest["body"] if newest and newest["body"]["status"]["state"] == "online" else None

    device = wait_until(online, "the PLC online")
    assert device["values"]["recipe"] and device["identity"]["product_code"] == "PKG-LINE-3"

    patches = wait_until(lambda: plant.newest("patches"), "a patches message")["body"]
    # The venv sees Debian's python3-apt (system site packages) from inside the sandbox.
    assert patches["backend"] == "python-apt" and patches["os"]["id"] == "debian"
    posture = wait_until(lambda: plant.newest("posture"), "a posture message")["body"]
    assert {check["id"] for check in posture["checks"]} >= {"firewall", "time_sync", "listening_ports"}
    assert posture["listening"], "the listening sockets (/proc/net) were readable"


def reload_rereads_the_config_in_the_same_process(plant: Plant) -> None:
    container = plant.container
    pid = running(container)["MainPID"]

    def goodbyes() -> int:
        return sum(m["kind"] == "status" and m["body"]["reason"] == "reloading" for m in plant.messages())

    before = goodbyes()
    container.run("systemctl", "reload", UNIT)  # ExecReload=: SIGHUP to the main process
    wait_until(lambda: goodbyes() > before, "the goodbye of a reload")
    assert running(container)["MainPID"] == pid


def watchdog_restarts_a_frozen_agent(plant: Plant) -> None:
    container = plant.container
    before = running(container)
    container.run("sh", "-c", f"kill -STOP {before['MainPID']}")

    def restarted() -> dict[str, str] | None:
        now = container.show(UNIT, ["ActiveState", "MainPID", "NRestarts"])
        fresh = now["MainPID"] not in ("0", before["MainPID"]) and now["ActiveState"] == "active"
        return now if fresh and int(now["NRestarts"]) > int(before["NRestarts"]) else None

    wait_until(restarted, "a restart by the watchdog")
    journal = container.run("journalctl", "-u", UNIT, "--no-pager", "-o", "cat").stdout
    assert "Failed with result 'watchdog'" in journal


def stop_is_clean_and_leaves_offline_at_the_broker(plant: Plant) -> None:
    container = plant.container
    running(container)
    container.run("systemctl", "stop", UNIT)
    state = container.show(UNIT, ["ActiveState", "Result", "ExecMainCode", "ExecMainStatus"])
    # ExecMainCode 1 = CLD_EXITED: it exited by itself, with 0, on SIGTERM (not killed at the timeout).
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"}
    # A new subscriber gets only retained messages now: the status must say offline.
    fresh = subprocess.run([str(BIN / "edge-agent"), "verify", "--broker", plant.broker.url, "--trust",
                            str(plant.trust), "--timeout", "3"], capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 0, fresh.stderr
    status = [m for m in map(json.loads, fresh.stdout.splitlines()) if m["topic"] == f"edge/{NODE}/status"]
    assert len(status) == 1 and status[0]["valid"]
    assert (status[0]["body"]["state"], status[0]["body"]["reason"]) == ("offline", "stopped")
