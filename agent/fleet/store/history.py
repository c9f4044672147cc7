"""The joint review's side of the fleet store: what happened in a window, as plain rows
(agent.fleet.review computes the figures, agent.fleet.report the document), and the asset
register. Each series comes with the row it stood at when the window began, so a window never
starts blank. Nothing here writes.
"""

from __future__ import annotations

import json
from typing import Any

from agent.fleet.review import History, Transition
from agent.fleet.store.db import Database, Tx
from agent.fleet.store.reads import gaps, rejected


def node_rows(tx: Tx) -> list[dict[str, Any]]:
    rows = tx.rows("SELECT node, site, area, first_ms, last_heard_ms, policy, level, security, operations, reasons "
                   "FROM nodes ORDER BY node")
    return [{"node": n, "site": s, "area": a, "first_ms": int(f), "last_heard_ms": int(h),
             "policy": json.loads(p) if p else None, "level": lv or None, "security": sec or None,
             "operations": op or None, "reasons": json.loads(r) if r else []}
            for n, s, a, f, h, p, lv, sec, op, r in rows]


def verdict_history(tx: Tx, since_ms: int, now_ms: int) -> dict[str, list[Transition]]:
    """Per node its verdict transitions up to `now_ms`: those in the window and the last before it."""
    rows = tx.rows("SELECT node, ms, level, security, operations FROM verdicts WHERE ms >= %s AND ms <= %s",
                   [since_ms, now_ms])
    rows += tx.rows("SELECT v.node, v.ms, v.level, v.security, v.operations FROM verdicts v JOIN (SELECT node, "
                    "MAX(ms) AS ms FROM verdicts WHERE ms < %s GROUP BY node) b ON v.node = b.node AND v.ms = b.ms",
                    [since_ms])
    out: dict[str, list[Transition]] = {}
    for node, ms, level, security, operations in sorted(rows, key=lambda r: (r[0], r[1])):
        out.setdefault(node, []).append((int(ms), level, security, operations))
    return out


def outage_episodes(tx: Tx, since_ms: int, now_ms: int) -> list[dict[str, Any]]:
    """Device outage episodes that overlap the window (begun before its end, not ended before its start)."""
    rows = tx.rows("SELECT node, device, start_ms, end_ms, criticality, max_downtime_s FROM outages "
                   "WHERE start_ms <= %s AND (end_ms IS NULL OR end_ms >= %s) ORDER BY node, device, start_ms",
                   [now_ms, since_ms])
    return [{"node": n, "device": d, "start_ms": int(s), "end_ms": None if e is None else int(e), "criticality": c,
             "max_downtime_s": float(m)} for n, d, s, e, c, m in rows]


def patch_history(tx: Tx, since_ms: int, now_ms: int) -> list[dict[str, Any]]:
    """Security updates pending at some moment of the window: first seen before its end, not gone before its start."""
    rows = tx.rows("SELECT node, package, severity, fixed, first_seen_ms, gone_ms FROM patch_updates "
                   "WHERE first_seen_ms <= %s AND (gone_ms IS NULL OR gone_ms >= %s) "
                   "ORDER BY node, first_seen_ms, package", [now_ms, since_ms])
    return [{"node": n, "package": p, "severity": s, "fixed": f, "first_seen_ms": int(first),
             "gone_ms": None if gone is None else int(gone)} for n, p, s, f, first, gone in rows]


def posture_history(tx: Tx, since_ms: int, now_ms: int) -> list[dict[str, Any]]:
    """Each hardening check's status rows in the window, and its last one before it."""
    rows = tx.rows("SELECT node, check_id, ms, status, evidence FROM posture_changes WHERE ms >= %s AND ms <= %s",
                   [since_ms, now_ms])
    rows += tx.rows("SELECT p.node, p.check_id, p.ms, p.status, p.evidence FROM posture_changes p JOIN (SELECT node, "
                    "check_id, MAX(ms) AS ms FROM posture_changes WHERE ms < %s GROUP BY node, check_id) b "
                    "ON p.node = b.node AND p.check_id = b.check_id AND p.ms = b.ms", [since_ms])
    return [{"node": n, "check_id": c, "ms": int(ms), "status": s, "evidence": e}
            for n, c, ms, s, e in sorted(rows, key=lambda r: (r[0], r[1], r[2]))]


def device_rows(tx: Tx) -> list[dict[str, Any]]:
    """Every device any node reported: first and last report."""
    rows = tx.rows("SELECT node, device, first_ms, last_ms FROM devices ORDER BY node, device")
    return [{"node": n, "device": d, "first_ms": int(f), "last_ms": int(la)} for n, d, f, la in rows]


def latest_bodies(tx: Tx, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(node, stream) -> the latest body of every stream of `kind`."""
    rows = tx.rows("SELECT node, stream, body FROM latest WHERE kind = %s", [kind])
    return {(node, stream): json.loads(body) for node, stream, body in rows}


def gather(db: Database, since_ms: int, now_ms: int) -> History:
    """Everything the review of [since_ms, now_ms] reads, in one read transaction (one snapshot)."""
    with db.transaction(write=False) as tx:
        counts, _ = rejected(tx, since_ms)
        return History(
            since_ms=since_ms, now_ms=now_ms, nodes=node_rows(tx),
            transitions=verdict_history(tx, since_ms, now_ms), outages=outage_episodes(tx, since_ms, now_ms),
            patches=patch_history(tx, since_ms, now_ms), posture=posture_history(tx, since_ms, now_ms),
            devices=device_rows(tx),
            latest_patches={node: body for (node, _), body in latest_bodies(tx, "patches").items()},
            rejected=counts, gaps=gaps(tx))


def assets(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """The asset register's rows: nodes, devices (first and last report), and each device's latest body."""
    with db.transaction(write=False) as tx:
        return node_rows(tx), device_rows(tx), latest_bodies(tx, "modbus")


def open_outages(tx: Tx) -> list[dict[str, Any]]:
    """Device outage episodes still going on (what /metrics reports)."""
    rows = tx.rows("SELECT node, device, start_ms, criticality, max_downtime_s FROM outages WHERE end_ms IS NULL "
                   "ORDER BY node, device")
    return [{"node": n, "device": d, "start_ms": int(s), "criticality": c, "max_downtime_s": float(m)}
            for n, d, s, c, m in rows]


def open_updates(tx: Tx) -> dict[str, list[dict[str, Any]]]:
    """Per node the security updates pending now: package, severity, first seen."""
    out: dict[str, list[dict[str, Any]]] = {}
    for node, package, severity, first in tx.rows("SELECT node, package, severity, first_seen_ms FROM patch_updates "
                                                  "WHERE gone_ms IS NULL ORDER BY node, package"):
        out.setdefault(node, []).append({"package": package, "severity": severity, "first_seen_ms": int(first)})
    return out
