"""The front door, tried as a new user types it: the installed `edge-agent` and `edge-sim` commands,
run as processes, with what the README and --help say."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from delivery_harness import AgentProcess
from waiting import wait_until

from agent.trust import keys

BIN = Path(sys.executable).parent
EDGE_AGENT, EDGE_SIM = str(BIN / "edge-agent"), str(BIN / "edge-sim")


def edge_agent(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([EDGE_AGENT, *args], capture_output=True, text=True, timeout=timeout)


def minimal(tmp_path: Path, extra: str = "", key: str = "node.key") -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'[node]\nid = "panel-1"\n[signing]\nkey_file = "{key}"\n{extra}')
    return path


def assert_refused(result: subprocess.CompletedProcess, *expected: str) -> list[str]:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    for needle in expected:
        assert any(needle in line for line in lines), (needle, lines)
    return lines


def test_check_config_finds_a_missing_key_file_before_run_does(tmp_path: Path) -> None:
    path = minimal(tmp_path)
    assert_refused(edge_agent("check-config", "-c", str(path)),
                   f"{path}: signing.key_file: {tmp_path / 'node.key'}: cannot read the signing key",
                   "edge-agent keygen --key")
    assert_refused(edge_agent("run", "-c", str(path)), "signing.key_file")


def test_check_config_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    keys.generate(tmp_path / "node.key")
    (tmp_path / "node.key").chmod(0o644)
    assert_refused(edge_agent("check-config", "-c", str(minimal(tmp_path))),
                   "readable by group or others (mode 0644)", f"chmod 600 {tmp_path / 'node.key'}")


def test_check_config_and_run_name_the_tls_file_that_is_missing(tmp_path: Path) -> None:
    keys.generate(tmp_path / "node.key")
    path = minimal(tmp_path, '[mqtt]\nurl = "mqtts://broker:8883"\n[mqtt.tls]\nca_file = "ca.pem"\n')
    needle = f"mqtt.tls.ca_file: cannot load {tmp_path / 'ca.pem'}"
    assert_refused(edge_agent("check-config", "-c", str(path)), needle)
    assert_refused(edge_agent("run", "-c", str(path)), needle)


def test_tls_files_with_a_plain_text_url_are_a_mistake(tmp_path: Path) -> None:
    keys.generate(tmp_path / "node.key")
    (tmp_path / "ca.pem").write_text("x")
    path = minimal(tmp_path, '[mqtt]\nurl = "mqtt://broker:1883"\n[mqtt.tls]\nca_file = "ca.pem"\n')
    assert_refused(edge_agent("check-config", "-c", str(path)), "mqtt.tls: TLS files are set but mqtt.url")


def test_every_problem_of_every_device_in_one_pass_in_plain_words(tmp_path: Path) -> None:
    keys.generate(tmp_path / "node.key")
    path = minimal(tmp_path, """
[mqtt]
qos = "one"
[collectors.host]
enabled = "yes"
[[modbus.devices]]
name = "plc1"
host = "10.0.0.5"
port = 70000
points = [{ name = "speed", table = "holding", address = 99999 }, { name = "temp", address = 5 }]
[[modbus.devices]]
name = "plc2"
host = "10.0.0.6"
unit = 300
points = [{ name = "run", table = "coil", address = 1 }]
""")
    lines = assert_refused(
        edge_agent("check-config", "-c", str(path)),
        'mqtt.qos: must be 0 or 1 (got the text "one")',
        'collectors.host.enabled: must be true or false (got the text "yes")',
        "modbus.devices[0].port: must be at most 65535 (got 70000)",
        "modbus.devices[0].points[0].address: point speed: zero-based address 99999 is above 65535",
        "modbus.devices[0].points[1].table: point temp: table is required",
        "modbus.devices[1].unit: must be at most 255 (got 300)",
        'modbus.devices[1].points[0].type: point run: a coil point holds one bit: set type = "bool"',
    )
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert not any("Input should be" in line for line in lines)


def test_a_folder_holding_agent_toml_can_be_given(tmp_path: Path) -> None:
    keys.generate(tmp_path / "node.key")
    minimal(tmp_path)
    assert edge_agent("check-config", "-c", str(tmp_path)).returncode == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(edge_agent("check-config", "-c", str(empty)), f"{empty}: is a folder, not a config file")


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    keys.generate(tmp_path / "node.key")
    path = minimal(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = edge_agent("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("what", ["fifo", "device", "huge"])
def test_non_regular_or_huge_files_are_refused_at_once(tmp_path: Path, what: str) -> None:
    if what == "fifo":
        path = tmp_path / "agent.toml"
        os.mkfifo(path)  # nobody ever writes: reading it would hang forever
        needle = "not a regular file"
    elif what == "device":
        path, needle = Path("/dev/zero"), "not a regular file"
    else:
        path = tmp_path / "agent.toml"
        path.write_bytes(b"# " + b"x" * (2 * 1024 * 1024) + b"\n")
        needle = "bytes is too large for a config file"
    for command in ("check-config", "run"):
        assert_refused(edge_agent(command, "-c", str(path), timeout=20), f"{path}: ", needle)


def test_status_shows_the_running_agent_within_seconds_not_after_a_report(broker, node_key, tmp_path: Path) -> None:
    # The default report interval (60 s): status must not wait for it.
    agent = AgentProcess(tmp_path, broker.port, node_key[0], host_interval="1s", spool_section="")
    agent.start()
    try:
        def ready() -> str | None:
            out = edge_agent("status", "--state-dir", str(agent.state_dir)).stdout
            return out if "connected" in out and "disconnected" not in out and "host" in out \
                and "starting" not in out and "never" not in out.split("collectors:")[-1] else None

        # Well inside the 60 s report interval, with room for a loaded machine.
        text = wait_until(ready, "status to show the broker connected and the host collector ok", timeout=45)
        assert "agent:          running" in text
        for form in (["-c", str(agent.config_path)], ["-c", str(tmp_path)]):
            assert "agent:          running" in edge_agent("status", *form).stdout
    finally:
        agent.terminate()


def test_status_while_nothing_ran_says_connecting_not_an_empty_error(tmp_path: Path) -> None:
    from agent.cli.status import render

    text = render({"state_dir": str(tmp_path), "running": True, "spool": None, "spool_error": "",
                   "daemon": {"pid": 1, "broker": {"url": "mqtt://b:1883", "connected": False, "last_error": ""}}},
                  now_ms=0)
    assert "mqtt://b:1883 connecting" in text and "no error" not in text


def test_the_demo_prints_commands_that_work_and_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    demo = subprocess.Popen([EDGE_SIM, "demo", "--duration", "120", "--state-dir", str(folder), "--no-board"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = [demo.stdout.readline() for _ in range(3)]
        status_cmd = next(line for line in banner if "status:" in line).split("status:", 1)[1].split()
        assert status_cmd[:2] == ["edge-agent", "status"], banner
        wait_until(lambda: "agent:          running" in edge_agent(*status_cmd[1:]).stdout, "the demo's agent in status")
        verify_cmd = next(line for line in banner if "verify:" in line).split("verify:", 1)[1].split()
        verified = edge_agent(*verify_cmd[1:], timeout=60)
        assert verified.returncode == 0 and verified.stdout.count('"valid": true') == 5, verified.stderr
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(children) >= 3  # two PLCs and the broker
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(30) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if demo.poll() is None:
            demo.kill()


def test_help_lists_every_command_and_subcommand() -> None:
    agent_help = edge_agent("--help").stdout
    for command in ("run", "check-config", "keygen", "status", "collect", "plan", "verify", "board", "trust"):
        assert command in agent_help
    sim_help = subprocess.run([EDGE_SIM, "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "edge-sim demo" in sim_help and "edge-sim drill" in sim_help


def test_status_of_an_empty_state_dir_exits_1(tmp_path: Path) -> None:
    result = edge_agent("status", "--state-dir", str(tmp_path))
    assert result.returncode == 1 and "none yet" in result.stdout
    assert_refused(edge_agent("status", "-c", str(tmp_path / "missing.toml")), "cannot read the config file")
