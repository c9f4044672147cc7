"""The board's audit trail: each login, failed login, logout and admin action is one log line
(`board login ok user=alice addr=10.0.0.7`) and one row in the fleet store (board_audit), which
admins read at /admin and the login rate limit counts. No password or token is ever written."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.fleet.store import Database

log = logging.getLogger("agent.web.audit")

# event -> log level: a failed or refused login is worth a warning, the rest is information.
EVENTS = {"login_ok": logging.INFO, "login_failed": logging.WARNING, "logout": logging.INFO,
          "user_added": logging.INFO, "user_changed": logging.INFO, "user_removed": logging.INFO,
          "token_added": logging.INFO, "token_removed": logging.INFO,
          "sso_refused": logging.WARNING}  # single sign-on (agent.web.auth.oidc_login)
RECENT = 200  # rows the admin page shows


@dataclass(frozen=True)
class Entry:
    ms: int
    event: str
    username: str
    addr: str
    detail: str


def line(entry: Entry) -> str:
    """The log line: the event in words, then key=value (values without spaces)."""
    detail = f" {entry.detail}" if entry.detail else ""
    return f"board {entry.event.replace('_', ' ')} user={entry.username or '-'} addr={entry.addr or '-'}{detail}"


def record(db: Database, event: str, username: str, addr: str, now_ms: int, detail: str = "") -> Entry:
    """Write the row, then the log line; `detail` is `key=value ...`, never a secret."""
    entry = Entry(now_ms, event, username, addr, detail)
    with db.transaction() as tx:
        tx.run("INSERT INTO board_audit (ms, event, username, addr, detail) VALUES (%s, %s, %s, %s, %s)",
               (now_ms, event, username, addr, detail))
    log.log(EVENTS[event], "%s", line(entry))
    return entry


def recent(db: Database, limit: int = RECENT) -> list[Entry]:
    with db.transaction(write=False) as tx:
        rows = tx.rows("SELECT ms, event, username, addr, detail FROM board_audit ORDER BY ms DESC, id DESC "
                       "LIMIT %s", (limit,))
    return [Entry(*row) for row in rows]


def failures_since(db: Database, username: str, addr: str, since_ms: int) -> tuple[list[int], list[int]]:
    """Times of failed logins since `since_ms`: (for this user name, from this address)."""
    with db.transaction(write=False) as tx:
        by_user = tx.rows("SELECT ms FROM board_audit WHERE event = 'login_failed' AND username = %s AND ms > %s",
                          (username, since_ms))
        by_addr = tx.rows("SELECT ms FROM board_audit WHERE event = 'login_failed' AND addr = %s AND ms > %s",
                          (addr, since_ms))
    return [ms for (ms,) in by_user], [ms for (ms,) in by_addr]
