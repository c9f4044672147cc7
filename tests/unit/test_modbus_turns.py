"""Turns on a shared line and its idle slots, on a clock the test moves (no sockets)."""

from __future__ import annotations

import asyncio
import math

from agent.collectors.modbus.turns import Turns


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def slot(turns: Turns, want: float = 0.5, floor: float = 0.05, guard: float = 0.05, until: float = math.inf,
         asking: str = "silent"):
    async def take() -> float | None:
        async with turns.idle_slot(asking, want, floor, guard, until) as granted:
            return granted

    return asyncio.ensure_future(take())


def test_an_idle_line_grants_the_whole_timeout_and_a_neighbour_due_shortens_it():
    async def scenario():
        clock = Clock()
        turns = Turns(clock)
        assert await slot(turns) == 0.5
        turns.expect("healthy", 1.0)
        clock.t += 0.7  # the neighbour is due in 0.3 s: 0.25 s after the guard
        assert round(await slot(turns), 6) == 0.25
        assert await slot(turns, asking="healthy") == 0.5  # its own next turn does not shorten its probe

    asyncio.run(scenario())


def test_no_slot_while_a_neighbour_is_due_soon_then_one_after_its_turn():
    async def scenario():
        clock = Clock()
        turns = Turns(clock)
        turns.expect("healthy", 1.0)
        clock.t += 0.93  # due in 0.07 s: less than floor + guard
        probe = slot(turns)
        await settle()
        assert not probe.done()
        clock.t += 0.07
        turns.expect("healthy", 1.0)  # the neighbour's cycle starts: due again in 1 s
        async with turns.turn():
            await settle()
            assert not probe.done()  # the line is busy with the neighbour's turn
        assert round(await probe, 6) == 0.5
        assert not turns.busy

    asyncio.run(scenario())


def test_no_slot_by_the_deadline_yields_none_without_taking_the_line():
    async def scenario():
        clock = Clock()
        turns = Turns(clock)
        turns.expect("healthy", 1.0)
        clock.t += 0.99
        assert await slot(turns, until=clock.t) is None
        assert not turns.busy

    asyncio.run(scenario())


def test_a_neighbour_that_stopped_polling_or_went_silent_is_not_waited_for():
    async def scenario():
        clock = Clock()
        turns = Turns(clock)
        turns.expect("gone", 1.0)
        clock.t += 2.5  # more than an interval overdue: it no longer polls
        assert turns.room() == math.inf
        turns.expect("silent", 1.0)
        clock.t += 0.99
        turns.forget("silent")
        assert await slot(turns) == 0.5

    asyncio.run(scenario())


def test_a_neighbour_due_now_blocks_probes_until_it_has_had_its_turn():
    async def scenario():
        clock = Clock()
        turns = Turns(clock)
        turns.expect("healthy", 1.0)
        clock.t += 1.01  # due, its task not yet run
        assert turns.room() == 0.0
        probe = slot(turns)
        await settle()
        assert not probe.done()
        turns.expect("healthy", 1.0)
        async with turns.turn():
            pass
        assert await probe == 0.5

    asyncio.run(scenario())
