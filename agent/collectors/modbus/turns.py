"""Turns on a shared line, and the line's idle time.

Devices on one serial line or TCP gateway take turns: one request at a time, as RS-485 is
half duplex. Each answering device says when it is due again (`expect`, at the start of its
cycle). A device that stopped answering is not asked inside those turns: it waits for an
idle slot (`idle_slot`): the line free, and no answering device due for at least the probe's
shortest useful timeout. The slot's length caps the probe's timeout, so a dead unit holds
the line only while nobody else needs it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class Turns:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.now = clock
        self._lock = asyncio.Lock()
        self._due: dict[str, tuple[float, float]] = {}  # answering device -> (due again at, its interval)
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def expect(self, device: str, interval: float) -> None:
        """`device` answers and starts a cycle now; it will want the line again in `interval` s."""
        self._due[device] = (self.now() + interval, interval)
        self._changed()

    def forget(self, device: str) -> None:
        """`device` stopped answering: its turns are no longer kept free."""
        self._due.pop(device, None)
        self._changed()

    def room(self, asking: str = "") -> float:
        """Seconds until the next answering device other than `asking` is due (0 if one is due
        now, inf if none). A device more than its interval overdue has stopped polling and is
        not waited for."""
        now = self.now()
        return max(0.0, min((at - now for device, (at, interval) in self._due.items()
                             if at + interval > now and device != asking), default=math.inf))

    def _settles_in(self) -> float:
        """Seconds until the room changes by the clock alone: an answering device comes due,
        or an overdue one is given up on."""
        now = self.now()
        return min((at - now if at > now else at + interval - now
                    for at, interval in self._due.values() if at + interval > now), default=math.inf)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The line, as soon as the turns before this one are done."""
        async with self._lock:
            try:
                yield
            finally:
                self._changed()

    @asynccontextmanager
    async def idle_slot(self, asking: str, want: float, floor: float, guard: float,
                        until: float) -> AsyncIterator[float | None]:
        """The line for device `asking`, once it is free and no other answering device is due
        for `floor + guard` s.

        Yields the time the holder may use: `want`, or less when another device is due sooner
        (less `guard`, kept for reconnecting and scheduling slack); yields None if no such slot
        came by the clock time `until`.
        """
        while True:
            granted = min(want, self.room(asking) - guard)
            if not self.busy and granted >= floor:
                break
            left = until - self.now()
            if left <= 0:
                yield None
                return
            await self._wait_for_change(min(left, self._settles_in()))
        async with self.turn():
            yield granted

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_for_change(self, timeout: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
