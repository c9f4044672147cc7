"""Every table, type and byte order over TCP, RTU on a pty, and RTU over TCP; shared lines;
the read-only guarantee."""

from __future__ import annotations

import asyncio
import json
import tomllib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.collectors.modbus.collector import build
from agent.collectors.modbus.transports import READ_FUNCTION_CODES, ReadOnlyViolation
from agent.core.reading import Priority
from agent.trust.envelope import seal
from simulators.plc import PROFILE_DIR

pytestmark = pytest.mark.integration

PATTERN = tomllib.loads((PROFILE_DIR / "test_pattern.toml").read_text())


def expected_pattern() -> dict:
    """The values test_pattern.toml declares, as the agent must report them."""
    out = {}
    for point in PATTERN["points"]:
        value = point["value"]
        if point["type"] in ("bool", "bit"):
            value = bool(value)
        elif isinstance(value, int) and abs(value) > 2**53 - 1:
            value = str(value)
        out[point["name"]] = value
    return out


async def _collect(collector, cycles: int = 1):
    readings = []
    for _ in range(cycles):
        readings += await collector.collect()
    await collector.close()
    return readings


@pytest.mark.parametrize("kind", ["tcp", "rtu", "rtu_over_tcp"])
def test_every_table_type_and_byte_order(kind, make_simulator, sim_device, config_of):
    sim = make_simulator({3: "test_pattern"}, kind)
    config = config_of([sim_device("pattern", sim, 3, "test_pattern", kind, timeout=2.0)])
    [collector] = build(config)
    assert collector.name == "modbus/pattern" and collector.interval == 1

    [reading] = asyncio.run(_collect(collector))

    assert (reading.kind, reading.subject, reading.priority) == ("modbus", "pattern", Priority.BULK)
    body = reading.body
    expected = expected_pattern()
    assert body["values"].keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, float):
            assert body["values"][name] == pytest.approx(value, rel=1e-9), name
        else:
            assert body["values"][name] == value, name
    assert body["status"]["state"] == "online"
    assert body["status"]["consecutive_failures"] == 0
    assert body["identity"] == {"vendor_name": "Edge Agent Project", "product_code": "TEST-PATTERN", "revision": "1.0"}
    assert "point_errors" not in body
    # Every value the codec produces fits the signed envelope (no NaN, no int beyond 2^53).
    key = Ed25519PrivateKey.generate()
    sealed = seal(key, kid="k", node="n", topic="edge/n/modbus/pattern", kind="modbus", session="s", seq=1,
                  ts_ms=reading.ts_ms, body=body)
    assert json.loads(sealed)["body"]["values"]["u64_big"] == "18000000000000000000"
    # One request per planned read plus the identification: the plan is what hits the wire.
    assert body["requests"] == len(collector.poller.reads) + 1
    assert sim.request_count(unit=3) == body["requests"]


def test_only_read_function_codes_reach_the_device(make_simulator, sim_device, config_of):
    sim = make_simulator({1: "packaging_line"})
    [collector] = build(config_of([sim_device("line", sim, 1, "packaging_line")]))

    async def scenario():
        await collector.collect()
        client = collector.poller.line._client
        with pytest.raises(ReadOnlyViolation):
            await client.write_register(0, 1, device_id=1)
        with pytest.raises(ReadOnlyViolation):
            await client.write_coil(0, True, device_id=1)
        await collector.collect()  # the line still works after refusing
        await collector.close()

    asyncio.run(scenario())
    seen = {fc for (_, fc) in sim.requests}
    assert seen <= READ_FUNCTION_CODES
    assert sim.request_count(function_code=6) == sim.request_count(function_code=5) == 0
    assert sim.request_count(function_code=3) >= 2


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
def test_units_sharing_a_line_share_one_connection_and_take_turns(kind, make_simulator, sim_device, config_of):
    sim = make_simulator({1: "packaging_line", 2: "energy_meter"}, kind)
    config = config_of([sim_device("line", sim, 1, "packaging_line", kind),
                        sim_device("meter", sim, 2, "energy_meter", kind,
                                   refused=[{"table": "input", "start": 30, "end": 99}])])
    line_col, meter_col = build(config)
    assert line_col.poller.line is meter_col.poller.line

    async def scenario():
        results = []
        for _ in range(3):  # both devices polled at the same moment, as the daemon's grid does
            results.append(await asyncio.gather(line_col.collect(), meter_col.collect()))
        await line_col.close()
        return results

    for line_readings, meter_readings in asyncio.run(scenario()):
        assert line_readings[0].body["status"]["state"] == "online"
        assert meter_readings[0].body["status"]["state"] == "online"
        assert meter_readings[0].body["identity"]["product_code"] == "EM-340"
        assert line_readings[0].body["identity"]["product_code"] == "PKG-LINE-3"
        assert 200 < meter_readings[0].body["values"]["voltage_l1"] < 260
        assert line_readings[0].body["values"]["recipe"] == "PKG-500G-V2"
    if kind == "tcp":
        assert sim.connections == 1
