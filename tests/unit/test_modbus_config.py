"""Modbus config: addressing, transports, per-point options and the error lines engineers see."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli.plan import device_plans, render
from agent.collectors.modbus.config import modicon_to_zero_based
from agent.collectors.modbus.planner import Span
from agent.config import ConfigError, validate


def config(*devices: dict):
    return validate({"node": {"id": "n"}, "signing": {"key_file": "k"}, "modbus": {"devices": list(devices)}}, "f.toml")


def device(**extra) -> dict:
    base = {"name": "plc", "host": "10.0.0.5", "points": [{"name": "speed", "table": "holding", "address": 0}]}
    base.update(extra)
    return base


def problems(*devices: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        config(*devices)
    return err.value.problems


def test_modicon_numbers():
    assert modicon_to_zero_based(40001) == ("holding", 0)
    assert modicon_to_zero_based(30010) == ("input", 9)
    assert modicon_to_zero_based(10001) == ("discrete", 0)
    assert modicon_to_zero_based(1) == ("coil", 0)
    assert modicon_to_zero_based(465536) == ("holding", 65535)
    with pytest.raises(ValueError, match="not a Modicon address"):
        modicon_to_zero_based(20001)


def test_modicon_device_resolves_tables_and_types():
    cfg = config(device(addressing="modicon", points=[
        {"name": "speed", "address": 40001, "type": "float32"},
        {"name": "temp", "address": 30002, "type": "int16", "scale": 0.1},
        {"name": "run", "address": 1, "type": "bool"},
    ]))
    assert cfg.modbus.devices[0].spans() == [Span("speed", "holding", 0, 2), Span("temp", "input", 1, 1),
                                            Span("run", "coil", 0, 1)]


@pytest.mark.parametrize("dev,needle", [
    (device(addressing="modicon", points=[{"name": "x", "address": 40001, "table": "input"}]),
     "points[0].table: point x: address 40001 is a holding address but table is 'input'"),
    (device(points=[{"name": "x", "address": 0}]), "points[0].table: point x: table is required with zero-based addressing"),
    (device(points=[{"name": "x", "table": "coil", "address": 0, "type": "uint16"}]), "holds one bit"),
    (device(points=[{"name": "x", "table": "holding", "address": 0, "type": "bit"}]), "needs bit = 0..15"),
    (device(points=[{"name": "x", "table": "holding", "address": 0, "type": "string"}]), "needs length"),
    (device(points=[{"name": "x", "table": "holding", "address": 0, "map": {"three": "a"}}]), "not an integer code"),
    (device(points=[{"name": "x", "table": "holding", "address": 65535, "type": "float32"}]), "past address 65535"),
    (device(max_registers_per_read=2, points=[{"name": "x", "table": "holding", "address": 0, "type": "float64"}]),
     "exceed max_registers_per_read = 2"),
    (device(refused=[{"table": "holding", "start": 0}]), "lies on refused holding 0-0"),
    (device(transport="rtu"), "needs a [serial] table"),
    (device(host=""), "needs host"),
    (device(points=[{"name": "x", "table": "holding", "address": 0, "type": "bool"}]), "needs a coil or discrete"),
])
def test_config_errors_name_the_field(dev, needle):
    [line] = problems(dev)
    assert line.startswith("f.toml: modbus.devices[0]")
    assert needle in line


def test_field_level_errors_have_dotted_paths():
    [line] = problems(device(byte_order="ABDC"))
    assert line.startswith("f.toml: modbus.devices[0].byte_order: ")
    [line] = problems(device(max_registers_per_read=126))
    assert line.startswith("f.toml: modbus.devices[0].max_registers_per_read: ")


def test_units_on_one_line_must_differ_and_serial_settings_agree():
    [line] = problems(device(name="a"), device(name="b"))
    assert "share tcp:10.0.0.5:502 and unit 1" in line
    serial = {"port": "/dev/ttyUSB0"}
    [line] = problems(device(name="a", transport="rtu", host="", serial=serial),
                      device(name="b", transport="rtu", host="", unit=2, serial={**serial, "baudrate": 9600}))
    assert "different serial settings" in line
    cfg = config(device(name="a"), device(name="b", unit=2), device(name="c", port=503))
    assert [d.line for d in cfg.modbus.devices] == ["tcp:10.0.0.5:502", "tcp:10.0.0.5:502", "tcp:10.0.0.5:503"]


def test_durations_and_defaults():
    dev = config(device(interval="500ms", pause_between_requests="20ms")).modbus.devices[0]
    assert dev.interval == 0.5 and dev.pause_between_requests == 0.02
    assert (dev.max_registers_per_read, dev.max_gap, dev.retries, dev.byte_order) == (125, 16, 1, "ABCD")


def test_point_byte_order_overrides_the_device():
    dev = config(device(byte_order="CDAB", points=[
        {"name": "a", "table": "holding", "address": 0, "type": "float32"},
        {"name": "b", "table": "holding", "address": 2, "type": "float32", "byte_order": "ABCD"},
    ])).modbus.devices[0]
    assert [p.codec(dev.byte_order).byte_order for p in dev.points] == ["CDAB", "ABCD"]


def test_plan_output_lists_reads(tmp_path: Path):
    cfg = config(device(max_gap=2, points=[
        {"name": "a", "table": "holding", "address": 0}, {"name": "b", "table": "holding", "address": 3},
        {"name": "c", "table": "holding", "address": 10}, {"name": "d", "table": "coil", "address": 5, "type": "bool"},
    ]))
    [plan] = device_plans(cfg.modbus)
    assert plan["requests"] == 3
    assert [(r["table"], r["start"], r["count"], r["points"]) for r in plan["reads"]] == [
        ("coil", 5, 1, ["d"]), ("holding", 0, 4, ["a", "b"]), ("holding", 10, 1, ["c"])]
    text = render([plan])
    assert "3 reads for 4 points" in text and "holding    3     0     4  a, b" in text
    json.dumps([plan])


def test_edge_agent_plan_json(tmp_path: Path):
    path = tmp_path / "agent.toml"
    path.write_text('[node]\nid = "n"\n[signing]\nkey_file = "k"\n[[modbus.devices]]\nname = "m"\nhost = "h"\n'
                    '[[modbus.devices.points]]\nname = "p"\ntable = "input"\naddress = 7\ntype = "uint32"\n')
    out = subprocess.run([sys.executable, "-m", "agent.cli", "plan", "-c", str(path), "--json"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["reads"] == [
        {"table": "input", "function_code": 4, "start": 7, "count": 2, "points": ["p"]}]


def test_build_without_devices_does_not_import_pymodbus():
    code = ("import sys; from agent.config import validate; from agent.collectors.modbus.collector import build; "
            "c = validate({'node': {'id': 'n'}, 'signing': {'key_file': 'k'}}, 'x'); "
            "assert build(c) == []; print('pymodbus' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
