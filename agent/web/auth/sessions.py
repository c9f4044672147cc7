"""Browser sessions: a random token in the cookie, its SHA-256 in the fleet store (board_sessions),
so a copy of the store does not hand out live sessions, and every web process sharing the store
honours a login made at another, and a logout."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from agent.fleet.store import Database

TOKEN_BYTES = 32  # 256 random bits: guessing is hopeless, so a fast hash of it is enough


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    method: str  # "password", "oidc", ...: how the user proved who they are
    expires_ms: int


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(db: Database, username: str, role: str, method: str, *, addr: str, lifetime_s: float,
          now_ms: int) -> str:
    """A new session for a user who has just proved who they are; returns the token for the cookie.
    Sessions that have expired are removed on the way (no separate cleaner needed)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with db.transaction() as tx:
        tx.run("DELETE FROM board_sessions WHERE expires_ms <= %s", (now_ms,))
        tx.run("INSERT INTO board_sessions (token_hash, username, role, method, addr, created_ms, expires_ms) "
               "VALUES (%s, %s, %s, %s, %s, %s, %s)",
               (digest(token), username, role, method, addr, now_ms, now_ms + int(lifetime_s * 1000)))
    return token


def find(db: Database, token: str, now_ms: int) -> Session | None:
    """The live session the token opens, or None (unknown, ended or expired)."""
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT username, role, method, expires_ms FROM board_sessions WHERE token_hash = %s",
                       (digest(token),))
    if not rows or rows[0][3] <= now_ms:
        return None
    return Session(*rows[0])


def end(db: Database, token: str) -> Session | None:
    """Delete the session the token opens; returns what it was (None when there was none)."""
    with db.transaction() as tx:
        rows = tx.rows("DELETE FROM board_sessions WHERE token_hash = %s "
                       "RETURNING username, role, method, expires_ms", (digest(token),))
    return Session(*rows[0]) if rows else None
