"""The web's picture of the fleet: rows read from the store, refreshed incrementally, served as is.

`FleetView.refresh()` reads the nodes whose row changed since the last refresh (every node on
the first and every `full_every_s`), their new verdict transitions and sequence gaps, the
rejection summary and the ingest processes' heartbeats; it returns the names of the nodes
whose row changed, which the page receives as a delta over Server-Sent Events. Every web
process reads the same store, so every one shows the whole fleet, the same.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.fleet import register, report, state
from agent.fleet.store import history, reads
from agent.fleet.store.db import Database
from agent.readiness.model import LEVELS, OPERATIONS, SECURITY
from agent.readiness.policy import Policy

CLOCK_MARGIN_MS = 10_000  # rows written by another process's clock may carry a slightly older time
INGEST_STALE_MS = 10_000  # an ingest process whose heartbeat is older is gone
SUMMARY_EVERY_S = 5.0  # the rejection summary: heavier, changes slowly
UNKNOWN_NODES_SHOWN = 50


def node_row(stored: dict[str, Any], timeline: list[tuple[int, str, str, str]], gaps: int,
             rejected: dict[str, int], last_rejected: dict[str, Any] | None) -> dict[str, Any]:
    """A node's row on the board (the API's `nodes[]`)."""
    policy = Policy.from_body(stored["policy"])
    reasons = stored["reasons"] or []
    verified = stored["verified"] > 0
    judged = bool(stored["level"])
    online = verified and not any(r["code"] in ("node_offline", "node_silent") for r in reasons)
    return {
        "node": stored["node"], "site": stored["site"], "area": stored["area"],
        "verified": verified,
        "online": online,
        "last_heard_ms": stored["last_heard_ms"],
        "level": stored["level"] if judged else None,
        SECURITY: stored["security"] if judged else None,
        OPERATIONS: stored["operations"] if judged else None,
        "reasons": reasons,
        "criticality": policy.node.criticality, "process": policy.node.process,
        "device_summary": state.device_summary(policy, reasons, online),
        "unverified": {"count": sum(rejected.values()), "by_reason": rejected, "last": last_rejected},
        "loss": {"gaps": gaps, "duplicates": stored["duplicates"], "messages": stored["verified"],
                 "ignored_streams": stored["ignored_streams"]},
        "agent": stored["agent"],
        "timeline": [{"ms": ms, "level": lv, "security": s, "operations": o} for ms, lv, s, o in timeline],
    }


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _rank(row: dict[str, Any]) -> tuple[int, str]:
    level = row["level"]
    return (-LEVELS.index(level) if level in LEVELS else 1, row["node"])


class FleetView:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time,
                 timeline_ms: int = int(state.TIMELINE_S * 1000),
                 rejected_window_ms: int = int(state.REJECTED_WINDOW_S * 1000), full_every_s: float = 30.0) -> None:
        self.db, self.clock = db, clock
        self.timeline_ms, self.rejected_window_ms, self.full_every_s = timeline_ms, rejected_window_ms, full_every_s
        self.lock = threading.Lock()
        self.version = 0
        self._stored: dict[str, dict[str, Any]] = {}
        self._timelines: dict[str, list[tuple[int, str, str, str]]] = {}
        self._gaps: dict[str, int] = {}
        self._rejected: dict[str | None, dict[str, int]] = {}
        self._last_rejected: dict[str | None, dict[str, Any]] = {}
        self._ingest: list[dict[str, Any]] = []
        self._rejected_total = 0
        self._rows: dict[str, dict[str, Any]] = {}
        self._row_json: dict[str, bytes] = {}  # each row encoded once, when it changes
        self._ranked: list[str] = []  # node names, worst first
        self._last_ms: int | None = None
        self._full_at = self._summary_at = float("-inf")
        self._refreshing = threading.Lock()  # one refresh at a time (the web's loop, a test, a drill)
        self._json: tuple[int, bytes] | None = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------ reading the store

    def refresh(self) -> set[str]:
        """Read what changed; the names of the nodes whose rows changed (all, on a full read)."""
        with self._refreshing:
            return self._refresh()

    def _refresh(self) -> set[str]:
        now_ms, started = self.now_ms(), time.monotonic()
        full = self._last_ms is None or started - self._full_at >= self.full_every_s
        summary = full or started - self._summary_at >= SUMMARY_EVERY_S
        rejected_now: tuple[dict, dict] = ({}, {})
        with self.db.transaction(write=False) as tx:
            stored = reads.nodes(tx) if full else reads.nodes(tx, changed_since_ms=self._last_ms - CLOCK_MARGIN_MS)
            names = [row["node"] for row in stored]
            if full:
                timelines = reads.transitions(tx, since_ms=now_ms - self.timeline_ms,
                                              window_start_ms=now_ms - self.timeline_ms)
                gaps = reads.gaps(tx)
            else:
                timelines = reads.transitions(tx, since_ms=self._last_ms - CLOCK_MARGIN_MS, only=names) if names else {}
                gaps = reads.gaps(tx, names) if names else {}
                # A changed node's own rejections at once; the rest (names that are not nodes) below.
                rejected_now = reads.rejected(tx, now_ms - self.rejected_window_ms, names) if names else ({}, {})
            if summary:
                rejected, last = reads.rejected(tx, now_ms - self.rejected_window_ms)
                rejected_total = reads.rejected_total(tx)
            ingest = reads.ingest_instances(tx)
        with self.lock:
            changed = self._take(full, stored, timelines, gaps, now_ms)
            if not full:
                changed |= self._take_rejected(names, *rejected_now)
            if summary:
                changed |= {n for n in set(rejected) | set(self._rejected) if n in self._stored
                            and (rejected.get(n), last.get(n)) != (self._rejected.get(n), self._last_rejected.get(n))}
                self._rejected, self._last_rejected, self._rejected_total = rejected, last, rejected_total
                self._summary_at = started
            if full:
                self._full_at = started
            self._ingest, self._last_ms = ingest, now_ms
            for node in changed:
                self._rows[node] = self._row(node)
                self._row_json[node] = _encode(self._rows[node])
            if changed:
                self._ranked = sorted(self._rows, key=lambda n: _rank(self._rows[n]))
            self.version += 1  # the header's time moves on even when no row did
        return changed

    def _take_rejected(self, names: list[str], counts: dict, last_seen: dict) -> set[str]:
        """The named nodes' rejections as just read; those whose numbers moved."""
        moved = set()
        for node in names:
            if (counts.get(node), last_seen.get(node)) != (self._rejected.get(node), self._last_rejected.get(node)):
                moved.add(node)
            self._rejected.pop(node, None)
            self._last_rejected.pop(node, None)
        self._rejected.update(counts)
        self._last_rejected.update(last_seen)
        return moved

    def _take(self, full: bool, stored: list[dict[str, Any]], timelines: dict[str, list], gaps: dict[str, int],
              now_ms: int) -> set[str]:
        changed = {row["node"] for row in stored if self._stored.get(row["node"]) != row}
        if full:
            changed |= {n for n in set(timelines) | set(self._timelines) if timelines.get(n) != self._timelines.get(n)}
            changed |= {n for n in set(gaps) | set(self._gaps) if gaps.get(n) != self._gaps.get(n)}
            self._timelines, self._gaps = timelines, gaps
        else:
            horizon = now_ms - self.timeline_ms
            for node, points in timelines.items():
                merged = sorted(set(self._timelines.get(node, [])) | set(points))
                while len(merged) > 1 and merged[1][0] <= horizon:  # keep what the window starts with
                    merged.pop(0)
                if merged != self._timelines.get(node):
                    self._timelines[node] = merged
                    changed.add(node)
            for node in stored:
                name = node["node"]
                if gaps.get(name, 0) != self._gaps.get(name, 0):
                    self._gaps[name] = gaps.get(name, 0)
                    changed.add(name)
        for row in stored:
            self._stored[row["node"]] = row
        return {n for n in changed if n in self._stored}

    def _row(self, node: str) -> dict[str, Any]:
        return node_row(self._stored[node], self._timelines.get(node, []), self._gaps.get(node, 0),
                        self._rejected.get(node, {}), self._last_rejected.get(node))

    # ------------------------------------------------------------------ what the API serves

    def header(self) -> dict[str, Any]:
        now_ms = self._last_ms or self.now_ms()  # as of the last read of the store
        live = [i for i in self._ingest if now_ms - i["heartbeat_ms"] <= INGEST_STALE_MS]
        connected = [i for i in live if i["connected"]]
        since = min((i["since_ms"] for i in connected), default=None) if connected else max(
            (i["since_ms"] for i in live), default=None)
        unknown = sorted(((n, c) for n, c in self._rejected.items() if n is not None and n not in self._stored),
                         key=lambda item: -self._last_rejected.get(item[0], {}).get("received_ms", 0))
        stray = self._rejected.get(None, {})
        return {
            "now_ms": now_ms, "version": self.version,
            "broker": {"connected": bool(connected), "since_ms": since, "ingest": self._ingest},
            "counts": {level: sum(r["level"] == level for r in self._rows.values()) for level in LEVELS},
            "messages": {**{key: sum(row[key] for row in self._stored.values())
                            for key in ("verified", "duplicates", "ignored_streams")},
                         "rejected": self._rejected_total, "gaps": sum(self._gaps.get(n, 0) for n in self._stored)},
            "rejected": {
                "unknown_nodes": [{"node": n, "count": sum(c.values()), "by_reason": c,
                                   "last": self._last_rejected.get(n)} for n, c in unknown[:UNKNOWN_NODES_SHOWN]],
                "unknown_node_count": len(unknown),
                "unattributed": {"count": sum(stray.values()), "by_reason": stray,
                                 "last": self._last_rejected.get(None)},
            },
        }

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {**self.header(), "nodes": sorted(self._rows.values(), key=_rank)}

    def snapshot_json(self) -> bytes:
        """`snapshot()` encoded: the header, and each row as encoded when it last changed (a
        5,000-node fleet costs a join, not an encoding), once per version."""
        with self.lock:
            if self._json is None or self._json[0] != self.version:
                header = _encode(self.header())
                rows = b",".join(self._row_json[node] for node in self._ranked)
                self._json = (self.version, header[:-1] + b',"nodes":[' + rows + b"]}")
            return self._json[1]

    def delta(self, nodes: set[str]) -> dict[str, Any]:
        with self.lock:
            return {**self.header(), "nodes": sorted((self._rows[n] for n in nodes if n in self._rows), key=_rank)}

    def policies(self) -> dict[str, Policy]:
        with self.lock:
            return {node: Policy.from_body(row["policy"]) for node, row in self._stored.items()}

    def rejected_by_reason(self) -> dict[str, int]:
        """Failed messages in the last hour by reason, whoever they claimed to be (as of the last summary)."""
        total: dict[str, int] = {}
        with self.lock:
            for counts in self._rejected.values():
                for reason, copies in counts.items():
                    total[reason] = total.get(reason, 0) + copies
        return total

    def detail(self, node: str) -> dict[str, Any] | None:
        if node not in self._rows:
            with self.db.transaction(write=False) as tx:
                known = reads.is_node(tx, node)
            if not known:
                return None
            self.refresh()  # a node newer than the last refresh
        with self.lock:
            row = self._rows.get(node)
        if row is None:
            return None
        with self.db.transaction(write=False) as tx:
            latest = reads.latest(tx, node)
            rejections = reads.recent_rejections(tx, node=node)
            outages, sessions = reads.outages(tx, node), reads.sessions(tx, node)
        policy = Policy.from_body(self._stored[node]["policy"])
        return {**row, **node_parts(latest, policy), "rejections": rejections, "outages": outages,
                "sessions": sessions, "policy": policy.to_body()}


def review(db: Database, since_ms: int, now_ms: int) -> dict[str, Any]:
    """The review document (agent.fleet.report) of [since_ms, now_ms], read from the store now."""
    return report.build(history.gather(db, since_ms, now_ms))


def asset_rows(db: Database) -> list[dict[str, Any]]:
    """The asset register's rows (agent.fleet.register), read from the store now."""
    return register.register(*history.assets(db))


def node_parts(latest: dict[str, dict[str, Any]], policy: Policy) -> dict[str, Any]:
    """The drill-down's devices, host, patches, posture and streams from a node's latest messages."""
    devices = []
    for stream in sorted(s for s in latest if s.startswith("modbus/")):
        name, body = stream.split("/", 1)[1], latest[stream]["body"]
        asset = policy.device(name)
        devices.append({"name": name, "ts": latest[stream]["ts"], "status": body.get("status"),
                        "values": body.get("values"), "units": body.get("units"), "identity": body.get("identity"),
                        "criticality": asset.criticality, "process": asset.process,
                        "max_downtime_s": asset.max_downtime_s})
    return {
        "devices": devices,
        "host": latest.get("host", {}).get("body"),
        "patches": latest.get("patches", {}).get("body"),
        "posture": latest.get("posture", {}).get("body"),
        "status_body": latest.get("status", {}).get("body"),
        "streams": {s: {"ts": m["ts"], "seq": m["seq"], "received_ms": m["received_ms"], "kid": m["kid"]}
                    for s, m in sorted(latest.items())},
    }
