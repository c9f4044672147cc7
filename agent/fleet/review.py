"""The joint review's figures, as pure functions over the fleet store's history rows: verdict
segments and time per level, device availability against the tolerated downtime, the security
backlog over time, time-to-patch and patch-SLA compliance, hardening checks that flipped.
agent.fleet.store.history reads the rows (`History`); agent.fleet.report assembles the review
document from these figures. No clock, no database here: `now_ms` is passed in.

Definitions (docs/readiness.md, "The joint review"):
- a device's *observed* time runs from the later of the window's start and its first report
  to now; *availability* is the share of it outside outage episodes;
- an outage *breaches* its tolerance when its whole length (also the part before the window)
  reaches the tolerated downtime it had when it began;
- *time-to-patch* runs from a security update's first sighting to its first patches report
  without it; *patch-SLA compliance* is, of the updates closed in the window or still open
  past their SLA at its end, the share closed within their SLA.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.readiness.model import LEVELS
from agent.readiness.policy import Policy

Transition = tuple[int, str, str, str]  # ms, level, security, operations


@dataclass
class History:
    """What the store holds about the window [since_ms, now_ms], as plain rows."""

    since_ms: int
    now_ms: int
    nodes: list[dict[str, Any]] = field(default_factory=list)  # node, site, area, first_ms, last_heard_ms, policy, ...
    transitions: dict[str, list[Transition]] = field(default_factory=dict)  # with the last one before the window
    outages: list[dict[str, Any]] = field(default_factory=list)  # node, device, start_ms, end_ms, criticality, ...
    patches: list[dict[str, Any]] = field(default_factory=list)  # node, package, severity, first_seen_ms, gone_ms
    posture: list[dict[str, Any]] = field(default_factory=list)  # node, check_id, ms, status, evidence
    devices: list[dict[str, Any]] = field(default_factory=list)  # node, device, first_ms, last_ms
    latest_patches: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> its latest patches body
    rejected: dict[str | None, dict[str, int]] = field(default_factory=dict)  # node -> reason -> copies
    gaps: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Segment:
    start_ms: int
    end_ms: int
    level: str
    security: str
    operations: str

    def lens(self, name: str) -> str:
        return {"level": self.level, "security": self.security, "operations": self.operations}[name]


def segments(transitions: list[Transition], since_ms: int, now_ms: int) -> list[Segment]:
    """The verdict as spans inside the window; before the first known verdict there is none."""
    ordered = sorted(transitions)
    out = []
    for i, (ms, level, security, operations) in enumerate(ordered):
        end = ordered[i + 1][0] if i + 1 < len(ordered) else now_ms
        start, end = max(ms, since_ms), min(end, now_ms)
        if end > start:
            out.append(Segment(start, end, level, security, operations))
    return out


def time_in(spans: Iterable[Segment], lens: str = "level") -> dict[str, int]:
    """Milliseconds spent at each level through one lens ("level", "security", "operations")."""
    out = dict.fromkeys(LEVELS, 0)
    for span in spans:
        out[span.lens(lens)] += span.end_ms - span.start_ms
    return out


# ----------------------------------------------------------------------------- outages


def merged(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


def availability(episodes: list[dict[str, Any]], observed_from_ms: int, now_ms: int) -> dict[str, Any]:
    """One device's outage episodes ({start_ms, end_ms or None while it lasts, max_downtime_s})
    over its observed time [observed_from_ms, now_ms]."""
    lengths = [((e["end_ms"] if e["end_ms"] is not None else now_ms) - e["start_ms"], e) for e in episodes]
    inside = merged((max(e["start_ms"], observed_from_ms), min(e["end_ms"] if e["end_ms"] is not None else now_ms,
                                                                 now_ms)) for e in episodes)
    observed = max(0, now_ms - observed_from_ms)
    down = sum(end - start for start, end in inside)
    longest = max(lengths, key=lambda item: item[0], default=(0, None))
    return {
        "observed_ms": observed, "downtime_ms": down,
        "availability_pct": round(100.0 * (observed - down) / observed, 3) if observed else None,
        "outages": len(episodes), "longest_ms": longest[0],
        "breaches": sum(length >= e["max_downtime_s"] * 1000 for length, e in lengths),
        "ongoing": any(e["end_ms"] is None for e in episodes),
    }


# ----------------------------------------------------------------------------- patches


def deadline_ms(update: dict[str, Any], policy: Policy) -> int:
    return update["first_seen_ms"] + int(policy.sla_s(update["severity"]) * 1000)


def backlog(updates: list[dict[str, Any]], policy: Policy, since_ms: int, now_ms: int) -> list[tuple[int, int, int]]:
    """The security backlog as steps: (ms, pending, past SLA) at the window's start and at each
    change up to now. An update counts from its first sighting until it is gone."""
    pending = overdue = 0
    deltas: dict[int, list[int]] = {}
    for update in updates:
        first, gone, due = update["first_seen_ms"], update["gone_ms"], deadline_ms(update, policy)
        end = gone if gone is not None else now_ms + 1
        for ms, pend, over in ((first, 1, 0), (end, -1, 0), (due, 0, 1 if due < end else 0),
                               (end, 0, -1 if due < end else 0)):
            if ms <= since_ms:
                pending, overdue = pending + pend, overdue + over
            elif ms <= now_ms and (pend or over):
                step = deltas.setdefault(ms, [0, 0])
                step[0], step[1] = step[0] + pend, step[1] + over
    points = [(since_ms, pending, overdue)]
    for ms in sorted(deltas):
        pending, overdue = pending + deltas[ms][0], overdue + deltas[ms][1]
        if (pending, overdue) != points[-1][1:]:
            points.append((ms, pending, overdue))
    return points


def patch_record(updates: list[dict[str, Any]], policy: Policy, since_ms: int, now_ms: int) -> dict[str, Any]:
    """Time-to-patch of the updates closed in the window, the open ones, and SLA compliance."""
    closed, still_open = [], []
    for update in sorted(updates, key=lambda u: (u["first_seen_ms"], u["package"])):
        sla_s = policy.sla_s(update["severity"])
        entry = {"package": update["package"], "severity": update["severity"], "fixed": update.get("fixed", ""),
                 "first_seen_ms": update["first_seen_ms"], "sla_s": sla_s}
        if update["gone_ms"] is None:
            age = now_ms - update["first_seen_ms"]
            still_open.append({**entry, "age_ms": age, "past_sla": age >= sla_s * 1000})
        elif since_ms <= update["gone_ms"] <= now_ms:
            took = update["gone_ms"] - update["first_seen_ms"]
            closed.append({**entry, "gone_ms": update["gone_ms"], "time_to_patch_ms": took,
                           "within_sla": took <= sla_s * 1000})
    within = sum(c["within_sla"] for c in closed)
    counted = len(closed) + sum(o["past_sla"] for o in still_open)
    times = sorted(c["time_to_patch_ms"] for c in closed)
    return {
        "closed": closed, "open": still_open,
        "compliance": {"closed": len(closed), "closed_within_sla": within,
                       "open_past_sla": sum(o["past_sla"] for o in still_open),
                       "percent": round(100.0 * within / counted, 1) if counted else None},
        "median_time_to_patch_ms": times[len(times) // 2] if times else None,
    }


# ----------------------------------------------------------------------------- posture


def flips(changes: list[dict[str, Any]], since_ms: int) -> list[dict[str, Any]]:
    """Hardening checks whose status changed inside the window: {node, check_id, ms, was, now,
    evidence}. `changes` holds each check's rows in the window and its last one before; the
    first row ever of a check is its first report, not a flip."""
    previous: dict[tuple[str, str], str] = {}
    out = []
    for row in sorted(changes, key=lambda r: (r["node"], r["check_id"], r["ms"])):
        key = (row["node"], row["check_id"])
        was = previous.get(key)
        if was is not None and was != row["status"] and row["ms"] >= since_ms:
            out.append({"node": row["node"], "check_id": row["check_id"], "ms": row["ms"], "was": was,
                        "now": row["status"], "evidence": row.get("evidence", "")})
        previous[key] = row["status"]
    return sorted(out, key=lambda f: (f["ms"], f["node"], f["check_id"]))
