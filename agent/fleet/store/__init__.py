"""The fleet store: verified messages, each node's latest state, verdict history, rejections and
the replay guard, in SQLite (default, in the board's state dir) or PostgreSQL.

db (connections, one SQL for both), schema (versioned migrations), writes (ingest admits
batches), assess (the board's verdict per node), upkeep (heartbeats, lease, retention),
reads (what the web shows).
"""

from __future__ import annotations

from pathlib import Path

from agent.fleet.store.db import Database, StoreError, describe
from agent.fleet.store.schema import migrate

DEFAULT_FILE = "fleet.sqlite"

__all__ = ["Database", "StoreError", "default_url", "describe", "open_store"]


def default_url(state_dir: Path) -> str:
    return str(state_dir / DEFAULT_FILE)


def open_store(url: str, *, pool_size: int = 4) -> Database:
    """Connect and bring the schema up to date; StoreError says what is wrong and where."""
    db = Database(url, pool_size=pool_size)
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db
