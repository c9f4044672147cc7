"""Hostile replies from the real simulator over real sockets (TCP, and RTU on a pty pair):
each is refused as `malformed_reply` and never read as a value, the unit's neighbour on the
same line keeps every value, and the unit is read again once its replies are sound."""

from __future__ import annotations

import asyncio

import pytest

from agent.collectors.modbus.collector import build
from agent.core.timing import Backoff
from simulators.faults import Fault
from simulators.plc import load_profile
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FAST_BACKOFF = Backoff(base=0.05, cap=0.2)
HOSTILE = ["wrong_function", "wrong_unit", "byte_count", "oversize", "flood"]
HOLDING_POINTS = {p.name for p in load_profile("packaging_line").points if p.table == "holding"}


async def _until_online(collector, cycles: int = 100) -> dict:
    body: dict = {}
    for _ in range(cycles):
        body = (await collector.collect())[0].body
        if body["status"]["state"] == "online":
            return body
        await asyncio.sleep(0.05)
    return body


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_reply_is_malformed_never_a_value(hostile, kind, make_simulator, sim_device, config_of):
    sim = make_simulator({1: "packaging_line", 2: "packaging_line"}, kind)
    config = config_of([sim_device("target", sim, 1, "packaging_line", kind, identity=False),
                        sim_device("neighbour", sim, 2, "packaging_line", kind, identity=False)])
    target, neighbour = build(config, backoff=FAST_BACKOFF)
    assert target.poller.line is neighbour.poller.line
    fault = sim.faults.add(Fault(hostile, unit=1, table="holding"))

    async def scenario():
        bodies = []
        for _ in range(3):
            bodies.append(await asyncio.gather(target.collect(), neighbour.collect()))
        sim.faults.remove(fault)
        recovered = await _until_online(target)
        healthy_after = (await neighbour.collect())[0].body
        await target.close()
        return bodies, recovered, healthy_after

    cycles, recovered, healthy_after = asyncio.run(scenario())
    hit = [t[0].body for t, _ in cycles]
    assert hit[0]["status"]["last_error"]["kind"] == "malformed_reply", hit[0]["status"]
    assert hit[0]["status"]["errors"].get("malformed_reply", 0) >= 1
    assert hit[0]["status"]["state"] == "degraded" and "point_errors" not in hit[0]
    assert hit[0]["error"]["kind"] == "malformed_reply" and hit[0]["error"]["points"] == len(HOLDING_POINTS)
    for body in hit:
        # Coils and inputs come first in the plan; no holding register value is ever taken from a hostile reply.
        assert not HOLDING_POINTS & set(body["values"]), body["values"]
        assert body["status"]["state"] in ("degraded", "offline")
    if hostile != "flood" or kind == "tcp":
        # A babbling RS-485 line is lost to every unit on it; anywhere else the neighbour never notices.
        for _, (reading,) in cycles:
            assert reading.body["status"]["state"] == "online", reading.body["status"]
            assert len(reading.body["values"]) == 13
    assert recovered["status"]["state"] == "online", recovered["status"]
    assert set(recovered["values"]) >= HOLDING_POINTS
    assert healthy_after["status"]["state"] == "online"


def test_a_flood_is_cut_off_by_dropping_the_connection(make_simulator, sim_device, config_of):
    """The agent reads a flood only until it sees it is not the reply, then closes the connection,
    which ends the flood (the simulator streams only while the connection is open)."""
    sim = make_simulator({1: "packaging_line"})
    [collector] = build(config_of([sim_device("target", sim, 1, "packaging_line")]), backoff=FAST_BACKOFF)
    sim.faults.add(Fault("flood", unit=1))

    async def scenario():
        body = (await collector.collect())[0].body
        await collector.close()
        return body

    body = asyncio.run(scenario())
    assert body["error"]["kind"] == "malformed_reply"
    assert "unit id 2" in body["error"]["message"] or "transaction id" in body["error"]["message"]
    wait_until(lambda: sim.floods == 0, "the flood to end with the connection")


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
def test_a_reply_to_no_request_drops_the_connection(kind, make_simulator, sim_device, config_of):
    """A second copy of a reply, arriving while no request is outstanding, is never taken for
    the reply to the next request: the agent stops listening to that connection at once."""
    sim = make_simulator({1: "packaging_line"}, kind)
    [collector] = build(config_of([sim_device("target", sim, 1, "packaging_line", kind)]), backoff=FAST_BACKOFF)
    sim.faults.add(Fault("unsolicited", unit=1, table="holding", delay=0.05))

    async def scenario():
        first = (await collector.collect())[0].body
        connected = collector.poller.line.connected
        await asyncio.sleep(0.3)  # the copies arrive
        dropped = not collector.poller.line.connected
        second = (await collector.collect())[0].body
        await collector.close()
        return first, connected, dropped, second

    first, connected, dropped, second = asyncio.run(scenario())
    assert first["status"]["state"] == "online" and connected
    assert dropped
    assert second["status"]["state"] == "online" and set(second["values"]) >= HOLDING_POINTS


def test_a_late_answer_is_never_read_as_the_next_reply(make_simulator, sim_device, config_of):
    sim = make_simulator({1: "packaging_line"})
    [collector] = build(config_of([sim_device("target", sim, 1, "packaging_line", timeout=0.2)]),
                        backoff=Backoff(base=0.01, cap=0.01, jitter=0.0))
    slow = sim.faults.add(Fault("slow", unit=1, delay=0.5))

    async def scenario():
        late = (await collector.collect())[0].body  # gives up after 0.2 s; the answer comes at 0.5 s
        sim.faults.remove(slow)
        again = await _until_online(collector)
        await asyncio.sleep(0.5)  # the late answer has come and gone
        last = (await collector.collect())[0].body
        await collector.close()
        return late, again, last

    late, again, last = asyncio.run(scenario())
    assert late["error"]["kind"] == "timeout"
    assert again["status"]["state"] == "online" and last["status"]["state"] == "online"
    assert sim.connections == 2  # the timed-out connection was dropped before the late answer came


def test_a_name_that_does_not_resolve_is_its_own_error_kind(config_of):
    device = {"name": "nowhere", "host": "plc.no-such-host.invalid", "port": 502, "unit": 1, "timeout": 2.0,
              "points": [{"name": "speed", "table": "holding", "address": 0, "type": "uint16"}]}
    [collector] = build(config_of([device]), backoff=Backoff(base=60.0, cap=60.0, jitter=0.0))

    async def scenario():
        bodies = [(await collector.collect())[0].body for _ in range(2)]
        await collector.close()
        return bodies

    first, second = asyncio.run(scenario())
    assert first["status"]["state"] == "offline"
    assert first["error"]["kind"] == "dns_failed" and "cannot resolve plc.no-such-host.invalid" in \
        first["error"]["message"]
    assert first["status"]["errors"] == {"dns_failed": 1}
    assert second["error"]["kind"] == "backoff"  # not looked up again before the backoff ends
    assert second["status"]["errors"] == {"dns_failed": 1}
    assert second["status"]["last_error"]["kind"] == "dns_failed"
