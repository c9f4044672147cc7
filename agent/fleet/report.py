"""The weekly review document (`edge-agent report`, the board's /report): per node both lenses
over the window, what was agreed (tolerances, SLAs, maintenance windows), what the next window
will install, what breached, and a short list of decisions in plain words. Built from
`History` rows by the pure figures of agent.fleet.review; agent.web.report renders it as HTML
or Markdown, and its JSON form is this document as it is. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from agent.fleet import review
from agent.fleet.review import History
from agent.readiness.model import LEVELS, OPERATIONS, SECURITY, counted, human
from agent.readiness.policy import Policy

LENSES = ("level", SECURITY, OPERATIONS)
DECISIONS_SHOWN = 8
REJECTION_WORDS = {"bad_signature": "altered", "unknown_key": "signed by an unknown key",
                   "topic_mismatch": "moved onto its topic", "replay": "replayed", "revoked_key": "signed by a revoked key",
                   "invalid_body": "malformed"}


def _by_node(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["node"], []).append(row)
    return out


def device_review(name: str, policy: Policy, episodes: list[dict[str, Any]], first_ms: int | None,
                  since_ms: int, now_ms: int) -> dict[str, Any]:
    asset = policy.device(name)
    observed_from = max(since_ms, first_ms) if first_ms is not None else since_ms
    figures = review.availability(episodes, observed_from, now_ms)
    return {"device": name, "criticality": asset.criticality, "process": asset.process,
            "max_downtime_s": asset.max_downtime_s, "first_ms": first_ms, **figures,
            "episodes": [{"start_ms": e["start_ms"], "end_ms": e["end_ms"],
                          "length_ms": (e["end_ms"] if e["end_ms"] is not None else now_ms) - e["start_ms"],
                          "max_downtime_s": e["max_downtime_s"],
                          "breached": (e["end_ms"] if e["end_ms"] is not None else now_ms) - e["start_ms"]
                          >= e["max_downtime_s"] * 1000} for e in episodes]}


def maintenance(body: dict[str, Any] | None) -> dict[str, Any]:
    """The node's maintenance windows and what its next one will install, from its latest patches body."""
    body = body or {}
    reboot = body.get("reboot_required") is True
    due = sorted(body.get("due_in_next_window") or [])
    pending = sorted({u.get("package") for u in body.get("security_updates") or [] if isinstance(u, dict)} - set(due))
    return {"time_zone": body.get("time_zone"), "next_window": body.get("next_window"),
            "following_window": body.get("following_window"),
            "planned": due, "can_wait": pending, "reboot_required": reboot, "patch_status": body.get("status")}


def node_review(row: dict[str, Any], history: History, parts: dict[str, dict[str, list[dict[str, Any]]]]
                ) -> dict[str, Any]:
    node, since, now = row["node"], history.since_ms, history.now_ms
    policy = Policy.from_body(row["policy"])
    spans = review.segments(history.transitions.get(node, []), since, now)
    first_seen = {d["device"]: d["first_ms"] for d in parts["devices"].get(node, [])}
    episodes = _by_node_device(parts["outages"].get(node, []))
    names = sorted(set(policy.devices) | set(first_seen) | set(episodes))
    updates = parts["patches"].get(node, [])
    record = review.patch_record(updates, policy, since, now)
    return {
        "node": node, "site": row["site"], "area": row["area"], "criticality": policy.node.criticality,
        "process": policy.node.process, "max_downtime_s": policy.node.max_downtime_s,
        "level": row["level"], SECURITY: row["security"], OPERATIONS: row["operations"],
        "timeline": [{"start_ms": s.start_ms, "end_ms": s.end_ms, "level": s.level, SECURITY: s.security,
                      OPERATIONS: s.operations} for s in spans],
        "time_in_ms": {lens: review.time_in(spans, lens) for lens in LENSES},
        "devices": [device_review(name, policy, episodes.get(name, []), first_seen.get(name), since, now)
                    for name in names],
        "patches": {**record, "backlog": review.backlog(updates, policy, since, now),
                    "sla_s": dict(policy.patch_sla_s)},
        "posture_flips": review.flips(parts["posture"].get(node, []), since),
        "maintenance": maintenance(history.latest_patches.get(node)),
        "rejected": history.rejected.get(node, {}), "gaps": history.gaps.get(node, 0),
    }


def _by_node_device(episodes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for episode in episodes:
        out.setdefault(episode["device"], []).append(episode)
    return out


def breaches(node: dict[str, Any]) -> list[str]:
    """What breached its SLA or tolerance in the window, in words."""
    out = []
    for update in node["patches"]["open"]:
        if update["past_sla"]:
            out.append(f"{update['package']} pending {human(update['age_ms'] / 1000)}, past its SLA of "
                       f"{human(update['sla_s'])} ({update['severity']})")
    for update in node["patches"]["closed"]:
        if not update["within_sla"]:
            out.append(f"{update['package']} patched after {human(update['time_to_patch_ms'] / 1000)}, past its "
                       f"SLA of {human(update['sla_s'])} ({update['severity']})")
    for device in node["devices"]:
        for episode in device["episodes"]:
            if episode["breached"]:
                state = "still down" if episode["end_ms"] is None else "down"
                out.append(f"{device['device']} {state} {human(episode['length_ms'] / 1000)}, past the "
                           f"{human(episode['max_downtime_s'])} tolerated ({device['criticality']})")
    return out


def decisions(nodes: list[dict[str, Any]], now_ms: int) -> list[dict[str, str]]:
    """A short list of what the meeting must decide, most pressing first, in plain words."""
    found: list[tuple[int, dict[str, str]]] = []

    def add(rank: int, node: str, lens: str, text: str) -> None:
        found.append((rank, {"node": node, "lens": lens, "text": text}))

    for n in nodes:
        name, window = n["node"], n["maintenance"]["next_window"]
        when = "no maintenance window is agreed" if not window else \
            f"the next window opens in {human((window['start_ms'] - now_ms) / 1000)}"
        late = [u["package"] for u in n["patches"]["open"] if u["past_sla"]]
        if late:
            ask = "Approve an earlier window" if window else "Agree a window now"
            add(0, name, SECURITY, f"{name}: {counted(len(late), 'security update')} past the SLA "
                                   f"({', '.join(late[:3])}); {when}. {ask}, or accept the risk in writing "
                                   "until then.")
        elif n["patches"]["open"] and not window:
            add(2, name, SECURITY, f"{name}: {counted(len(n['patches']['open']), 'security update')} pending and "
                                   "no maintenance window is agreed. Agree one.")
        for device in n["devices"]:
            if device["breaches"]:
                add(1, name, OPERATIONS, f"{name}: {device['device']} ({device['process'] or device['criticality']}) "
                                         f"was down {human(device['longest_ms'] / 1000)} against "
                                         f"{human(device['max_downtime_s'])} tolerated "
                                         f"({counted(device['breaches'], 'time')}). Review the tolerance, spares or "
                                         "redundancy.")
        forged = {r: c for r, c in n["rejected"].items() if r != "invalid_body"}
        if forged:
            how = ", ".join(f"{c} {REJECTION_WORDS.get(r, r.replace('_', ' '))}" for r, c in sorted(forged.items()))
            add(0, name, SECURITY, f"{name}: {counted(sum(forged.values()), 'message')} in its name failed "
                                   f"verification ({how}). Find the sender on the plant network.")
        for flip in n["posture_flips"]:
            if flip["was"] == "pass" and flip["now"] == "fail":
                add(3, name, SECURITY, f"{name}: hardening check {flip['check_id']} started failing. Fix it in the "
                                       "next window or accept it in writing.")
        if n["maintenance"]["reboot_required"] and window:
            add(4, name, OPERATIONS, f"{name}: needs a reboot; confirm the line can stop in the next window.")
    found.sort(key=lambda item: item[0])
    return [d for _, d in found]


def build(history: History) -> dict[str, Any]:
    """The review document for [since_ms, now_ms]."""
    parts = {key: _by_node(getattr(history, key)) for key in ("outages", "patches", "posture", "devices")}
    nodes = [node_review(row, history, parts) for row in history.nodes]
    for n in nodes:
        n["breaches"] = breaches(n)
    everything = decisions(nodes, history.now_ms)
    zones = Counter(n["maintenance"]["time_zone"] for n in nodes if n["maintenance"]["time_zone"])
    return {
        "since_ms": history.since_ms, "now_ms": history.now_ms,
        "time_zone": zones.most_common(1)[0][0] if zones else "UTC",
        "counts": {level: sum(n["level"] == level for n in nodes) for level in LEVELS},
        SECURITY: {
            "pending": sum(len(n["patches"]["open"]) for n in nodes),
            "past_sla": sum(n["patches"]["compliance"]["open_past_sla"] for n in nodes),
            "compliance": _compliance(nodes),
            "backlog": _fleet_backlog(nodes, history),
            "rejected": dict(sorted(_summed(n["rejected"] for n in nodes).items())),
            "posture_flips": sum(len(n["posture_flips"]) for n in nodes),
        },
        OPERATIONS: {
            "devices": sum(len(n["devices"]) for n in nodes),
            "outages": sum(d["outages"] for n in nodes for d in n["devices"]),
            "breaches": sum(d["breaches"] for n in nodes for d in n["devices"]),
            "down_now": sum(d["ongoing"] for n in nodes for d in n["devices"]),
            "gaps": sum(n["gaps"] for n in nodes),
        },
        "decisions": everything[:DECISIONS_SHOWN], "more_decisions": max(0, len(everything) - DECISIONS_SHOWN),
        "nodes": nodes,
    }


def _summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for one in counts:
        total.update(one)
    return dict(total)


def _compliance(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    closed = sum(n["patches"]["compliance"]["closed"] for n in nodes)
    within = sum(n["patches"]["compliance"]["closed_within_sla"] for n in nodes)
    late = sum(n["patches"]["compliance"]["open_past_sla"] for n in nodes)
    return {"closed": closed, "closed_within_sla": within, "open_past_sla": late,
            "percent": round(100.0 * within / (closed + late), 1) if closed + late else None}


def _fleet_backlog(nodes: list[dict[str, Any]], history: History) -> list[tuple[int, int, int]]:
    """The fleet's backlog steps: every node's series summed at every moment one of them changes."""
    series = [n["patches"]["backlog"] for n in nodes]
    moments = sorted({ms for s in series for ms, _, _ in s} | {history.since_ms})
    out: list[tuple[int, int, int]] = []
    index = [0] * len(series)
    for ms in moments:
        pending = overdue = 0
        for i, s in enumerate(series):
            while index[i] + 1 < len(s) and s[index[i] + 1][0] <= ms:
                index[i] += 1
            pending, overdue = pending + s[index[i]][1], overdue + s[index[i]][2]
        if not out or out[-1][1:] != (pending, overdue):
            out.append((ms, pending, overdue))
    return out
