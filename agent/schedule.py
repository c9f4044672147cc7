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
