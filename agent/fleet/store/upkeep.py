"""Housekeeping shared by ingest processes: heartbeats (so the web knows who is receiving),
a lease (so only one process runs the fleet-wide periodic work at a time) and retention.

Retention: verified messages are kept `retention_ms` (they are also the replay guard, so never
less than the verifier's maximum age: an older message is refused by its timestamp anyway);
history (verdict transitions, outages, patch and posture history, sessions, rejections, devices) is
kept `history_ms`, the last known state of each series always. Deletes go in slices so no
transaction holds the store for long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.fleet.defaults import DAY_MS, HISTORY_MS, RETENTION_MS
from agent.fleet.store.db import Database

log = logging.getLogger(__name__)

MAX_REJECTIONS = 100_000  # distinct rejected payloads kept: a flood of forgeries cannot fill the disk
DELETE_SLICE = 5000


def heartbeat(db: Database, instance: str, *, started_ms: int, connected: bool, since_ms: int, broker: str,
              now_ms: int) -> None:
    with db.transaction() as tx:
        tx.run("INSERT INTO ingest_instances (instance, started_ms, heartbeat_ms, connected, since_ms, broker) "
               "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (instance) DO UPDATE SET heartbeat_ms = "
               "excluded.heartbeat_ms, connected = excluded.connected, since_ms = excluded.since_ms, "
               "broker = excluded.broker", [instance, started_ms, now_ms, int(connected), since_ms, broker])


def take_lease(db: Database, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
    """True while `holder` holds lease `name`; it lapses `ttl_ms` after the holder last renewed it."""
    with db.transaction() as tx:
        tx.run("INSERT INTO leases (name, holder, until_ms) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
               [name, holder, now_ms + ttl_ms])
        return tx.count("UPDATE leases SET holder = %s, until_ms = %s WHERE name = %s AND (holder = %s OR until_ms < %s)",
                        [holder, now_ms + ttl_ms, name, holder, now_ms]) == 1


@dataclass(frozen=True)
class Retention:
    retention_ms: int = RETENTION_MS
    history_ms: int = HISTORY_MS
    max_rejections: int = MAX_REJECTIONS


def _sliced(db: Database, sql: str, params: list) -> int:
    total = 0
    while True:
        with db.transaction() as tx:
            deleted = tx.count(sql, params)
        total += deleted
        if deleted < DELETE_SLICE:
            return total


def prune(db: Database, now_ms: int, keep: Retention) -> dict[str, int]:
    """Delete what is past retention; returns rows deleted per table."""
    messages, history = now_ms - keep.retention_ms, now_ms - keep.history_ms
    done = {
        "messages": _sliced(db, "DELETE FROM messages WHERE (node, session, seq) IN (SELECT node, session, seq FROM "
                                f"messages WHERE received_ms < %s LIMIT {DELETE_SLICE})", [messages]),
        "rejections": _sliced(db, "DELETE FROM rejections WHERE id IN (SELECT id FROM rejections WHERE last_ms < %s "
                                  f"LIMIT {DELETE_SLICE})", [history]),
    }
    with db.transaction() as tx:
        over = tx.rows("SELECT COUNT(*) FROM rejections")[0][0] - keep.max_rejections
        if over > 0:
            done["rejections"] += tx.count("DELETE FROM rejections WHERE id IN (SELECT id FROM rejections "
                                           "ORDER BY last_ms LIMIT %s)", [over])
        # Each series keeps its newest row: what the window starts with.
        done["verdicts"] = tx.count("DELETE FROM verdicts WHERE ms < %s AND ms < (SELECT MAX(v.ms) FROM verdicts v "
                                    "WHERE v.node = verdicts.node)", [history])
        done["posture_changes"] = tx.count(
            "DELETE FROM posture_changes WHERE ms < %s AND ms < (SELECT MAX(p.ms) FROM posture_changes p "
            "WHERE p.node = posture_changes.node AND p.check_id = posture_changes.check_id)", [history])
        done["outages"] = tx.count("DELETE FROM outages WHERE end_ms < %s", [history])
        done["patch_updates"] = tx.count("DELETE FROM patch_updates WHERE gone_ms < %s", [history])
        done["sessions"] = tx.count("DELETE FROM sessions WHERE last_ms < %s", [history])
        done["devices"] = tx.count("DELETE FROM devices WHERE last_ms < %s", [history])  # retired long ago
        done["ingest_instances"] = tx.count("DELETE FROM ingest_instances WHERE heartbeat_ms < %s", [now_ms - DAY_MS])
    if any(done.values()):
        log.info("fleet store pruned %s", " ".join(f"{table}={n}" for table, n in done.items()))
    return done
