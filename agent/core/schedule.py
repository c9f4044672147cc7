"""The poll grid: pure arithmetic, so cycles never drift however long they run."""

from __future__ import annotations

import math
from collections import Counter


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


def spread_phases(slots: list[tuple[float, str]]) -> list[float]:
    """A start offset per collector, given its (interval, group): the groups sharing an
    interval are spread evenly across it, and the collectors of one group start together.

    Forty devices on forty lines polled every second then wake 25 ms apart instead of all at
    once, so the last of them is not late by the others' CPU time and the load on the host
    stays flat. Devices on one line form one group: they take turns on the line anyway, so
    one wake-up starts them all, their requests go back to back and the rest of the cycle
    is the line's idle time (for probes of silent units). Apart, each device's cycle would
    cost the host its own wake-ups (of the event loop and of the publisher), which on a
    small gateway cost more than the work itself.
    """
    groups = _groups_by_interval(slots)
    return [interval * groups[interval].index(group) / len(groups[interval]) for interval, group in slots]


def lead_ins(slots: list[tuple[float, str]]) -> list[float]:
    """How much later than its group's phase (`spread_phases`) each collector runs its first
    cycle: the members of a group spread across their group's share of the interval, so no
    two first cycles coincide. At start-up every device is still unknown and is probed alone
    in its line's idle time; probes started together would compete for that time (a silent
    unit's probe could use up a healthy neighbour's). From the second cycle on a group runs
    together. With a single group this is the even spread of the whole interval."""
    groups = _groups_by_interval(slots)
    members = Counter(slots)
    out, rank = [], dict.fromkeys(members, 0)
    for interval, group in slots:
        out.append(interval / len(groups[interval]) * rank[interval, group] / members[interval, group])
        rank[interval, group] += 1
    return out


def _groups_by_interval(slots: list[tuple[float, str]]) -> dict[float, list[str]]:
    """The distinct groups of each interval, in the order they first appear."""
    groups: dict[float, dict[str, None]] = {}  # a dict keeps first-seen order, without repeats
    for interval, group in slots:
        groups.setdefault(interval, {})[group] = None
    return {interval: list(names) for interval, names in groups.items()}
