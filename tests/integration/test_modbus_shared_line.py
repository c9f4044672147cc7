"""A silent unit on a shared line, run as the daemon runs devices (each on its own task on the
grid, the units of one line together from their second cycle on): it is asked only by probes
(one request, no retries) in the line's idle time, its neighbours read every value every
cycle, and it is read again once it answers. Cadence figures are in bench/modbus.py, not here."""

from __future__ import annotations

import asyncio

import pytest

from agent.collectors.modbus.collector import build
from agent.core.schedule import lead_ins, spread_phases
from agent.core.timing import Backoff
from agent.daemon.collecting import run_collector
from simulators.faults import Fault

pytestmark = pytest.mark.integration


async def _run_as_daemon(collectors, seconds: float, halfway) -> dict[str, list[dict]]:
    bodies: dict[str, list[dict]] = {c.poller.device.name: [] for c in collectors}
    stop = asyncio.Event()

    def emit_to(name):
        return lambda readings: bodies[name].extend(r.body for r in readings)

    slots = [(c.interval, c.phase_group) for c in collectors]
    tasks = [asyncio.create_task(run_collector(c, emit_to(c.poller.device.name), stop, phase=p, lead_in=lead))
             for c, p, lead in zip(collectors, spread_phases(slots), lead_ins(slots))]
    await asyncio.sleep(seconds / 2)
    halfway()
    await asyncio.sleep(seconds / 2)
    stop.set()
    await asyncio.gather(*tasks)
    await collectors[0].close()
    return bodies


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
def test_a_silent_unit_is_only_probed_and_its_neighbours_keep_every_value(kind, make_simulator, sim_device,
                                                                          config_of):
    sim = make_simulator({1: "packaging_line", 2: "packaging_line", 3: "packaging_line"}, kind)
    devices = [sim_device(f"unit{u}", sim, u, "packaging_line", kind, interval=0.5, timeout=0.4, retries=2)
               for u in (1, 2, 3)]
    collectors = build(config_of(devices), backoff=Backoff(base=0.2, cap=0.4, jitter=0.0))
    silence = sim.faults.add(Fault("no_reply", unit=3))
    silent_requests: list[int] = []

    def speak_again():
        silent_requests.append(sim.request_count(unit=3))
        sim.faults.remove(silence)

    bodies = asyncio.run(_run_as_daemon(collectors, 4.0, speak_again))

    for name in ("unit1", "unit2"):
        assert len(bodies[name]) >= 5
        for body in bodies[name]:
            assert body["status"]["state"] == "online", body["status"]
            assert len(body["values"]) == 13 and "error" not in body
    silent = [b for b in bodies["unit3"] if b["status"]["state"] == "offline"]
    assert len(silent) >= 2
    for body in silent:
        assert body["error"]["kind"] in ("timeout", "backoff"), body["error"]
        assert body["requests"] <= 1  # a probe: the first read alone, none of the 2 retries, no identification
    probes = sum(b["requests"] for b in silent)
    assert probes >= 2 and silent_requests == [probes]  # the simulator saw exactly the probes
    assert bodies["unit3"][-1]["status"]["state"] == "online"  # answered a probe, then read as usual
    assert len(bodies["unit3"][-1]["values"]) == 13
