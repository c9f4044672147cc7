"""The board's local users: a name, a role and an Argon2id password hash in the fleet store
(table board_users), so every web process sharing the store knows them and a restart keeps them."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from agent.fleet.store import Database

ROLES = ("viewer", "admin")  # lowest first: a role may do what every role before it may
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
MIN_PASSWORD = 10  # characters; length is what makes a password hard to guess (NIST SP 800-63B asks 8 at least)
MAX_PASSWORD = 1024  # bounds the work one login attempt can ask of the hasher

_hasher = PasswordHasher()  # argon2-cffi's defaults: Argon2id, 64 MiB, 3 passes (RFC 9106's second choice)
# Password checks at once per process: each takes 64 MiB, so a flood of logins from many
# addresses queues here instead of taking the memory of the machine.
CHECKS_AT_ONCE = 4
_checking = threading.BoundedSemaphore(CHECKS_AT_ONCE)
# Checked when the name is unknown, so an unknown name takes as long as a wrong password.
_DUMMY = _hasher.hash("not a password of anyone")


@dataclass(frozen=True)
class User:
    username: str
    role: str
    created_ms: int
    changed_ms: int


def check_username(name: str) -> str:
    if not USERNAME.match(name):
        raise ValueError(f"{name!r} is not a valid user name: 1-128 letters, digits, '_', '.', '@', '+' or '-', "
                         "starting with a letter or digit")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"{role!r} is not a role: use {' or '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def at_least(role: str, needed: str) -> bool:
    """True when `role` may do what `needed` may (admin ≥ viewer); an unknown role may nothing."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def add(db: Database, username: str, password: str, role: str, now_ms: int) -> bool:
    """Create the user, or set a new password and role for an existing one (True when created).
    A changed password or role ends the user's sessions."""
    check_username(username)
    check_role(role)
    digest = _hasher.hash(check_password(password))
    with db.transaction() as tx:
        existed = bool(tx.rows("SELECT 1 FROM board_users WHERE username = %s", (username,)))
        tx.run("INSERT INTO board_users (username, role, password_hash, created_ms, changed_ms) "
               "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO UPDATE SET role = excluded.role, "
               "password_hash = excluded.password_hash, changed_ms = excluded.changed_ms",
               (username, role, digest, now_ms, now_ms))
        tx.run("DELETE FROM board_sessions WHERE username = %s AND method = 'password'", (username,))
    return not existed


def remove(db: Database, username: str) -> bool:
    """Delete the user and end their sessions; False when there was no such user."""
    with db.transaction() as tx:
        gone = tx.count("DELETE FROM board_users WHERE username = %s", (username,))
        tx.run("DELETE FROM board_sessions WHERE username = %s AND method = 'password'", (username,))
    return gone > 0


def all_users(db: Database) -> list[User]:
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT username, role, created_ms, changed_ms FROM board_users ORDER BY username")
    return [User(*row) for row in rows]


def count(db: Database) -> int:
    with db.transaction(write=False) as tx:
        return int(tx.rows("SELECT COUNT(*) FROM board_users")[0][0])


def verify(db: Database, username: str, password: str) -> str | None:
    """The user's role when the password is theirs, else None (same work for an unknown name)."""
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT role, password_hash FROM board_users WHERE username = %s", (username,))
    role, digest = rows[0] if rows else (None, _DUMMY)
    try:
        with _checking:
            _hasher.verify(digest, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    return role
