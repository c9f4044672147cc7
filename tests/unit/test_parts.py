"""Supervised daemon parts: an unexpected error is logged and the part restarted with backoff;
one that keeps failing is given up, which the daemon turns into a restart by systemd."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.core.timing import Backoff
from agent.daemon import parts
from agent.daemon.parts import PartHealth, supervise


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch) -> None:
    monkeypatch.setattr(parts, "RESTART", Backoff(base=0.01, cap=0.02))


def test_a_failing_part_is_logged_with_its_cause_and_started_again(caplog) -> None:
    calls = []

    async def body() -> None:
        calls.append(len(calls))
        if len(calls) < 3:
            raise KeyError(f"boom {len(calls)}")
        stop.set()

    async def main() -> None:
        await supervise("report", body, health, stop)

    health, stop = PartHealth(), asyncio.Event()
    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert calls == [0, 1, 2]
    assert (health.state, health.restarts, health.last_error) == ("stopped", 2, "KeyError('boom 2')")
    failures = [r for r in caplog.records if "part failed, restarting part=report" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None  # the traceback is in the journal


def test_a_part_that_keeps_failing_is_given_up(caplog) -> None:
    async def body() -> None:
        raise RuntimeError("always")

    health, stop = PartHealth(), asyncio.Event()
    with caplog.at_level(logging.CRITICAL):
        asyncio.run(supervise("readiness", body, health, stop))
    assert (health.state, health.restarts) == ("failed", parts.MAX_FAILURES)
    assert any("part gave up part=readiness" in r.getMessage() for r in caplog.records)


def test_a_part_that_ran_steadily_before_failing_starts_its_count_afresh() -> None:
    now = [0.0]
    runs = []

    async def body() -> None:
        runs.append(now[0])
        now[0] += parts.STEADY_S if len(runs) % 2 else 0.0  # every other run lasts a minute
        if len(runs) >= 3 * parts.MAX_FAILURES:
            stop.set()
            return
        raise OSError("transient")

    health, stop = PartHealth(), asyncio.Event()
    asyncio.run(supervise("status-file", body, health, stop, clock=lambda: now[0]))
    assert health.state == "stopped" and len(runs) == 3 * parts.MAX_FAILURES
