"""What board access costs: requests per second for a small answer (/api/me) on an open board
(no users: no lookup), with a session cookie (one store read per request) and with a bearer
token, from one client over real sockets on a SQLite store; and what one password
check costs (Argon2id, argon2-cffi's defaults) against the SHA-256 a session lookup pays.
The ratios compare with the open board measured in the same run.

    .venv/bin/python bench/access.py [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.fleet.store import open_store  # noqa: E402
from agent.web.auth import sessions, tokens, users  # noqa: E402
from agent.web.board import Board  # noqa: E402

PASSWORD = "correct horse battery"


def rate(port: int, headers: dict[str, str], seconds: float) -> float:
    """Requests per second of GET /api/me, one connection each (a keep-alive connection waits
    about 40 ms between requests on this server, which would hide what is measured here)."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/me", headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200, response.status
        done += 1
    return done / (time.perf_counter() - start)


def served(folder: Path, with_users: bool) -> tuple[Board, dict[str, dict[str, str]]]:
    url = str(folder / ("secured.sqlite" if with_users else "open.sqlite"))
    callers: dict[str, dict[str, str]] = {"open": {}}
    if with_users:
        db = open_store(url)
        users.add(db, "alice", PASSWORD, "viewer", 0)
        cookie = sessions.start(db, "alice", "viewer", "password", addr="127.0.0.1", lifetime_s=3600,
                                now_ms=int(time.time() * 1000))
        token = tokens.add(db, "bench", "read", 0)
        db.close()
        callers = {"session": {"Cookie": f"board_session={cookie}"}, "token": {"Authorization": f"Bearer {token}"}}
    return Board(None, None, db=url, listen=("127.0.0.1", 0), refresh_s=3600).start(), callers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (finishes within 30 s)")
    args = parser.parse_args()
    seconds, rounds = (1.5, 3) if args.quick else (5.0, 5)
    with tempfile.TemporaryDirectory() as scratch:
        open_board, open_callers = served(Path(scratch), False)
        secured, secured_callers = served(Path(scratch), True)
        boards = {"open": (open_board, open_callers["open"]), "session": (secured, secured_callers["session"]),
                  "token": (secured, secured_callers["token"])}
        best = dict.fromkeys(boards, 0.0)
        try:
            for _ in range(rounds):  # interleaved: other load on the machine hits all three alike
                for name, (board, headers) in boards.items():
                    best[name] = max(best[name], rate(board.http.socket.getsockname()[1], headers, seconds))
            db = secured.db
            start = time.perf_counter()
            checks = 3 if args.quick else 10
            for _ in range(checks):
                assert users.verify(db, "alice", PASSWORD) == "viewer"
            argon_ms = (time.perf_counter() - start) / checks * 1000
            start = time.perf_counter()
            for _ in range(10_000):
                sessions.digest("x" * 43)
            sha_us = (time.perf_counter() - start) / 10_000 * 1e6
        finally:
            open_board.stop()
            secured.stop()
    print(f"open board: {best['open']:.0f} req/s")
    print(f"with a session cookie: {best['session']:.0f} req/s")
    print(f"with a bearer token: {best['token']:.0f} req/s")
    print(f"session / open: {best['session'] / best['open']:.2f} ratio")
    print(f"token / open: {best['token'] / best['open']:.2f} ratio")
    print(f"password check (argon2id): {argon_ms:.1f} ms")
    print(f"session token hash (sha256): {sha_us:.2f} us")
    print(f"password check / session token hash: {argon_ms * 1000 / sha_us:.0f} ratio")


if __name__ == "__main__":
    main()
