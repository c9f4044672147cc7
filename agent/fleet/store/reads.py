"""The web's side of the fleet store: plain rows for the board, read in one short transaction each.

Nothing here writes; a web process can use a read-only database role.
"""

from __future__ import annotations

import json
from typing import Any

from agent.fleet.store.assess import in_list
from agent.fleet.store.db import Tx

NODE_COLUMNS = ("node", "first_ms", "last_heard_ms", "verified", "duplicates", "ignored_streams", "site", "area",
                "policy", "agent", "level", "security", "operations", "reasons", "verdict_ms", "changed_ms")
JSON_COLUMNS = {"policy", "agent", "reasons"}


def _node_dict(row: tuple) -> dict[str, Any]:
    out = dict(zip(NODE_COLUMNS, row))
    for column in JSON_COLUMNS:
        out[column] = json.loads(out[column]) if out[column] else None
    return out


def nodes(tx: Tx, *, changed_since_ms: int | None = None) -> list[dict[str, Any]]:
    """Node rows: all, or those changed since a time."""
    sql = f"SELECT {', '.join(NODE_COLUMNS)} FROM nodes"
    if changed_since_ms is None:
        return [_node_dict(row) for row in tx.rows(sql)]
    return [_node_dict(row) for row in tx.rows(sql + " WHERE changed_ms >= %s", [changed_since_ms])]


def is_node(tx: Tx, node: str) -> bool:
    return bool(tx.rows("SELECT 1 FROM nodes WHERE node = %s", [node]))


def gaps(tx: Tx, only: list[str] | None = None) -> dict[str, int]:
    """Per node: sequence numbers never received inside its sessions (loss between agent and
    board), not counting the Last Will the broker holds for the node's live connection."""
    clause = f" WHERE s.node IN ({in_list(len(only))})" if only else ""
    rows = tx.rows("SELECT s.node, SUM(s.last_seq - s.first_seq + 1 - s.received) FROM sessions s"
                   f"{clause} GROUP BY s.node", only or [])
    missing = {node: int(total) for node, total in rows}
    clause = f" AND n.node IN ({in_list(len(only))})" if only else ""
    held = tx.rows("SELECT n.node FROM nodes n JOIN sessions s ON s.node = n.node AND s.session = n.will_session "
                   "WHERE n.will_seq BETWEEN s.first_seq AND s.last_seq AND NOT EXISTS (SELECT 1 FROM messages m "
                   f"WHERE m.node = n.node AND m.session = n.will_session AND m.seq = n.will_seq){clause}", only or [])
    for (node,) in held:
        missing[node] = max(0, missing.get(node, 0) - 1)
    return missing


def transitions(tx: Tx, *, since_ms: int, window_start_ms: int | None = None,
                only: list[str] | None = None) -> dict[str, list[tuple[int, str, str, str]]]:
    """Verdict transitions after `since_ms`; with `window_start_ms`, also each node's last one
    before it (what the window starts with)."""
    clause = f" AND node IN ({in_list(len(only))})" if only else ""
    rows = tx.rows(f"SELECT node, ms, level, security, operations FROM verdicts WHERE ms >= %s{clause}",
                   [since_ms, *(only or [])])
    if window_start_ms is not None:
        rows += tx.rows("SELECT v.node, v.ms, v.level, v.security, v.operations FROM verdicts v JOIN "
                        f"(SELECT node, MAX(ms) AS ms FROM verdicts WHERE ms < %s{clause} GROUP BY node) b "
                        "ON v.node = b.node AND v.ms = b.ms", [window_start_ms, *(only or [])])
    out: dict[str, list[tuple[int, str, str, str]]] = {}
    for node, ms, level, security, operations in sorted(rows, key=lambda r: (r[0], r[1])):
        out.setdefault(node, []).append((int(ms), level, security, operations))
    return out


def rejected(tx: Tx, since_ms: int, only: list[str] | None = None
             ) -> tuple[dict[str | None, dict[str, int]], dict[str | None, dict[str, Any]]]:
    """Failed messages last seen since `since_ms`: per claimed node (None: the topic names no
    node) the copies by reason, and the most recent one; for every node, or the ones named."""
    clause = f" AND node IN ({in_list(len(only))})" if only else ""
    counts: dict[str | None, dict[str, int]] = {}
    for node, reason, copies in tx.rows(f"SELECT node, reason, SUM(copies) FROM rejections WHERE last_ms >= %s{clause} "
                                        "GROUP BY node, reason", [since_ms, *(only or [])]):
        counts.setdefault(node, {})[reason] = int(copies)
    last: dict[str | None, dict[str, Any]] = {}
    for node, reason, detail, topic, ms in tx.rows(
            "SELECT r.node, r.reason, r.detail, r.topic, r.last_ms FROM rejections r JOIN (SELECT node, "
            f"MAX(last_ms) AS ms FROM rejections WHERE last_ms >= %s{clause} GROUP BY node) x ON r.last_ms = x.ms AND "
            "(r.node = x.node OR (r.node IS NULL AND x.node IS NULL))", [since_ms, *(only or [])]):
        last[node] = {"received_ms": int(ms), "reason": reason, "detail": detail, "topic": topic}
    return counts, last


def recent_rejections(tx: Tx, *, node: str | None, limit: int = 50, unattributed: bool = False) -> list[dict[str, Any]]:
    where = "node IS NULL" if unattributed else "node = %s"
    rows = tx.rows(f"SELECT last_ms, reason, detail, topic, copies FROM rejections WHERE {where} "
                   "ORDER BY last_ms DESC LIMIT %s", ([] if unattributed else [node]) + [limit])
    return [{"received_ms": int(ms), "reason": reason, "detail": detail, "topic": topic, "copies": int(copies)}
            for ms, reason, detail, topic, copies in rows]


def ingest_instances(tx: Tx) -> list[dict[str, Any]]:
    rows = tx.rows("SELECT instance, started_ms, heartbeat_ms, connected, since_ms, broker FROM ingest_instances "
                   "ORDER BY instance")
    return [{"instance": i, "started_ms": int(s), "heartbeat_ms": int(h), "connected": bool(c), "since_ms": int(since),
             "broker": b} for i, s, h, c, since, b in rows]


def latest(tx: Tx, node: str) -> dict[str, dict[str, Any]]:
    """A node's newest message per stream: {stream: {kind, session, seq, kid, ts, received_ms, body}}."""
    rows = tx.rows("SELECT stream, kind, session, seq, kid, ts_ms, received_ms, body FROM latest WHERE node = %s",
                   [node])
    return {stream: {"kind": kind, "session": session, "seq": int(seq), "kid": kid, "ts": int(ts),
                     "received_ms": int(received), "body": json.loads(body)}
            for stream, kind, session, seq, kid, ts, received, body in rows}


def outages(tx: Tx, node: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = tx.rows("SELECT device, start_ms, end_ms, criticality, max_downtime_s FROM outages WHERE node = %s "
                   "ORDER BY start_ms DESC LIMIT %s", [node, limit])
    return [{"device": d, "start_ms": int(s), "end_ms": None if e is None else int(e), "criticality": c,
             "max_downtime_s": float(m)} for d, s, e, c, m in rows]


def sessions(tx: Tx, node: str, limit: int = 10) -> list[dict[str, Any]]:
    rows = tx.rows("SELECT session, first_seq, last_seq, received, first_ms, last_ms FROM sessions WHERE node = %s "
                   "ORDER BY last_ms DESC LIMIT %s", [node, limit])
    return [{"session": s, "first_seq": int(a), "last_seq": int(b), "received": int(n), "first_ms": int(f),
             "last_ms": int(la)} for s, a, b, n, f, la in rows]


def rejected_total(tx: Tx) -> int:
    """Copies of failed messages still kept (retention: agent.fleet.store.upkeep)."""
    return int(tx.rows("SELECT COALESCE(SUM(copies), 0) FROM rejections")[0][0])
