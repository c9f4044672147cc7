"""One way to talk to the fleet store's database: SQLite (a file, nothing to install) or
PostgreSQL (`postgresql://...`, psycopg 3 with its connection pool).

Every statement is written once, in the SQL both understand (`INSERT ... ON CONFLICT`,
`RETURNING`, row values, `CASE` instead of LEAST/GREATEST), with `%s` placeholders that
become `?` for SQLite. `Database.transaction()` hands out a connection for one transaction:
committed when the block ends, rolled back when it raises.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

SQLITE, POSTGRESQL = "sqlite", "postgresql"
SQLITE_BUSY_MS = 30_000  # another process (ingest beside web, or a second ingest) holds the write lock


class StoreError(Exception):
    """The database refused or failed: the caller retries or reports, never loses the batch silently."""


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def fetchall(self) -> list[tuple]: ...
    def fetchone(self) -> tuple | None: ...


def describe(url: str) -> str:
    """The URL without its password, for logs and messages."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"


class Tx:
    """One transaction's connection: `run(sql, params)` and `rows(sql, params)`."""

    def __init__(self, cursor: Cursor, dialect: str) -> None:
        self.cursor, self.dialect = cursor, dialect

    def sql(self, text: str) -> str:
        return text.replace("%s", "?") if self.dialect == SQLITE else text

    def run(self, text: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(self.sql(text), params)

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        self.cursor.execute(self.sql(text), params)
        return self.cursor.fetchall()

    def many(self, template: str, rows: Sequence[Sequence[Any]], *, returning: bool = False) -> list[tuple]:
        """`template` (with `{rows}` where the VALUES rows go) for every row; with `returning`,
        the rows its RETURNING clause gave. SQLite: multi-row statements; PostgreSQL: one
        one-row statement run for every row in a pipeline (one round trip, the statement
        parsed once, where a long multi-row text would be parsed anew each time)."""
        if not rows:
            return []
        width = len(rows[0])
        one = "(" + ",".join(["%s"] * width) + ")"
        if self.dialect == POSTGRESQL:
            self.cursor.executemany(template.format(rows=one), rows, returning=returning)  # type: ignore[attr-defined]
            found: list[tuple] = []
            while returning:
                found += self.cursor.fetchall()
                if not self.cursor.nextset():  # type: ignore[attr-defined]
                    break
            return found
        found = []
        for part in ladder(rows):
            text, params = template.format(rows=",".join([one] * len(part))), [x for row in part for x in row]
            if returning:
                found += self.rows(text, params)
            else:
                self.run(text, params)
        return found

    def count(self, text: str, params: Sequence[Any] = ()) -> int:
        """rowcount of an UPDATE or DELETE."""
        self.cursor.execute(self.sql(text), params)
        return max(0, self.cursor.rowcount)


# Rows per multi-row statement come in these sizes only (137 rows: 64 + 64 + 4 + 4 + 1), so
# SQLite sees few distinct statements; 256 rows stay well under its parameter limit.
LADDER = (256, 64, 16, 4, 1)


def ladder(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    start = 0
    for size in LADDER:
        while len(items) - start >= size:
            yield items[start:start + size]
            start += size


class Database:
    """A pool of connections to one SQLite file or one PostgreSQL database."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        if url.startswith(("postgresql://", "postgres://")):
            self.dialect = POSTGRESQL
            self._pool = _postgres_pool(url, pool_size)
        else:
            self.dialect = SQLITE
            path = Path(url.removeprefix("sqlite://"))
            self.path = path
            self._sqlite: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
            self._opened: list[sqlite3.Connection] = []
            self._lock = threading.Lock()
            self._sqlite.put(self._open_sqlite())  # fail now, with the path in the message

    def _open_sqlite(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the fleet store: {exc}") from exc
        with self._lock:
            self._opened.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """One transaction; `write=False` for readers (SQLite: no write lock taken)."""
        if self.dialect == POSTGRESQL:
            with self._postgres_transaction() as tx:
                yield tx
            return
        try:
            conn = self._sqlite.get_nowait()
        except queue.Empty:
            conn = self._open_sqlite()
        try:
            # A writer takes the lock at once, so two writers never deadlock upgrading a read lock.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Tx(conn.cursor(), SQLITE)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        finally:
            self._sqlite.put(conn)

    @contextlib.contextmanager
    def _postgres_transaction(self) -> Iterator[Tx]:
        import psycopg

        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                yield Tx(cursor, POSTGRESQL)
        except psycopg.Error as exc:
            raise StoreError(f"{describe(self.url)}: {str(exc).strip()[:300]}") from exc

    def close(self) -> None:
        if self.dialect == POSTGRESQL:
            self._pool.close()
            return
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:  # "no transaction is active" after a failed write: the real error follows
        log.debug("rollback after a failed transaction error=%s", exc)


def _postgres_pool(url: str, size: int):
    try:
        import psycopg  # noqa: F401
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        raise StoreError("PostgreSQL needs psycopg: pip install 'edge-readiness-agent[board]'") from exc
    pool = ConnectionPool(url, min_size=1, max_size=size, open=False, name="fleet-store",
                          check=ConnectionPool.check_connection,  # a restarted server: reconnect, not fail
                          kwargs={"application_name": "edge-agent-fleet"})
    try:
        pool.open(wait=True, timeout=15)
    except Exception as exc:  # psycopg_pool.PoolTimeout and friends: say where and why
        pool.close()
        raise StoreError(f"{describe(url)}: cannot connect: {exc}") from exc
    return pool
