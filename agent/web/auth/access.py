"""Who a request comes from (`Caller`), worked out once per request by the middleware from the
connection, the trusted proxy's headers, a bearer token or the session cookie; and the `Access`
state a board process keeps (the store, its config, the clock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.fleet.store import Database
from agent.web.auth import sessions, tokens, users
from agent.web.auth.proxy import networks
from agent.web.config import BoardConfig

COOKIE = "board_session"
OPEN_CHECK_S = 2.0  # how stale "are there users yet?" may be: the first user added closes an open board this fast


@dataclass(frozen=True)
class Caller:
    addr: str  # the client's address (the proxy's word for it only when the proxy is trusted)
    https: bool  # the client's connection is HTTPS (ours, or a trusted proxy's)
    username: str | None = None  # a logged-in user
    role: str | None = None
    method: str | None = None  # how the session was made: "password", "oidc"
    session_token: str | None = None
    scope: str | None = None  # a bearer token's scope
    token_name: str | None = None
    open_board: bool = False  # no users yet and the board listens where that is allowed: no login
    stale_cookie: bool = False  # a session cookie that opens no session (expired, logged out)


class Access:
    def __init__(self, db: Database, config: BoardConfig, *, may_open: bool,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.config, self.clock, self.may_open = db, config, clock, may_open
        self.trusted = networks(config.proxy.trusted)
        self._lock = threading.Lock()
        self._open: tuple[float, bool] = (float("-inf"), False)
        self._logins: set[str] = set()  # user names and addresses with a login being checked now

    def begin_login(self, username: str, addr: str) -> bool:
        """Claim the one login attempt in flight for this user name and for this address (False:
        one is already being checked). Without it, parallel attempts would all be checked before
        any failure was counted, and the rate limit would let a burst through."""
        keys = {f"user:{username}", f"addr:{addr}"}
        with self._lock:
            if keys & self._logins:
                return False
            self._logins |= keys
        return True

    def end_login(self, username: str, addr: str) -> None:
        with self._lock:
            self._logins -= {f"user:{username}", f"addr:{addr}"}

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def open_board(self) -> bool:
        """No users yet, on an address where that is allowed (loopback, or --insecure-listen)."""
        if not self.may_open:
            return False
        now = time.monotonic()
        with self._lock:
            checked, is_open = self._open
        if now - checked >= OPEN_CHECK_S:
            is_open = users.count(self.db) == 0
            with self._lock:
                self._open = (now, is_open)
        return is_open

    def identify(self, addr: str, https: bool, authorization: str | None, cookie: str | None) -> Caller:
        """The caller: a bearer token wins over a cookie (programs send no cookies); blocking (store reads)."""
        now = self.now_ms()
        is_open = self.open_board()
        if authorization is not None:
            kind, _, value = authorization.partition(" ")
            found = tokens.find(self.db, value.strip(), now) if kind.lower() == "bearer" and value.strip() else None
            if found is None:
                return Caller(addr, https, open_board=is_open)
            return Caller(addr, https, scope=found.scope, token_name=found.name, open_board=is_open)
        if cookie:
            session = sessions.find(self.db, cookie, now)
            if session is not None:
                return Caller(addr, https, username=session.username, role=session.role, method=session.method,
                              session_token=cookie, open_board=is_open)
        return Caller(addr, https, open_board=is_open, stale_cookie=bool(cookie))

    def still_valid(self, caller: Caller) -> bool:
        """Is what let this caller in still there (its session, its token, the open board)? For long
        streams (/api/events): a logout, an expiry, a removed user or a revoked token ends them."""
        now = self.now_ms()
        if caller.session_token is not None:
            return sessions.find(self.db, caller.session_token, now) is not None
        if caller.token_name is not None:
            return any(t.name == caller.token_name for t in tokens.all_tokens(self.db))
        return self.open_board()
