"""Injected faults: each survived, reported with the right error kind, other devices unaffected."""

from __future__ import annotations

import asyncio

import pytest

from agent.collectors.modbus.collector import build
from agent.core.timing import Backoff
from simulators.faults import Fault

pytestmark = pytest.mark.integration

FAST_BACKOFF = Backoff(base=0.05, cap=0.2)


async def _healthy_cycles_during(faulty, healthy, cycles: int = 2):
    """Run `cycles` polls of the faulty device while polling the healthy one back to back.

    Returns (faulty bodies, healthy bodies). The healthy device runs on its own task, like
    every device under the daemon, so the count of its completed cycles shows whether the
    faulty one held it up.
    """
    healthy_bodies: list[dict] = []
    stop = asyncio.Event()

    async def run_healthy():
        while not stop.is_set():
            healthy_bodies.extend(r.body for r in await healthy.collect())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(run_healthy())
    faulty_bodies = []
    for _ in range(cycles):
        faulty_bodies.extend(r.body for r in await faulty.collect())
    stop.set()
    await task
    return faulty_bodies, healthy_bodies


CASES = [
    (Fault("no_reply", unit=1), "timeout"),
    (Fault("slow", unit=1, delay=3.0), "timeout"),
    (Fault("drop", unit=1), "connection_reset"),
    (Fault("malformed", unit=1), "malformed_reply"),
    (Fault("truncated", unit=1), "malformed_reply"),
] + [(Fault("exception", unit=1, code=code, table="holding"), kind) for code, kind in [
    (1, "illegal_function"), (3, "illegal_data_value"), (4, "device_failure"), (5, "acknowledge"),
    (6, "device_busy"), (7, "negative_acknowledge"), (8, "memory_parity_error"),
    (10, "gateway_path_unavailable"), (11, "gateway_target_failed")]]


@pytest.mark.parametrize("fault,kind", CASES, ids=[f"{f.kind}-{f.code}" if f.kind == "exception" else f.kind
                                                   for f, _ in CASES])
def test_fault_is_reported_survived_and_isolated(fault, kind, make_simulator, sim_device, config_of):
    bad_sim = make_simulator({1: "packaging_line"})
    good_sim = make_simulator({1: "energy_meter"})
    config = config_of([
        sim_device("bad", bad_sim, 1, "packaging_line", timeout=0.5),
        sim_device("good", good_sim, 1, "energy_meter", refused=[{"table": "input", "start": 30, "end": 99}]),
    ])
    bad, good = build(config, backoff=FAST_BACKOFF)

    async def scenario():
        await asyncio.gather(bad.collect(), good.collect())  # connected, identified, healthy
        bad_sim.faults.add(fault)
        faulty, healthy = await _healthy_cycles_during(bad, good)
        bad_sim.faults.clear()
        recovered = None
        for _ in range(50):
            recovered = (await bad.collect())[0].body
            if recovered["status"]["state"] == "online":
                break
            await asyncio.sleep(0.05)
        await bad.close()
        await good.close()
        return faulty, healthy, recovered

    faulty, healthy, recovered = asyncio.run(scenario())

    last = faulty[-1]
    assert last["status"]["errors"].get(kind, 0) >= 1, last["status"]
    assert last["status"]["last_error"]["kind"] == kind
    if fault.kind == "exception":  # only holding registers refused: coils, inputs still flow
        assert last["status"]["state"] == "degraded"
        assert last["point_errors"]["motor_speed"]["kind"] == kind
        assert "running" in last["values"] and "motor_temperature" in last["values"]
    else:
        assert last["status"]["state"] == "offline"
        assert last["status"]["consecutive_failures"] == 2
        # One device-level error instead of one per point: the cause, or the wait before the next probe.
        first = faulty[0]
        assert first["values"] == {} and "point_errors" not in first
        assert first["error"] == {"kind": kind, "message": first["error"]["message"],
                                  "points": len(bad.poller.device.points)}
        assert last["values"] == {} and "point_errors" not in last and last["error"]["kind"] in (kind, "backoff")
    # The healthy device kept its pace: every cycle complete and, while the faulty one sat
    # in timeouts, several of them.
    assert len(healthy) >= (2 if kind == "timeout" else 1)
    assert all(b["status"]["state"] == "online" and len(b["values"]) == 11 for b in healthy)
    assert recovered["status"]["state"] == "online", recovered["status"]
    assert recovered["status"]["consecutive_failures"] == 0


def test_a_slow_device_does_not_hold_up_others_by_cycle_count(make_simulator, sim_device, config_of):
    """While one device spends a whole timeout per cycle, another completes many cycles."""
    bad_sim = make_simulator({1: "packaging_line"})
    good_sim = make_simulator({1: "packaging_line"})
    config = config_of([sim_device("bad", bad_sim, 1, "packaging_line", timeout=1.0),
                        sim_device("good", good_sim, 1, "packaging_line")])
    bad, good = build(config, backoff=FAST_BACKOFF)
    bad_sim.faults.add(Fault("no_reply"))

    async def scenario():
        result = await _healthy_cycles_during(bad, good, cycles=2)
        await bad.close()
        return result

    faulty, healthy = asyncio.run(scenario())
    assert all(b["status"]["state"] == "offline" for b in faulty)
    # Two 1 s timeouts leave room for dozens of 10 ms-paced cycles; demand only a handful.
    assert len(healthy) >= 5


def test_dead_device_backs_off_and_comes_back(make_simulator, sim_device, config_of):
    sim = make_simulator({1: "packaging_line"})
    device = sim_device("plc", sim, 1, "packaging_line")
    host, port = sim.endpoint.rsplit(":", 1)
    sim.stop()  # nothing listens on the port any more
    [collector] = build(config_of([device]), backoff=Backoff(base=0.3, cap=0.3, jitter=0.0))

    async def scenario():
        first = (await collector.collect())[0].body
        second = (await collector.collect())[0].body  # immediately: inside the backoff window
        return first, second

    first, second = asyncio.run(scenario())
    assert first["status"]["state"] == "offline"
    assert first["status"]["errors"] == {"connect_failed": 1}
    assert second["error"]["kind"] == "backoff" and "point_errors" not in second
    assert second["status"]["last_error"]["kind"] == "connect_failed"
    assert second["status"]["errors"] == {"connect_failed": 1}  # no second connection attempt yet
    assert second["status"]["consecutive_failures"] == 2


def test_hole_inside_a_bridged_read_is_learned_and_other_points_keep_flowing(make_simulator, sim_device,
                                                                             config_of):
    sim = make_simulator({1: "energy_meter"})  # its input registers 30-99 are illegal addresses
    [collector] = build(config_of([sim_device("meter", sim, 1, "energy_meter", max_gap=100)]))
    first_plan = list(collector.poller.reads)
    assert any(r.table == "input" and r.start == 0 and r.count == 108 for r in first_plan)

    async def scenario():
        bodies = [(await collector.collect())[0].body for _ in range(3)]
        await collector.close()
        return bodies

    first, second, third = asyncio.run(scenario())
    assert first["status"]["state"] == "online"  # the split reads delivered every point in the same cycle
    assert len(first["values"]) == 11 and "point_errors" not in first
    assert collector.poller.learned_holes == {"input": [(22, 99)]}  # probed: only the real hole
    inputs = [r for r in collector.poller.reads if r.table == "input"]
    assert [(r.start, r.end) for r in inputs] == [(0, 21), (100, 107)]
    assert second["requests"] == third["requests"] == len(collector.poller.reads)
    assert second["status"]["errors"] == {"illegal_data_address": 1}  # learned once, not every cycle


def test_refused_single_point_is_reported_and_the_rest_flows(make_simulator, sim_device, config_of):
    sim = make_simulator({1: "packaging_line"})
    sim.faults.add(Fault("hole", unit=1, table="holding", start=10, end=10))  # fault_code's register
    [collector] = build(config_of([sim_device("line", sim, 1, "packaging_line")]))

    async def scenario():
        bodies = [(await collector.collect())[0].body for _ in range(2)]
        await collector.close()
        return bodies

    first, second = asyncio.run(scenario())
    for body in (first, second):
        assert body["status"]["state"] == "degraded"
        assert body["point_errors"] == {"fault_code": {"kind": "illegal_data_address",
                                                       "message": body["point_errors"]["fault_code"]["message"]}}
        assert {"motor_speed", "motor_current", "part_counter", "recipe"} <= set(body["values"])


def test_deadband_and_report_on_change(make_simulator, sim_device, config_of):
    sim = make_simulator({1: "packaging_line"})
    device = sim_device("line", sim, 1, "packaging_line")
    for point in device["points"]:
        if point["name"] == "motor_speed":
            point["deadband"] = 5.0
        if point["name"] == "recipe":
            point["on_change"] = True
    [collector] = build(config_of([device]))
    sim.pin(1, "motor_speed", 1000.0)

    async def scenario():
        bodies = [(await collector.collect())[0].body]
        sim.pin(1, "motor_speed", 1004.0)  # within the deadband
        bodies.append((await collector.collect())[0].body)
        sim.pin(1, "motor_speed", 1010.0)
        sim.pin(1, "recipe", "OTHER")
        bodies.append((await collector.collect())[0].body)
        await collector.close()
        return bodies

    first, second, third = asyncio.run(scenario())
    assert first["values"]["motor_speed"] == 1000.0 and first["values"]["recipe"] == "PKG-500G-V2"
    assert "motor_speed" not in second["values"] and set(second["unchanged"]) == {"motor_speed", "recipe"}
    assert third["values"]["motor_speed"] == 1010.0 and third["values"]["recipe"] == "OTHER"


@pytest.mark.parametrize("kind", ["rtu", "rtu_over_tcp"])
@pytest.mark.parametrize("fault,error", [(Fault("malformed", unit=2), "malformed_reply"),
                                         (Fault("exception", unit=2, code=6), "device_busy")])
def test_fault_on_one_unit_of_a_shared_rtu_line(kind, fault, error, make_simulator, sim_device, config_of):
    """A unit failing on a shared RTU line reports the right kind and its neighbour keeps
    every value; a unit that stops answering is then left alone for its backoff, so it no
    longer costs the line a timeout every cycle. A unit that answers (with an exception)
    keeps being read."""
    sim = make_simulator({1: "packaging_line", 2: "packaging_line"}, kind)
    config = config_of([sim_device("first", sim, 1, "packaging_line", kind),
                        sim_device("second", sim, 2, "packaging_line", kind, identity=False)])
    first, second = build(config, backoff=Backoff(base=60.0, cap=60.0, jitter=0.0))
    sim.faults.add(fault)

    async def scenario():
        bodies = []
        for _ in range(3):
            bodies.append(await asyncio.gather(first.collect(), second.collect()))
        await first.close()
        return bodies

    cycles = asyncio.run(scenario())
    for healthy, failing in cycles:
        assert healthy[0].body["status"]["state"] == "online"
        assert len(healthy[0].body["values"]) == 13
        assert failing[0].body["status"]["last_error"]["kind"] == error
        assert failing[0].body["values"] == {}
        assert failing[0].body["status"]["consecutive_failures"] >= 1
    if fault.kind == "malformed":
        assert sim.request_count(unit=2) == 1  # the first read failed; the rest waits for the backoff
        assert cycles[-1][1][0].body["error"]["kind"] == "backoff"
    else:
        assert sim.request_count(unit=2) == 3 * len(second.poller.reads)


def _hundred_point_profile(path) -> str:
    """A 100-point device: 25 each of uint16, int32 (holding), float32 (input) and coils, with long names."""
    lines = ['name = "hundred"', "[sizes]", "coil = 32", "discrete = 1", "input = 64", "holding = 160"]
    for i in range(25):
        for name, table, address, type_, behaviour in (
                (f"line_speed_setpoint_{i:02d}", "holding", i, "uint16", f"value = {i}"),
                (f"energy_counter_total_{i:02d}", "holding", 100 + 2 * i, "int32", f"value = {1000 + i}"),
                (f"bearing_temperature_{i:02d}", "input", 2 * i, "float32",
                 "sine = { base = 60.0, amplitude = 5.0, period = 30.0 }"),
                (f"conveyor_motor_running_{i:02d}", "coil", i, "bool", "value = true")):
            lines += ["[[points]]", f'name = "{name}"', f'table = "{table}"', f"address = {address}",
                      f'type = "{type_}"', behaviour]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_an_offline_device_message_is_one_error_and_under_a_kilobyte(tmp_path, make_simulator, sim_device,
                                                                     config_of):
    """100 points: silent (timeout, then waiting to probe again), refusing connections, a name
    that does not resolve: each message carries one device-level error, not one per point."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.trust.envelope import seal

    profile = _hundred_point_profile(tmp_path / "hundred.toml")
    sim = make_simulator({1: profile})
    online, silent = sim_device("online", sim, 1, profile), sim_device("silent", sim, 1, profile)
    sim_refusing = make_simulator({1: profile})
    refusing = sim_device("refusing", sim_refusing, 1, profile)
    sim_refusing.stop()
    unresolved = dict(sim_device("unresolved", sim, 1, profile), host="plc-7.no-such-host.invalid")
    key = Ed25519PrivateKey.generate()

    def signed_size(body: dict) -> int:
        return len(seal(key, kid="k" * 16, node="panel-pc-0042", topic="edge/panel-pc-0042/modbus/" + body["device"],
                        kind="modbus", session="s" * 16, seq=1, ts_ms=1_764_250_000_000, body=body))

    async def bodies_of(device: dict, cycles: int) -> list[dict]:
        [collector] = build(config_of([device]), backoff=Backoff(base=60.0, cap=60.0, jitter=0.0))
        out = [(await collector.collect())[0].body for _ in range(cycles)]
        await collector.close()
        return out

    async def scenario():
        healthy = await bodies_of(online, 1)
        sim.faults.add(Fault("no_reply"))
        return healthy, await bodies_of(silent, 2), await bodies_of(refusing, 2), await bodies_of(unresolved, 2)

    healthy, *offline = asyncio.run(scenario())
    assert len(healthy[0]["values"]) == 100 and signed_size(healthy[0]) > 2048
    kinds = []
    for body in (b for bodies in offline for b in bodies):
        assert body["status"]["state"] == "offline" and body["values"] == {}
        assert "point_errors" not in body and body["error"]["points"] == 100
        assert signed_size(body) <= 1024, (signed_size(body), body)
        kinds.append(body["error"]["kind"])
    assert kinds == ["timeout", "backoff", "connect_failed", "backoff", "dns_failed", "backoff"]
