"""A corrupt spool is moved aside, kept for forensics, and what can still be read is salvaged.

Power cuts on cheap flash and bad pages damage SQLite files in ways the WAL cannot repair.
Starting anyway matters more than any one message: `edge-agent run` must never crash-loop
on a damaged spool. So the damaged file (with its WAL) is renamed to
`spool.db.corrupt-<UTC time>` beside the spool, the newest `KEEP` such copies are kept and
older ones deleted, and each copy gets a `.json` record saying what happened.

Salvage reads the moved copy read-only, table by table. A scan in id order stops at the
first damaged page, so the table is also scanned from its end; the ids its indexes still
list are then fetched a chunk at a time (a chunk that fails, one id at a time); without a
readable index, the gaps are read by halving id ranges down to `MIN_SPAN` ids. One bad page
thus costs the rows on it, not the rest of the file. Every row must also pass
`accept(topic, payload)` (the daemon checks the signature with the node's own key): damaged
bytes that SQLite cannot see are never published under the node's name. How many rows the
file held comes from COUNT(*) over whichever b-tree of each table still reads; unknown if
none does.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.core.reading import Priority
from agent.delivery.memqueue import Item
from agent.delivery.message import Message

log = logging.getLogger(__name__)

KEEP = 3  # quarantined copies kept per spool (the oldest go first)
MIN_SPAN = 8  # ids: a range this short that still fails to read is given up
MAX_QUERIES = 20_000  # range reads spent halving, at most (a few seconds)
MARK = ".corrupt-"
SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Quarantine:
    """One quarantined spool: when, where the damaged file lies, why, and what was saved."""

    at_ms: int
    path: str
    problem: str
    salvaged: int
    lost: int | None  # None: the damaged file no longer says how many messages it held

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def summary(self) -> str:
        lost = "an unknown number" if self.lost is None else str(self.lost)
        return f"spool was corrupt ({self.problem[:120]}); moved to {self.path}; {self.salvaged} messages " \
               f"salvaged, {lost} lost"


@dataclass(frozen=True)
class Salvage:
    items: list[Item]
    counters: dict[str, int]  # the damaged spool's drop and ack counts, where readable
    held: int | None  # how many messages the damaged file held, if it still says


def move_aside(path: Path, at_ms: int, keep: int = KEEP) -> Path:
    """Rename the spool and its WAL/journal to `<name>.corrupt-<time>`; keep the newest `keep` copies."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(at_ms / 1000)) + f".{at_ms % 1000:03d}Z"
    target = path.with_name(f"{path.name}{MARK}{stamp}")
    for suffix in ("", *SIDE_FILES):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, target.with_name(target.name + suffix))
    prune(path, keep)
    return target


def copies(path: Path) -> list[Path]:
    """The quarantined copies of the spool at `path`, oldest first."""
    found = [p for p in path.parent.glob(f"{path.name}{MARK}*")
             if not p.name.endswith((".json", *SIDE_FILES))]
    return sorted(found, key=lambda p: p.name)


def prune(path: Path, keep: int) -> None:
    for old in copies(path)[:-keep] if keep else copies(path):
        for suffix in ("", ".json", *SIDE_FILES):
            try:
                old.with_name(old.name + suffix).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot delete an old quarantined spool path=%s error=%s", old, exc)


def write_record(record: Quarantine) -> None:
    target = Path(record.path)
    target.with_name(target.name + ".json").write_text(json.dumps(record.as_dict(), indent=1))


def records(path: Path) -> list[dict[str, object]]:
    """The records of the quarantined copies of the spool at `path`, oldest first (for `status`)."""
    out = []
    for copy in copies(path):
        try:
            out.append(json.loads(copy.with_name(copy.name + ".json").read_text()))
        except (OSError, ValueError):
            out.append({"path": str(copy), "problem": "no record (the disk may have been full)"})
    return out


@dataclass(frozen=True)
class _Table:
    """Where a spool layout keeps messages: a table, its indexes, and the columns to read."""

    name: str
    indexes: tuple[str, ...]
    columns: str  # id, stream, topic, payload, priority, retain, held, created_ms


def _tables(conn: sqlite3.Connection) -> list[_Table]:
    """One table per priority (agent.delivery.spool), or the single table spools had before."""
    rest = "retain, held, created_ms"
    if _try(conn, "SELECT type FROM sqlite_master WHERE name = 'message'") == "table":
        return [_Table("message", ("message_by_eviction", "message_by_stream", "message_by_age"),
                       f"id, stream, topic, payload, priority, {rest}")]
    return [_Table(f"message_{p}", (f"message_{p}_by_stream", f"message_{p}_by_age"),
                   f"id, stream, topic, payload, {p}, {rest}") for p in (int(p) for p in Priority)]


def salvage(path: Path, accept: Callable[[str, bytes], bool]) -> Salvage:
    """Every message of the damaged spool at `path` that can still be read and passes `accept`."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        # A truncated file is shorter than its header says, which SQLite calls corrupt before
        # reading anything; with writable_schema it reads what is there (this connection never writes).
        conn.execute("PRAGMA writable_schema=ON")
    except sqlite3.Error as exc:
        log.error("cannot open the quarantined spool to salvage it path=%s error=%s", path, exc)
        return Salvage([], {}, None)
    try:
        tables = _tables(conn)
        rows = sorted((row for t in tables for row in _readable_rows(conn, t)), key=lambda row: row[0])
        items = [item for row in rows if (item := _item(row, accept)) is not None]
        counts = [_count(conn, t) for t in tables]
        held = None if None in counts else sum(c for c in counts if c is not None)
        return Salvage(items, _counters(conn), held)
    finally:
        conn.close()


def _readable_rows(conn: sqlite3.Connection, where: _Table) -> list[tuple]:
    """The rows of one table that still read: a scan from each end; then, where that stopped at
    damage, the ids the indexes still list, fetched one chunk at a time; without a readable
    index, the gaps read by halving. A table that does not exist has no rows."""
    got: dict[int, tuple] = {}
    select = f"SELECT {where.columns} FROM {where.name}"
    try:
        complete, _ = _read(conn, f"{select} ORDER BY id", (), got)
    except sqlite3.OperationalError:  # no such table
        return []
    if complete:
        return list(got.values())
    _read(conn, f"{select} ORDER BY id DESC", (), got)
    listed: dict[int, tuple] = {}
    for index in where.indexes:
        _safe_read(conn, f"SELECT id FROM {where.name} INDEXED BY {index}", listed)
    if listed:
        missing = sorted(set(listed) - set(got))
        for start in range(0, len(missing), 100):
            _fetch(conn, select, missing[start:start + 100], got)
    else:
        top = _try(conn, f"SELECT MAX(id) FROM {where.name}")  # the b-tree's right edge may still read
        ids = [0, *sorted(got), max(top if isinstance(top, int) else 0, max(got, default=0)) + 1]
        budget = [MAX_QUERIES]
        for low, high in ((a + 1, b - 1) for a, b in zip(ids, ids[1:]) if b - a > 1):
            _halve(conn, select, low, high, got, budget)
    return list(got.values())


def _safe_read(conn: sqlite3.Connection, sql: str, got: dict[int, tuple]) -> None:
    try:
        _read(conn, sql, (), got)
    except sqlite3.OperationalError:  # no such index
        pass


def _read(conn: sqlite3.Connection, sql: str, args: tuple, got: dict[int, tuple]) -> tuple[bool, int | None]:
    """Add rows (keyed by their first column) until the end or the first damage: whether it
    reached the end, and the key of the last row read."""
    last = None
    try:
        for row in conn.execute(sql, args):
            got[row[0]] = row
            last = row[0]
    except sqlite3.DatabaseError:
        return False, last
    return True, last


def _fetch(conn: sqlite3.Connection, select: str, ids: list[int], got: dict[int, tuple]) -> None:
    query = f"{select} WHERE id IN ({{}})"
    if not _read(conn, query.format(",".join("?" * len(ids))), tuple(ids), got)[0] and len(ids) > 1:
        for one in ids:
            _read(conn, query.format("?"), (one,), got)


def _halve(conn: sqlite3.Connection, select: str, low: int, high: int, got: dict[int, tuple],
           budget: list[int]) -> None:
    """Read ids in [low, high]; a range that fails is halved, down to MIN_SPAN ids, within the
    query budget (ids can be sparse: the store numbers from the clock after some faults)."""
    if low > high or budget[0] <= 0:
        return
    budget[0] -= 1
    complete, last = _read(conn, f"{select} WHERE id BETWEEN ? AND ? ORDER BY id", (low, high), got)
    if complete:
        return
    low = low if last is None else last + 1
    if high - low < MIN_SPAN:
        return
    middle = (low + high) // 2
    _halve(conn, select, low, middle, got, budget)
    _halve(conn, select, middle + 1, high, got, budget)


def _count(conn: sqlite3.Connection, where: _Table) -> int | None:
    """How many rows the table held: COUNT(*) over whichever of its b-trees still reads."""
    for sql in [f"SELECT COUNT(*) FROM {where.name} NOT INDEXED",
                *(f"SELECT COUNT(*) FROM {where.name} INDEXED BY {index}" for index in where.indexes)]:
        try:
            return int(conn.execute(sql).fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return 0
        except sqlite3.Error:
            continue
    return None


def _try(conn: sqlite3.Connection, sql: str) -> object:
    try:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None
    except sqlite3.Error:
        return None


def _counters(conn: sqlite3.Connection) -> dict[str, int]:
    try:
        pairs = conn.execute("SELECT name, value FROM counter").fetchall()
    except sqlite3.Error:
        return {}
    return {name: value for name, value in pairs
            if isinstance(name, str) and isinstance(value, int) and (name.startswith("dropped.") or name == "acked")}


def _item(row: tuple, accept: Callable[[str, bytes], bool]) -> Item | None:
    id_, stream, topic, payload, priority, retain, held, created_ms = row
    if not (isinstance(stream, str) and isinstance(topic, str) and isinstance(payload, bytes)
            and priority in set(Priority) and isinstance(created_ms, int)):
        return None
    if not accept(topic, payload):
        return None
    message = Message(topic, payload, stream, Priority(priority), bool(retain))
    return Item(id_, message, bool(held), created_ms)
