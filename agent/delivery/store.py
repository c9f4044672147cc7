"""The delivery store: the spool on disk, and a bounded memory queue for when the disk fails.

Storage faults never stop collection. Every message goes to the spool (agent.delivery.spool)
while it can be written. When a write fails (disk full, read-only remount, I/O error) or
would take the file system below the reserve, the store degrades: new messages go to a
bounded in-memory queue (agent.delivery.memqueue) that keeps the newest by the same
priority rules, while the spool's backlog is still read and published. Every `retry_s`
(gated by a free-space check, so a full disk costs a statvfs, not a failed write) the store
tries again: it deletes what was acknowledged meanwhile, moves the memory queue into the
spool in id order, adds the counts it kept (drops, acks), re-reads the spool's counts and
writes to disk again. Nothing is counted as dropped unless it was: a message the memory
queue evicted, or one lost in a corrupt file.

One id sequence numbers both places, and every id in memory is above every id in the spool
(memory only takes messages while the spool takes none, and moves to the spool oldest
first), so a stream's order is the spool's rows, then memory's, and a message keeps its id
when it moves, so a late PUBACK still finds it. When the spool cannot be opened at all, ids
start from the clock (milliseconds x 1000), above any id an older spool can hold.

A corrupt spool (PRAGMA quick_check at open, or "malformed" on any use) is quarantined
(agent.delivery.quarantine): moved aside, its readable messages salvaged into a fresh spool
under their ids, its counts carried over, the messages it lost counted as
`dropped.corrupt.unknown`; `quarantines` lists what happened for the node's status.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.core.timing import now_ms
from agent.delivery import quarantine
from agent.delivery.memqueue import Item, MemoryQueue
from agent.delivery.message import Message, Spooled
from agent.delivery.spool import (
    ReserveReached,
    Spool,
    SpoolCorrupt,
    SpoolStats,
    Sync,
    fair_batch,
    free_bytes,
    is_corruption,
    priority_name,
    stream_order,
)

log = logging.getLogger(__name__)

RETRY_S = 1.0  # how often a degraded store tries the disk again
MIGRATE_CHUNK = 500  # messages per transaction when the memory queue moves to the spool
LOG_EVERY_S = 10.0  # memory-queue drops are summed and logged at most this often
T = TypeVar("T")


def _probe(directory: Path) -> int | None:
    """The errno of creating a file in `directory` (None if that works): SQLite reports a
    read-only remount by ext4 as an I/O error, and only the file system tells them apart."""
    probe = directory / ".write-probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600))
        os.unlink(probe)
    except OSError as exc:
        return exc.errno
    return None


def cause_of(exc: BaseException, directory: Path) -> str:
    """A storage failure in the operator's words: disk full, read-only, I/O error, ..."""
    if isinstance(exc, ReserveReached):
        return "disk reserve reached"
    name = getattr(exc, "sqlite_errorname", "") or ""
    number = getattr(exc, "errno", None) or _probe(directory)
    if name.startswith("SQLITE_READONLY") or number == errno.EROFS:
        return "read-only"
    if name == "SQLITE_FULL" or number == errno.ENOSPC:
        return "disk full"
    if name.startswith("SQLITE_IOERR") or number == errno.EIO:
        return "I/O error"
    if name.startswith("SQLITE_CANTOPEN"):
        return "cannot open"
    return name or type(exc).__name__


@dataclass(frozen=True)
class StoreOptions:
    max_bytes: int
    max_age_s: float
    sync: Sync = "normal"
    min_free: int = 0
    memory_bytes: int = 8 * 1024**2


class Store:
    """Thread-safe, like the spool: the daemon puts from its loop, the publisher reads and acks."""

    def __init__(self, path: Path, options: StoreOptions, *, accept: Callable[[str, bytes], bool] = lambda t, p: True,
                 clock_ms: Callable[[], int] = now_ms, disk_free: Callable[[Path], int] = free_bytes,
                 retry_s: float = RETRY_S) -> None:
        self.path = path
        self.options = options
        self._accept = accept
        self._clock_ms = clock_ms
        self._disk_free = disk_free
        self._retry_s = retry_s
        self._lock = threading.RLock()
        self.memory = MemoryQueue(options.memory_bytes)
        self.generation = 0  # grows whenever something becomes publishable
        self._listeners: list[Callable[[], None]] = []
        self._turn = 0
        self._db: Spool | None = None
        self._writable = False
        self._next_id = 1
        self._pending_acks: set[int] = set()  # acked spool rows the spool could not delete yet
        self._released: set[int] = set()  # held spool rows released while the spool could not say so
        self._unsaved: dict[str, int] = {}  # counts the spool could not take yet
        self._unsaved_ack_ms: int | None = None
        self._unlogged_drops: dict[int, int] = {}
        self._drops_logged_at = 0.0
        self._retry_at = 0.0
        self.last_error = ""
        self.last_error_ms: int | None = None
        self.cause = ""
        self.degraded_since_ms: int | None = None
        self.quarantines: list[quarantine.Quarantine] = []
        self._quarantining = False
        with self._lock:
            self._open()
            if self._db is None:
                self._next_id = max(self._next_id, self._clock_ms() * 1000)

    # -- opening, degrading, recovering --------------------------------------------------

    def on_publishable(self, listener: Callable[[], None]) -> None:
        """Call `listener` (from whichever thread changed the store) whenever `generation` grows."""
        self._listeners.append(listener)

    def _publishable(self) -> None:
        self.generation += 1
        for listener in self._listeners:
            listener()

    def _open(self) -> None:
        try:
            self._db = Spool(self.path, max_bytes=self.options.max_bytes, max_age_s=self.options.max_age_s,
                             sync=self.options.sync, min_free=self.options.min_free, check=True,
                             clock_ms=self._clock_ms, disk_free=self._disk_free)
        except SpoolCorrupt as exc:
            if self._quarantining:  # the fresh spool is damaged too: the disk itself is failing
                self._degrade(exc, "open")
            else:
                self._quarantine(str(exc))
            return
        except (sqlite3.Error, OSError) as exc:
            self._degrade(exc, "open")
            return
        self._next_id = max(self._next_id, self._db.last_id + 1)
        self._writable = not self.memory.depth
        if self._writable and self.degraded_since_ms is None:
            self.cause = ""

    def _attempt(self, op: str, action: Callable[[Spool], T]) -> tuple[bool, T | None]:
        """Run `action` on the spool: (True, result), or (False, None) after quarantining a
        corrupt spool or degrading to memory."""
        if self._db is None:
            return False, None
        try:
            return True, action(self._db)
        except (sqlite3.Error, OSError, ReserveReached, SpoolCorrupt) as exc:
            if (isinstance(exc, SpoolCorrupt) or is_corruption(exc)) and not self._quarantining:
                self._quarantine(str(exc))
            else:
                self._degrade(exc, op)
            return False, None

    def _degrade(self, exc: BaseException, op: str) -> None:
        cause = cause_of(exc, self.path.parent)
        self.last_error, self.last_error_ms = f"{cause}: {exc}"[:300], self._clock_ms()
        self._retry_at = time.monotonic() + self._retry_s
        if self._writable or self.degraded_since_ms is None or cause != self.cause:
            level = logging.WARNING if isinstance(exc, ReserveReached) else logging.ERROR
            log.log(level, "spool not writable, keeping new messages in memory op=%s cause=%s error=%s "
                    "memory_max_bytes=%d path=%s", op, cause, exc, self.options.memory_bytes, self.path)
            self.degraded_since_ms = self.degraded_since_ms or self.last_error_ms
        self.cause = cause
        self._writable = False

    def _recover(self, *, force: bool = False) -> None:
        """Back to disk if it takes writes again: deletes acked rows, moves memory, saves counts."""
        if self._writable and not self._pending_acks and not self._released and not self._unsaved_counts():
            return
        if not force and time.monotonic() < self._retry_at:
            return
        self._retry_at = time.monotonic() + self._retry_s
        if not self._room_for_memory():
            return
        if self._db is None:
            self._open()
            if self._db is None:
                return
        if self._pending_acks:
            done, _ = self._attempt("ack", lambda db: db.ack(sorted(self._pending_acks)))
            if not done:
                return
            self._pending_acks.clear()
        if self._released:
            done, _ = self._attempt("release", lambda db: db.release(sorted(self._released)))
            if not done:
                return
            self._released.clear()
        while self.memory.depth:
            chunk = self.memory.oldest(MIGRATE_CHUNK)
            done, _ = self._attempt("move from memory", lambda db: db.insert(chunk))
            if not done:
                return
            self.memory.ack([item.id for item in chunk])
        done, _ = self._attempt("count", lambda db: db.add_counters(self._unsaved, self._unsaved_ack_ms))
        if not done:
            return
        self._unsaved, self._unsaved_ack_ms = {}, None
        done, _ = self._attempt("reload", lambda db: db.reload())
        if done and not self._writable:
            log.info("spool writable again path=%s degraded_for_s=%.0f depth=%d", self.path,
                     (self._clock_ms() - (self.degraded_since_ms or self._clock_ms())) / 1000, self.depth)
            self._writable, self.cause, self.degraded_since_ms = True, "", None
            self._publishable()

    def _unsaved_counts(self) -> bool:
        return bool(self._unsaved) or self._unsaved_ack_ms is not None

    def _room_for_memory(self) -> bool:
        """Cheap gate before writing: not read-only, and (with a reserve) room for the memory
        queue twice over above it, so the store does not flap at the edge of the reserve."""
        try:
            if os.statvfs(self.path.parent).f_flag & os.ST_RDONLY:
                return False
            if self.options.min_free:
                return self._disk_free(self.path.parent) >= self.options.min_free + 2 * self.memory.bytes
        except OSError:
            return False
        return True

    def _quarantine(self, problem: str) -> None:
        self._quarantining = True
        try:
            self._quarantine_now(problem)
        finally:
            self._quarantining = False

    def _quarantine_now(self, problem: str) -> None:
        log.error("spool is corrupt, quarantining it path=%s problem=%s", self.path, problem)
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db, self._writable = None, False
        at = self._clock_ms()
        try:
            moved = quarantine.move_aside(self.path, at)
        except OSError as exc:
            self._degrade(exc, "quarantine")
            return
        saved = quarantine.salvage(moved, self._accept)
        lost = None if saved.held is None else max(0, saved.held - len(saved.items))
        record = quarantine.Quarantine(at, str(moved), problem, len(saved.items), lost)
        self._keep_counts({**saved.counters, "dropped.corrupt.unknown": lost or 0})
        self._open()
        placed = 0
        for start in range(0, len(saved.items), MIGRATE_CHUNK):
            chunk = saved.items[start:start + MIGRATE_CHUNK]
            if not self._attempt("salvage", lambda db: db.insert(chunk))[0]:
                break
            placed = start + len(chunk)
        if placed < len(saved.items):
            self._count_memory_drops(self.memory.add_all(saved.items[placed:]))
        self._next_id = max(self._next_id, (saved.items[-1].id + 1) if saved.items else 1)
        self.quarantines.append(record)
        log.error("spool quarantined path=%s salvaged=%d lost=%s problem=%s", moved, record.salvaged,
                  "unknown" if lost is None else lost, problem)
        try:
            quarantine.write_record(record)
        except OSError as exc:
            log.warning("cannot write the quarantine record path=%s error=%s", moved, exc)
        self._publishable()
        self._retry_at = 0.0  # the next operation saves the counts and moves memory to the fresh spool

    def _keep_counts(self, counts: dict[str, int]) -> None:
        for name, by in counts.items():
            if by:
                self._unsaved[name] = self._unsaved.get(name, 0) + by

    def _count_memory_drops(self, dropped: dict[int, int]) -> None:
        self._keep_counts({f"dropped.memory.{priority_name(p)}": n for p, n in dropped.items()})
        for priority, count in dropped.items():
            self._unlogged_drops[priority] = self._unlogged_drops.get(priority, 0) + count
        if self._unlogged_drops and time.monotonic() - self._drops_logged_at >= LOG_EVERY_S:
            self._drops_logged_at = time.monotonic()
            for priority, count in sorted(self._unlogged_drops.items()):
                log.warning("memory queue dropped messages reason=memory priority=%s count=%d cause=%s",
                            priority_name(priority), count, self.cause)
            self._unlogged_drops.clear()

    # -- the spool's interface ------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self._writable

    @property
    def depth(self) -> int:
        with self._lock:
            on_disk = self._db.depth if self._db is not None else 0
            return on_disk - len(self._pending_acks) + self.memory.depth

    def put(self, message: Message, *, held: bool = False) -> int:
        return self.put_many([message], held=held)[0]

    def put_many(self, messages: Sequence[Message], *, held: bool = False) -> list[int]:
        """Queue messages (on disk if it takes them, else in memory); never raises for storage faults."""
        with self._lock:
            now = self._clock_ms()
            items = [Item(self._next_id + n, message, held, now) for n, message in enumerate(messages)]
            self._next_id += len(items)
            self._recover()
            if not (self._writable and self._attempt("insert", lambda db: db.insert(items))[0]):
                for item in items:
                    self._count_memory_drops(self.memory.put(item))
            self._publishable()
            return [item.id for item in items]

    def _rows(self, stream: str, after: int, limit: int) -> list[Spooled]:
        """The spool's rows of `stream` after `after` (skipping acked ones not yet deleted),
        then, once the spool has no more, memory's."""
        out: list[Spooled] = []
        if self._db is not None:
            wanted = limit + len(self._pending_acks)
            done, rows = self._attempt("read", lambda db: db.rows(stream, after, wanted, sorted(self._released)))
            if done and rows is not None:
                out = [row for row in rows if row.id not in self._pending_acks][:limit]
                if len(rows) == wanted:
                    return out
        for item in self.memory.batch(stream, after, limit - len(out)):
            message = item.message
            out.append(Spooled(item.id, stream, message.topic, message.payload, message.retain))
        return out

    def next_batch(self, cursors: dict[str, int], limit: int) -> list[Spooled]:
        """Up to `limit` messages after each stream's cursor, advancing `cursors` (spool.fair_batch)."""
        with self._lock:
            streams = self.memory.streams()
            for stream, priority in (self._db.streams if self._db is not None else {}).items():
                streams[stream] = max(priority, streams.get(stream, priority))
            order = stream_order(streams, self._turn)
            self._turn += 1
            return fair_batch(order, cursors, limit, self._rows)

    def ack(self, ids: Iterable[int]) -> int:
        """Remove acknowledged messages wherever they are (rows the spool cannot delete now are
        skipped until it can); return how many."""
        with self._lock:
            id_list = list(ids)
            in_memory = set(self.memory.ack(id_list))
            on_disk = [i for i in id_list if i not in in_memory]
            done, removed = self._attempt("ack", lambda db: db.ack(on_disk, acked_elsewhere=len(in_memory)))
            if done:
                return len(in_memory) + (removed or 0)
            if self._db is not None:
                self._pending_acks.update(i for i in on_disk if i <= self._db.last_id)
            self._keep_counts({"acked": len(in_memory)})
            self._unsaved_ack_ms = self._clock_ms()
            return len(in_memory) + len(on_disk)

    def release_held(self, keep: int | None = None) -> int:
        """Make held messages (earlier connections' Wills) publishable, except `keep`."""
        with self._lock:
            released = self.memory.release_held(keep)
            done, on_disk = self._attempt("release", lambda db: db.release_held(keep))
            if not done:  # remember it here until the spool takes writes again
                found, held = self._attempt("read", lambda db: db.held_ids(keep))
                self._released |= held or set()
                on_disk = len(held or ())
            self._publishable()
            return released + (on_disk or 0)

    def maintain(self) -> int:
        """At every status report: drop messages past max_age, and try the disk again; return
        how many expired."""
        with self._lock:
            self._recover(force=True)
            dropped = self.memory.expire(self._clock_ms() - int(self.options.max_age_s * 1000))
            self._keep_counts({f"dropped.age.{priority_name(p)}": n for p, n in dropped.items()})
            done, expired = self._attempt("expire", lambda db: db.expire())
            return sum(dropped.values()) + (expired or 0)

    def stats(self) -> SpoolStats:
        """The spool's figures with the memory queue's and the counts not yet on disk added."""
        with self._lock:
            done, base = self._attempt("stats", lambda db: db.stats())
            if base is None:
                base = SpoolStats(0, 0, 0, None, {}, {}, 0, None)
            by_priority = dict(base.depth_by_priority)
            for priority, count in self.memory.depth_by_priority().items():
                by_priority[priority_name(priority)] = by_priority.get(priority_name(priority), 0) + count
            dropped = dict(base.dropped)
            for name, count in self._unsaved.items():
                if name.startswith("dropped."):
                    dropped[name.removeprefix("dropped.")] = dropped.get(name.removeprefix("dropped."), 0) + count
            oldest = [ms for ms in (base.oldest_ms, self.memory.oldest_ms()) if ms is not None]
            acks = [ms for ms in (base.last_ack_ms, self._unsaved_ack_ms) if ms is not None]
            return SpoolStats(
                depth=base.depth - len(self._pending_acks) + self.memory.depth,
                bytes=base.bytes + self.memory.message_bytes,
                held=base.held - len(self._released) + self.memory.held(), oldest_ms=min(oldest, default=None),
                depth_by_priority=by_priority, dropped=dict(sorted(dropped.items())),
                acked=base.acked + self._unsaved.get("acked", 0), last_ack_ms=max(acks, default=None),
            )

    def health(self) -> dict[str, Any]:
        """The store's state for the node's status: where messages go, why, and what happened."""
        with self._lock:
            try:
                free: int | None = self._disk_free(self.path.parent)
            except OSError:
                free = None
            latest = self.quarantines[-1].as_dict() if self.quarantines else None
            return {
                "state": "ok" if self._writable else "degraded", "cause": self.cause,
                "since_ms": self.degraded_since_ms, "last_error": self.last_error,
                "last_error_ms": self.last_error_ms, "memory_depth": self.memory.depth,
                "memory_bytes": self.memory.bytes, "memory_max_bytes": self.options.memory_bytes,
                "acks_pending": len(self._pending_acks), "free_bytes": free, "min_free": self.options.min_free,
                "quarantined": latest, "quarantines": len(self.quarantines),
            }

    def adopt(self, items: Sequence[Item]) -> None:
        """Take over the memory queue of the store this one replaces (a config reload)."""
        with self._lock:
            if not items:
                return
            self._count_memory_drops(self.memory.add_all(items))
            self._next_id = max(self._next_id, items[-1].id + 1)
            self._writable, self._retry_at = False, 0.0  # they go to disk before anything newer
            self._publishable()

    def close(self, *, hand_over: bool = False) -> list[Item]:
        """A last try to put what memory holds on disk. What cannot go there is returned with
        `hand_over` (for the store that takes over), else lost, and said so."""
        with self._lock:
            self._recover(force=True)
            left = self.memory.oldest(self.memory.depth)
            if left and not hand_over:
                log.error("stopping with messages only in memory, they are lost count=%d bytes=%d cause=%s",
                          self.memory.depth, self.memory.bytes, self.cause)
            if self._db is not None:
                self._db.close()
                self._db = None
            return left if hand_over else []
