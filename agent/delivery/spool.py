"""Store-and-forward spool: signed messages wait in SQLite (WAL) until the broker acks them.

No MQTT here. The publisher asks for the next batch to hand to MQTT (`next_batch`), and
removes messages when their PUBACK arrives (`ack`). Order is kept per stream (the message
id grows with every insert); streams are served fairly, the most important first, so a
long bulk backlog never holds back a security message of another stream.

Budget: `max_bytes` counts topic + payload bytes of queued messages (the database file is
larger by SQLite's page overhead, and does not shrink: freed pages are reused). When an
insert goes over budget, the least important and oldest messages go first (priority, then
id). Messages older than `max_age` are dropped by `expire`. Every drop is counted by reason
and priority, in the database, so `edge-agent status` can show it without the daemon.

"Held" messages (a connection's pre-signed Last Will) stay in the spool but are not handed
out until `release_held`: if the broker never published the Will, the agent publishes it
itself on its next connection, so no sealed sequence number is silently skipped.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.core.reading import Priority
from agent.core.timing import now_ms

log = logging.getLogger(__name__)

FILENAME = "spool.db"
Sync = Literal["normal", "full"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS message_by_stream ON message (stream, id);
CREATE INDEX IF NOT EXISTS message_by_eviction ON message (priority, id);
CREATE INDEX IF NOT EXISTS message_by_age ON message (created_ms);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Message:
    """One sealed message on its way to the broker."""

    topic: str
    payload: bytes
    stream: str
    priority: Priority = Priority.STATE
    retain: bool = False


@dataclass(frozen=True)
class Spooled:
    id: int
    stream: str
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class SpoolStats:
    depth: int
    bytes: int
    held: int
    oldest_ms: int | None
    depth_by_priority: dict[str, int]
    dropped: dict[str, int]  # "<reason>.<priority>" -> count, reason is "full" or "age"
    acked: int
    last_ack_ms: int | None

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "depth": self.depth, "bytes": self.bytes, "held": self.held, "oldest_ms": self.oldest_ms,
            "depth_by_priority": self.depth_by_priority, "dropped": self.dropped,
            "dropped_total": self.dropped_total, "acked": self.acked, "last_ack_ms": self.last_ack_ms,
        }


def _priority_name(value: int) -> str:
    return Priority(value).name.lower()


def _connect(path: Path, sync: Sync) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit is atomic and survives a process crash; only a power
    # cut can lose the commits since the last checkpoint. FULL fsyncs every commit.
    conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(_SCHEMA)
    return conn


class Spool:
    """Thread-safe: the daemon puts from its loop, the publisher acks from wherever acks land."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_age_s: float,
        sync: Sync = "normal",
        clock_ms: Callable[[], int] = now_ms,
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_s * 1000)
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self.generation = 0  # grows whenever something becomes publishable: readers poll it
        self._turn = 0
        self._conn = _connect(path, sync)
        count, size = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM message").fetchone()
        self._count, self._bytes = int(count), int(size)
        self._streams: dict[str, int] = dict(
            self._conn.execute("SELECT stream, MAX(priority) FROM message GROUP BY stream").fetchall()
        )

    @property
    def depth(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    def put(self, message: Message, *, held: bool = False) -> int:
        """Store one message durably (per the sync policy) and return its id."""
        return self.put_many([message], held=held)[0]

    def put_many(self, messages: Sequence[Message], *, held: bool = False) -> list[int]:
        """Store messages in one transaction; evict over budget; return their ids."""
        now = self._clock_ms()
        ids: list[int] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for message in messages:
                    size = len(message.topic.encode()) + len(message.payload)
                    cursor = self._conn.execute(
                        "INSERT INTO message (stream, topic, payload, priority, retain, held, created_ms, size)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (message.stream, message.topic, message.payload, int(message.priority),
                         int(message.retain), int(held), now, size),
                    )
                    ids.append(int(cursor.lastrowid or 0))
                    self._count += 1
                    self._bytes += size
                    if self._streams.get(message.stream, -1) < message.priority:
                        self._streams[message.stream] = int(message.priority)
                if self._bytes > self.max_bytes:
                    self._evict_locked()
                self._conn.execute("COMMIT")
                self.generation += 1
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._reload_totals_locked()
                raise
        return ids

    def _evict_locked(self) -> None:
        dropped: dict[int, int] = {}
        while self._bytes > self.max_bytes:
            rows = self._conn.execute(
                "DELETE FROM message WHERE id IN (SELECT id FROM message ORDER BY priority, id LIMIT ?)"
                " RETURNING priority, size",
                (max(1, min(256, self._count // 100)),),
            ).fetchall()
            if not rows:
                break
            for priority, size in rows:
                dropped[priority] = dropped.get(priority, 0) + 1
                self._count -= 1
                self._bytes -= size
        self._count_drops_locked("full", dropped)

    def _count_drops_locked(self, reason: str, dropped: dict[int, int]) -> None:
        for priority, count in dropped.items():
            self._bump_locked(f"dropped.{reason}.{_priority_name(priority)}", count)
            log.warning("spool dropped messages reason=%s priority=%s count=%d", reason, _priority_name(priority), count)

    def _bump_locked(self, name: str, by: int) -> None:
        self._conn.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + ?",
            (name, by, by),
        )

    def _reload_totals_locked(self) -> None:
        count, size = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM message").fetchone()
        self._count, self._bytes = int(count), int(size)

    def expire(self) -> int:
        """Drop messages older than max_age; return how many."""
        cutoff = self._clock_ms() - self.max_age_ms
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            rows = self._conn.execute(
                "DELETE FROM message WHERE created_ms < ? RETURNING priority, size", (cutoff,)
            ).fetchall()
            dropped: dict[int, int] = {}
            for priority, size in rows:
                dropped[priority] = dropped.get(priority, 0) + 1
                self._count -= 1
                self._bytes -= size
            self._count_drops_locked("age", dropped)
            self._conn.execute("COMMIT")
        return len(rows)

    def next_batch(self, cursors: dict[str, int], limit: int) -> list[Spooled]:
        """Up to `limit` messages after each stream's cursor, advancing `cursors`.

        Each stream first gets an equal share, most important streams first (equal ones in
        turn); leftover room goes to streams in the same order. Within a stream, oldest first.
        """
        with self._lock:
            order = self._stream_order_locked()
            share = max(1, limit // max(1, len(order)))
            out: list[Spooled] = []
            for per_stream in (share, limit):
                for stream in order:
                    room = min(per_stream, limit - len(out))
                    if room <= 0:
                        break
                    rows = self._conn.execute(
                        "SELECT id, topic, payload, retain FROM message"
                        " WHERE stream = ? AND id > ? AND held = 0 ORDER BY id LIMIT ?",
                        (stream, cursors.get(stream, 0), room),
                    ).fetchall()
                    if rows:
                        cursors[stream] = rows[-1][0]
                        out.extend(Spooled(r[0], stream, r[1], bytes(r[2]), bool(r[3])) for r in rows)
        return out

    def _stream_order_locked(self) -> list[str]:
        """Most important streams first; equal ones take turns leading, call after call (the
        publisher refills one free slot at a time, so a fixed order would starve the last)."""
        levels: dict[int, list[str]] = {}
        for stream, priority in self._streams.items():
            levels.setdefault(priority, []).append(stream)
        order: list[str] = []
        for priority in sorted(levels, reverse=True):
            names = sorted(levels[priority])
            turn = self._turn % len(names)
            order += names[turn:] + names[:turn]
        self._turn += 1
        return order

    def ack(self, ids: Iterable[int]) -> int:
        """Remove acknowledged messages (unknown ids are ignored); return how many left."""
        id_list = list(ids)
        if not id_list:
            return 0
        removed = 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            for start in range(0, len(id_list), 500):
                chunk = id_list[start:start + 500]
                rows = self._conn.execute(
                    f"DELETE FROM message WHERE id IN ({','.join('?' * len(chunk))}) RETURNING size", chunk
                ).fetchall()
                removed += len(rows)
                self._count -= len(rows)
                self._bytes -= sum(size for (size,) in rows)
            self._bump_locked("acked", removed)
            self._conn.execute(
                "INSERT INTO counter (name, value) VALUES ('last_ack_ms', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (self._clock_ms(),),
            )
            self._conn.execute("COMMIT")
        return removed

    def release_held(self, keep: int | None = None) -> int:
        """Make held messages (earlier connections' Wills) publishable, except `keep`; return how many."""
        with self._lock:
            released = self._conn.execute(
                "UPDATE message SET held = 0 WHERE held = 1 AND id IS NOT ?", (keep,)
            ).rowcount
            self.generation += 1
            return released

    def stats(self) -> SpoolStats:
        with self._lock:
            return read_stats(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def read_stats(conn: sqlite3.Connection) -> SpoolStats:
    """Spool figures from an open connection (the daemon's, or a read-only one)."""
    by_priority = {name.lower(): 0 for name in Priority.__members__}
    depth = size = 0
    for priority, count, total in conn.execute(
        "SELECT priority, COUNT(*), SUM(size) FROM message GROUP BY priority"
    ).fetchall():
        by_priority[_priority_name(priority)] = count
        depth += count
        size += total
    held, oldest = conn.execute("SELECT COALESCE(SUM(held), 0), MIN(created_ms) FROM message").fetchone()
    counters = dict(conn.execute("SELECT name, value FROM counter").fetchall())
    dropped = {name.removeprefix("dropped."): value for name, value in counters.items() if name.startswith("dropped.")}
    return SpoolStats(
        depth=depth, bytes=size, held=int(held), oldest_ms=oldest, depth_by_priority=by_priority,
        dropped=dict(sorted(dropped.items())), acked=counters.get("acked", 0), last_ack_ms=counters.get("last_ack_ms"),
    )


def read_stats_file(path: Path) -> SpoolStats | None:
    """Spool figures without the daemon, opening the file read-only; None if there is none."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return read_stats(conn)
    finally:
        conn.close()
