"""API bearer tokens (Prometheus scraping /metrics, scripts reading /api/*): a name, a scope and
the SHA-256 of the token in the fleet store (board_tokens). The token is shown once, when made."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from agent.fleet.store import Database
from agent.web.auth.sessions import digest

SCOPES = ("metrics", "read")  # metrics: /metrics only; read: what a viewer sees, /metrics included
PREFIX = "ebt_"  # recognisable in a leaked file or a secret scanner's rules
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
USED_EVERY_MS = 60_000  # last use is written at most this often (a scrape every 15 s needs no write each)


@dataclass(frozen=True)
class Token:
    name: str
    scope: str
    created_ms: int
    last_used_ms: int | None


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"{scope!r} is not a scope: use {' or '.join(SCOPES)}")
    return scope


def add(db: Database, name: str, scope: str, now_ms: int) -> str:
    """A new token; returns it (the only time it is seen). ValueError for a taken or bad name."""
    if not NAME.match(name):
        raise ValueError(f"{name!r} is not a valid token name: 1-64 letters, digits, '_', '.' or '-'")
    check_scope(scope)
    token = PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as tx:
        if tx.rows("SELECT 1 FROM board_tokens WHERE name = %s", (name,)):
            raise ValueError(f"a token named {name!r} exists: remove it first or choose another name")
        tx.run("INSERT INTO board_tokens (name, token_hash, scope, created_ms) VALUES (%s, %s, %s, %s)",
               (name, digest(token), scope, now_ms))
    return token


def remove(db: Database, name: str) -> bool:
    with db.transaction() as tx:
        return tx.count("DELETE FROM board_tokens WHERE name = %s", (name,)) > 0


def all_tokens(db: Database) -> list[Token]:
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT name, scope, created_ms, last_used_ms FROM board_tokens ORDER BY name")
    return [Token(*row) for row in rows]


def find(db: Database, token: str, now_ms: int) -> Token | None:
    """The token's record when it is one of ours (its last use noted), else None."""
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT name, scope, created_ms, last_used_ms FROM board_tokens WHERE token_hash = %s",
                       (digest(token),))
    if not rows:
        return None
    found = Token(*rows[0])
    if found.last_used_ms is None or now_ms - found.last_used_ms >= USED_EVERY_MS:
        with db.transaction() as tx:
            tx.run("UPDATE board_tokens SET last_used_ms = %s WHERE name = %s", (now_ms, found.name))
    return found
