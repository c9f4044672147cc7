"""What `edge-agent status` and the node status say about each collector/device."""

from __future__ import annotations

import asyncio

from agent.core.reading import Reading
from agent.daemon.collecting import CollectorHealth, reported_state, run_collector


def test_a_device_reading_reports_its_own_state() -> None:
    offline = Reading("modbus", {"status": {"state": "offline", "last_error": {"kind": "timeout"}}}, "plc")
    assert reported_state([offline]) == ("offline", "{'kind': 'timeout'}")
    assert reported_state([Reading("modbus", {"status": {"state": "online", "last_error": "old"}})]) == ("online", "")
    assert reported_state([Reading("patches", {"status": "ok"})]) is None


class Flaky:
    name, interval = "flaky", 0.01

    def __init__(self, health: CollectorHealth) -> None:
        self.calls = 0
        self.health = health
        self.seen: list[tuple[str, int]] = []

    async def collect(self) -> list[Reading]:
        self.calls += 1
        self.seen.append((self.health.state, self.health.failures))
        if self.calls == 1:
            raise TimeoutError("no answer")
        return [Reading("modbus", {"status": {"state": "degraded", "last_error": "exception 2"}}, "plc")]

    async def close(self) -> None:
        pass


def test_run_collector_tracks_failures_and_reported_state() -> None:
    health = CollectorHealth()
    collector = Flaky(health)
    emitted: list[list[Reading]] = []

    async def main() -> None:
        stop = asyncio.Event()

        def emit(readings: list[Reading]) -> None:
            emitted.append(readings)
            stop.set()

        await run_collector(collector, emit, stop, health=health)

    asyncio.run(main())
    assert collector.seen == [("starting", 0), ("failing", 1)] and emitted
    assert (health.state, health.last_error, health.failures) == ("degraded", "exception 2", 0)
    assert health.last_ok_ms is not None


def test_an_offline_device_does_not_count_as_ok() -> None:
    class Offline(Flaky):
        async def collect(self) -> list[Reading]:
            return [Reading("modbus", {"status": {"state": "offline", "last_error": "refused"}}, "plc")]

    health = CollectorHealth()

    async def main() -> None:
        stop = asyncio.Event()
        await run_collector(Offline(health), lambda readings: stop.set(), stop, health=health)

    asyncio.run(main())
    assert (health.state, health.last_error, health.last_ok_ms) == ("offline", "refused", None)
