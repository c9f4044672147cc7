"""The poll grid: pure arithmetic, so cycles never drift however long they run."""

from __future__ import annotations

import math


def next_tick(start: float, interval: float, now: float) -> float:
    """The first grid point `start + k * interval` strictly after `now`.

    A cycle that overran skips the ticks it missed instead of firing them in a burst.
    """
    if now < start:
        return start
    return start + interval * (math.floor((now - start) / interval) + 1)


def missed_ticks(start: float, interval: float, scheduled: float, now: float) -> int:
    """How many grid points between `scheduled` (exclusive) and `now` were skipped."""
    return max(0, math.floor((now - start) / interval) - round((scheduled - start) / interval))


def spread_phases(intervals: list[float]) -> list[float]:
    """A start offset per collector: those sharing an interval are spread evenly across it.

    Forty devices polled every second then wake 25 ms apart instead of all at once, so the
    last of them is not late by the others' CPU time and the load on the host stays flat.
    """
    groups: dict[float, list[int]] = {}
    for index, interval in enumerate(intervals):
        groups.setdefault(interval, []).append(index)
    phases = [0.0] * len(intervals)
    for interval, members in groups.items():
        for rank, index in enumerate(members):
            phases[index] = interval * rank / len(members)
    return phases
