"""Store-and-forward spool on disk: signed messages wait in SQLite (WAL) until the broker acks them.

No MQTT here, and no fallback either: a write that fails raises, and agent.delivery.store
decides what to do (keep the message in memory, quarantine a corrupt file). The publisher
asks for the next batch to hand to MQTT (`next_batch`) and removes messages when their
PUBACK arrives (`ack`). Order is kept per stream (the message id grows with every insert);
streams are served fairly, the most important first, so a long bulk backlog never holds
back a security message of another stream.

Budget: `max_bytes` is the spool's whole footprint on disk: the database file, plus the WAL
at its bound, plus the WAL's shared-memory index (`Bounds`). The WAL is checkpointed every
`wal_pages` pages and cut back to its bound afterwards (journal_size_limit, and a TRUNCATE
checkpoint if a large transaction took it beyond), so it never grows with the backlog. When
a write takes the database's pages in use over budget, the least important and oldest
messages go first (priority, then id). A write inserts before it evicts (the new message
may be the least important), so the file can grow by that one write's pages beyond the
pages in use: the budget keeps 1/32 of itself as slack for that. Freed pages are reused,
so the file stays at its high-water mark. Messages older than `max_age` are dropped by `expire`. Every
drop is counted by reason and priority, in the database, and logged only once the
transaction that made it committed.

Headroom: a write that would leave the file system with less than `min_free` bytes free
(counting what the WAL may still grow) is rolled back and raises `ReserveReached`: the spool
stops growing before the disk the OS needs is gone.

"Held" messages (a connection's pre-signed Last Will) stay in the spool but are not handed
out until `release_held`: if the broker never published the Will, the agent publishes it
itself on its next connection, so no sealed sequence number is silently skipped.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from agent.core.reading import Priority
from agent.core.timing import now_ms
from agent.delivery.memqueue import Item
from agent.delivery.message import Message, Spooled

__all__ = ["FILENAME", "Message", "Spooled", "Spool", "SpoolStats", "ReserveReached", "SpoolCorrupt",
           "read_stats", "read_stats_file", "free_bytes"]

log = logging.getLogger(__name__)

FILENAME = "spool.db"
SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's companions of FILENAME
PAGE_SIZE = 4096
SHM_BYTES = 32 * 1024  # the WAL index: one 32 KiB block covers the WAL at its bound
Sync = Literal["normal", "full"]
T = TypeVar("T")

PRIORITIES = tuple(int(p) for p in Priority)


def table(priority: int) -> str:
    return f"message_{priority}"


# One table per priority: eviction takes the oldest rows of the least important table, which
# lie together at the start of its b-tree, so it frees whole pages. (In one table ordered by
# id, evicting the state rows between security rows frees next to no page: a page budget then
# empties the spool of everything but security messages.) The `message` view gives readers
# (`edge-agent status`, benches, tests) one table with a priority column.
_SCHEMA = "".join(f"""
CREATE TABLE IF NOT EXISTS {table(p)} (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {table(p)}_by_stream ON {table(p)} (stream, id);
CREATE INDEX IF NOT EXISTS {table(p)}_by_age ON {table(p)} (created_ms);
""" for p in PRIORITIES) + """
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE VIEW IF NOT EXISTS message AS """ + " UNION ALL ".join(
    f"SELECT id, stream, topic, payload, {p} AS priority, retain, held, created_ms, size FROM {table(p)}"
    for p in PRIORITIES) + ";\n"
_COLUMNS = "id, stream, topic, payload, retain, held, created_ms, size"


def _migrate_single_table(conn: sqlite3.Connection) -> None:
    """A spool written before the tables per priority: move its rows over, keep its ids."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'message'").fetchone():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE message RENAME TO message_single")
        conn.executescript(_SCHEMA.replace("CREATE VIEW", "CREATE TEMP VIEW unused_view"))
        for p in PRIORITIES:
            conn.execute(f"INSERT INTO {table(p)} ({_COLUMNS}) SELECT {_COLUMNS} FROM message_single"
                         " WHERE priority = ?", (p,))
        conn.execute("DROP TABLE message_single")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    log.info("spool moved to one table per priority")


class ReserveReached(Exception):
    """A write would take the file system's free space below the reserve; nothing was written."""


class SpoolCorrupt(Exception):
    """The database fails its integrity check (or is not a database at all)."""


@dataclass(frozen=True)
class SpoolStats:
    depth: int
    bytes: int
    held: int
    oldest_ms: int | None
    depth_by_priority: dict[str, int]
    dropped: dict[str, int]  # "<reason>.<priority>" -> count; reasons in docs/operations.md
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


@dataclass(frozen=True)
class Bounds:
    """What `max_bytes` allows each part of the spool's footprint."""

    wal_pages: int  # checkpoint the WAL at this many pages
    wal_bytes: int  # the WAL's bound on disk
    db_pages: int  # pages in use the database may hold

    @classmethod
    def of(cls, max_bytes: int) -> "Bounds":
        wal_pages = max(8, min(1000, max_bytes // 32 // PAGE_SIZE))
        # Checkpoints happen after a commit, so the WAL can hold one transaction beyond them.
        wal_bytes = 2 * wal_pages * (PAGE_SIZE + 24) + 32
        database = max_bytes - wal_bytes - SHM_BYTES
        slack = max(4 * PAGE_SIZE, database // 32)  # what one write may add before it evicts
        return cls(wal_pages, wal_bytes, max(0, (database - slack) // PAGE_SIZE))


def priority_name(value: int) -> str:
    return Priority(value).name.lower()


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged user may still write on the file system holding `directory`."""
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _connect(path: Path, sync: Sync, bounds: Bounds) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes effect on a new database
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit is atomic and survives a process crash; only a power
        # cut can lose the commits since the last checkpoint. FULL fsyncs every commit.
        conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(f"PRAGMA wal_autocheckpoint={bounds.wal_pages}")
        conn.execute(f"PRAGMA journal_size_limit={bounds.wal_bytes}")
        _migrate_single_table(conn)
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """What PRAGMA quick_check finds wrong (the first few problems), or None."""
    rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    return None if rows == ["ok"] else "; ".join(rows)[:500]


class Spool:
    """Thread-safe: the daemon puts from its loop, the publisher acks from wherever acks land."""

    def __init__(self, path: Path, *, max_bytes: int, max_age_s: float, sync: Sync = "normal",
                 min_free: int = 0, check: bool = False, clock_ms: Callable[[], int] = now_ms,
                 disk_free: Callable[[Path], int] = free_bytes) -> None:
        """Open (or create) the spool; with `check`, run PRAGMA quick_check first and raise
        SpoolCorrupt if the file is damaged."""
        self.path = path
        self._wal = f"{path}-wal"  # a string: stat'ed at every write
        self.max_bytes = max_bytes
        self.bounds = Bounds.of(max_bytes)
        self.max_age_ms = int(max_age_s * 1000)
        self.min_free = min_free
        self._clock_ms = clock_ms
        self._disk_free = disk_free
        self._lock = threading.Lock()
        self._turn = 0
        self._drops: list[tuple[str, int, int]] = []  # (reason, priority, count), logged after COMMIT
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = _connect(path, sync, self.bounds)
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                raise SpoolCorrupt(str(exc)) from exc
            raise
        try:
            problem = integrity_problem(self._conn) if check else None
            if problem:
                raise SpoolCorrupt(problem)
            self._reload_locked()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if is_corruption(exc):
                raise SpoolCorrupt(str(exc)) from exc
            raise
        except SpoolCorrupt:
            self._conn.close()
            raise

    @property
    def depth(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def streams(self) -> dict[str, int]:
        """Each stream's highest priority in the spool."""
        return dict(self._streams)

    # -- writes -------------------------------------------------------------------------

    def put(self, message: Message, *, held: bool = False) -> int:
        """Store one message durably (per the sync policy) and return its id."""
        return self.put_many([message], held=held)[0]

    def put_many(self, messages: Sequence[Message], *, held: bool = False) -> list[int]:
        """Store messages in one transaction, numbered after the highest id so far; return the ids."""
        now = self._clock_ms()
        first = self.last_id + 1
        items = [Item(first + n, message, held, now) for n, message in enumerate(messages)]
        self.insert(items)
        return [item.id for item in items]

    def insert(self, items: Sequence[Item]) -> None:
        """Store items under their own ids (above every id so far) in one transaction; evict over
        budget; ReserveReached (nothing written) if the disk would fall below the reserve."""
        if not items:
            return
        if self.min_free:
            free = self._disk_free(self.path.parent)
            wal_room = max(0, self.bounds.wal_bytes - _file_size(self._wal))

        def body() -> None:
            pages_before = self._pragma("page_count") if self.min_free else 0
            for item in items:
                self._insert_locked(item)
            self._evict_locked()
            if self.min_free:
                grown = (self._pragma("page_count") - pages_before) * PAGE_SIZE
                if free - grown - wal_room < self.min_free:
                    raise ReserveReached(f"{free} bytes free, {grown + wal_room} more needed, reserve {self.min_free}")

        self._write("insert", body)
        self.last_id = max(self.last_id, items[-1].id)

    def _insert_locked(self, item: Item) -> None:
        message = item.message
        self._conn.execute(
            f"INSERT INTO {table(message.priority)} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (item.id, message.stream, message.topic, message.payload, int(message.retain), int(item.held),
             item.created_ms, message.size),
        )
        self._count += 1
        self._bytes += message.size
        if self._streams.get(message.stream, -1) < message.priority:
            self._streams[message.stream] = int(message.priority)
        self._top[message.stream] = max(item.id, self._top.get(message.stream, 0))

    def _pragma(self, name: str) -> int:
        return int(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def _pages_in_use(self) -> int:
        return int(self._conn.execute("SELECT page_count - freelist_count FROM pragma_page_count, "
                                      "pragma_freelist_count").fetchone()[0])

    def _evict_locked(self) -> None:
        """Least important, then oldest, until the pages in use fit the budget."""
        dropped: dict[int, int] = {}
        priorities = iter(PRIORITIES)
        priority = next(priorities)
        while self._count and (excess := self._pages_in_use() - self.bounds.db_pages) > 0:
            per_page = self._count / max(1, self._pragma("page_count"))
            rows = self._conn.execute(
                f"DELETE FROM {table(priority)} WHERE id IN (SELECT id FROM {table(priority)} ORDER BY id LIMIT ?)"
                " RETURNING size",
                (max(1, min(256, int(excess * per_page))),),
            ).fetchall()
            if not rows:
                priority = next(priorities)
                continue
            dropped[priority] = dropped.get(priority, 0) + len(rows)
            self._count -= len(rows)
            self._bytes -= sum(size for (size,) in rows)
        self._count_drops_locked("full", dropped)

    def _count_drops_locked(self, reason: str, dropped: dict[int, int]) -> None:
        for priority, count in dropped.items():
            self._bump_locked(f"dropped.{reason}.{priority_name(priority)}", count)
            self._drops.append((reason, priority, count))

    def add_counters(self, counts: dict[str, int], last_ack_ms: int | None = None) -> None:
        """Add counts kept elsewhere while the spool could not be written (drops, acks)."""

        def body() -> None:
            for name, by in counts.items():
                if by:
                    self._bump_locked(name, by)
            if last_ack_ms is not None:
                self._conn.execute(
                    "INSERT INTO counter (name, value) VALUES ('last_ack_ms', ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)", (last_ack_ms,))

        self._write("count", body)

    def _bump_locked(self, name: str, by: int) -> None:
        self._conn.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + ?",
            (name, by, by),
        )

    def _write(self, what: str, body: Callable[[], T]) -> T:
        """Run `body` in one IMMEDIATE transaction. On failure the real error is logged first: a
        failed write may have rolled the transaction back already, and a ROLLBACK would then
        fail with "cannot rollback - no transaction is active", hiding it. Then the in-memory
        counts are re-read from the database."""
        with self._lock:
            self._drops.clear()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                result = body()
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if not isinstance(exc, ReserveReached):
                    log.error("spool write failed op=%s error=%s code=%s path=%s", what, exc,
                              getattr(exc, "sqlite_errorname", type(exc).__name__), self.path)
                self._rollback_locked()
                raise
            for reason, priority, count in self._drops:
                log.warning("spool dropped messages reason=%s priority=%s count=%d", reason,
                            priority_name(priority), count)
            self._bound_wal_locked()
            return result

    def _rollback_locked(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("spool rollback failed error=%s", exc)
        try:
            self._reload_locked()
        except sqlite3.Error as exc:
            log.warning("spool counts not re-read error=%s", exc)

    def _bound_wal_locked(self) -> None:
        """Cut the WAL back to its bound if a large transaction took it beyond."""
        if _file_size(self._wal) > self.bounds.wal_bytes:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("spool checkpoint failed error=%s", exc)

    def reload(self) -> None:
        """Re-read depth, bytes, streams and the last id from the database."""
        with self._lock:
            self._reload_locked()

    def _reload_locked(self) -> None:
        count, size, top = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(MAX(id), 0) FROM message").fetchone()
        self._count, self._bytes, self.last_id = int(count), int(size), int(top)
        rows = self._conn.execute("SELECT stream, MAX(priority), MAX(id) FROM message GROUP BY stream").fetchall()
        self._streams: dict[str, int] = {stream: priority for stream, priority, _ in rows}
        # No row of a stream has an id above this (deletes may leave it high: then a read finds nothing).
        self._top: dict[str, int] = {stream: top for stream, _, top in rows}

    def expire(self) -> int:
        """Drop messages older than max_age; return how many."""
        cutoff = self._clock_ms() - self.max_age_ms

        def body() -> int:
            dropped: dict[int, int] = {}
            for priority in PRIORITIES:
                rows = self._conn.execute(
                    f"DELETE FROM {table(priority)} WHERE created_ms < ? RETURNING size", (cutoff,)).fetchall()
                if rows:
                    dropped[priority] = len(rows)
                    self._count -= len(rows)
                    self._bytes -= sum(size for (size,) in rows)
            self._count_drops_locked("age", dropped)
            return sum(dropped.values())

        return self._write("expire", body)

    def ack(self, ids: Iterable[int], *, acked_elsewhere: int = 0) -> int:
        """Remove acknowledged messages (unknown ids are ignored); count them and
        `acked_elsewhere` (acks of messages the spool never held) as acked; return how many left."""
        id_list = list(ids)
        if not id_list and not acked_elsewhere:
            return 0

        def body() -> int:
            removed = 0
            for start in range(0, len(id_list), 500):
                chunk = id_list[start:start + 500]
                for priority in PRIORITIES:
                    rows = self._conn.execute(f"DELETE FROM {table(priority)} WHERE id IN"
                                              f" ({','.join('?' * len(chunk))}) RETURNING size", chunk).fetchall()
                    removed += len(rows)
                    self._count -= len(rows)
                    self._bytes -= sum(size for (size,) in rows)
            self._bump_locked("acked", removed + acked_elsewhere)
            self._conn.execute(
                "INSERT INTO counter (name, value) VALUES ('last_ack_ms', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (self._clock_ms(),),
            )
            return removed

        return self._write("ack", body)

    def release_held(self, keep: int | None = None) -> int:
        """Make held messages (earlier connections' Wills) publishable, except `keep`; return how many."""
        return self._write("release", lambda: sum(self._conn.execute(
            f"UPDATE {table(p)} SET held = 0 WHERE held = 1 AND id IS NOT ?", (keep,)).rowcount for p in PRIORITIES))

    def release(self, ids: Sequence[int]) -> int:
        """Make these held messages publishable (released earlier while the spool could not be written)."""
        marks = ",".join("?" * len(ids))
        return self._write("release", lambda: sum(self._conn.execute(
            f"UPDATE {table(p)} SET held = 0 WHERE id IN ({marks})", tuple(ids)).rowcount for p in PRIORITIES))

    def held_ids(self, keep: int | None = None) -> set[int]:
        """Ids of the held messages, except `keep`."""
        with self._lock:
            return {row[0] for row in self._conn.execute(
                "SELECT id FROM message WHERE held = 1 AND id IS NOT ?", (keep,))}

    # -- reads --------------------------------------------------------------------------

    def rows(self, stream: str, after: int, limit: int, released: Sequence[int] = ()) -> list[Spooled]:
        """Up to `limit` publishable messages of `stream` with an id above `after`, oldest first;
        `released`: held messages to treat as released."""
        with self._lock:
            if self._top.get(stream, 0) <= after:
                return []  # nothing newer: no query (the publisher asks every stream after each put)
            rows = self._conn.execute(
                "SELECT id, topic, payload, retain FROM message"
                f" WHERE stream = ? AND id > ? AND (held = 0 OR id IN ({','.join('?' * len(released))}))"
                " ORDER BY id LIMIT ?",
                (stream, after, *released, limit),
            ).fetchall()
        return [Spooled(r[0], stream, r[1], bytes(r[2]), bool(r[3])) for r in rows]

    def next_batch(self, cursors: dict[str, int], limit: int) -> list[Spooled]:
        """Up to `limit` messages after each stream's cursor, advancing `cursors` (see `fair_batch`)."""
        order = stream_order(self._streams, self._turn)
        self._turn += 1
        return fair_batch(order, cursors, limit, self.rows)

    def stats(self) -> SpoolStats:
        with self._lock:
            return read_stats(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def stream_order(streams: dict[str, int], turn: int) -> list[str]:
    """Most important streams first; equal ones take turns leading, call after call (the
    publisher refills one free slot at a time, so a fixed order would starve the last)."""
    levels: dict[int, list[str]] = {}
    for stream, priority in streams.items():
        levels.setdefault(priority, []).append(stream)
    order: list[str] = []
    for priority in sorted(levels, reverse=True):
        names = sorted(levels[priority])
        at = turn % len(names)
        order += names[at:] + names[:at]
    return order


def fair_batch(order: list[str], cursors: dict[str, int], limit: int,
               rows: Callable[[str, int, int], list[Spooled]]) -> list[Spooled]:
    """Up to `limit` messages after each stream's cursor, advancing `cursors`. Each stream in
    `order` first gets an equal share; leftover room goes to streams in the same order.
    Within a stream, oldest first."""
    share = max(1, limit // max(1, len(order)))
    out: list[Spooled] = []
    for per_stream in (share, limit):
        for stream in order:
            room = min(per_stream, limit - len(out))
            if room <= 0:
                break
            got = rows(stream, cursors.get(stream, 0), room)
            if got:
                cursors[stream] = got[-1].id
                out.extend(got)
    return out


def is_corruption(exc: BaseException) -> bool:
    """Whether a SQLite error says the file is damaged (not full, locked or read-only)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    return (name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text
            or "not a database" in text)


def read_stats(conn: sqlite3.Connection) -> SpoolStats:
    """Spool figures from an open connection (the daemon's, or a read-only one)."""
    by_priority = {name.lower(): 0 for name in Priority.__members__}
    depth = size = 0
    for priority, count, total in conn.execute(
        "SELECT priority, COUNT(*), SUM(size) FROM message GROUP BY priority"
    ).fetchall():
        by_priority[priority_name(priority)] = count
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
