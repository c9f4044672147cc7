"""Who may use the board, kept in the fleet store on a real SQLite file and a real PostgreSQL
database: users and their Argon2id hashes, sessions stored as hashes, API tokens, the audit trail;
and the `edge-agent board-user` / `board-token` commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.fleet.store import open_store
from agent.web.auth import audit, sessions, tokens, users

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"


@pytest.fixture
def db(store_url):
    store = open_store(store_url)
    yield store
    store.close()


def test_a_user_logs_in_with_their_password_only_and_the_store_holds_no_password(db) -> None:
    assert users.add(db, "alice", PASSWORD, "admin", 1000) is True
    assert users.verify(db, "alice", PASSWORD) == "admin"
    assert users.verify(db, "alice", PASSWORD + "!") is None
    assert users.verify(db, "mallory", PASSWORD) is None  # unknown name: same answer
    with db.transaction(write=False) as tx:
        (digest,), = tx.rows("SELECT password_hash FROM board_users")
    assert digest.startswith("$argon2id$") and PASSWORD not in digest


def test_changing_a_password_or_removing_a_user_ends_their_sessions(db) -> None:
    users.add(db, "bob", PASSWORD, "viewer", 0)
    first = sessions.start(db, "bob", "viewer", "password", addr="10.0.0.1", lifetime_s=3600, now_ms=0)
    other = sessions.start(db, "sso-bob", "viewer", "oidc", addr="10.0.0.1", lifetime_s=3600, now_ms=0)
    assert sessions.find(db, first, 1) == sessions.Session("bob", "viewer", "password", 3_600_000)
    assert users.add(db, "bob", "another long one", "admin", 5) is False  # changed, not created
    assert sessions.find(db, first, 6) is None
    second = sessions.start(db, "bob", "admin", "password", addr="10.0.0.1", lifetime_s=3600, now_ms=10)
    assert users.remove(db, "bob") and not users.remove(db, "bob")
    assert sessions.find(db, second, 11) is None
    assert sessions.find(db, other, 11) is not None  # another login method's session is not a local user's
    assert users.all_users(db) == []


def test_sessions_are_stored_as_hashes_expire_and_end_at_logout(db) -> None:
    token = sessions.start(db, "carol", "viewer", "password", addr="::1", lifetime_s=60, now_ms=0)
    with db.transaction(write=False) as tx:
        stored = [row[0] for row in tx.rows("SELECT token_hash FROM board_sessions")]
    assert stored == [sessions.digest(token)] and token not in stored
    assert sessions.find(db, token, 59_999) is not None
    assert sessions.find(db, token, 60_000) is None  # expired
    again = sessions.start(db, "carol", "viewer", "password", addr="::1", lifetime_s=60, now_ms=70_000)
    with db.transaction(write=False) as tx:  # the expired one went when the next session started
        assert tx.rows("SELECT COUNT(*) FROM board_sessions")[0][0] == 1
    assert sessions.end(db, again).username == "carol"
    assert sessions.find(db, again, 70_001) is None and sessions.end(db, again) is None
    assert sessions.find(db, "not-a-token", 0) is None


def test_tokens_are_shown_once_stored_as_hashes_and_carry_their_scope(db) -> None:
    secret = tokens.add(db, "prometheus", "metrics", 1000)
    assert secret.startswith(tokens.PREFIX)
    with pytest.raises(ValueError, match="exists"):
        tokens.add(db, "prometheus", "read", 1000)
    with pytest.raises(ValueError, match="scope"):
        tokens.add(db, "x", "admin", 1000)
    found = tokens.find(db, secret, 2000)
    assert (found.name, found.scope) == ("prometheus", "metrics")
    assert tokens.all_tokens(db)[0].last_used_ms == 2000
    tokens.find(db, secret, 2000 + tokens.USED_EVERY_MS - 1)
    assert tokens.all_tokens(db)[0].last_used_ms == 2000  # not rewritten on every scrape
    with db.transaction(write=False) as tx:
        assert secret not in str(tx.rows("SELECT * FROM board_tokens"))
    assert tokens.find(db, secret + "x", 0) is None
    assert tokens.remove(db, "prometheus") and tokens.find(db, secret, 3000) is None


def test_audit_rows_count_failures_by_user_and_by_address(db, caplog) -> None:
    caplog.set_level("INFO", logger="agent.web.audit")
    for ms, user, addr in ((100, "alice", "10.0.0.1"), (200, "alice", "10.0.0.2"), (300, "bob", "10.0.0.1")):
        audit.record(db, "login_failed", user, addr, ms, "method=password")
    audit.record(db, "login_ok", "alice", "10.0.0.1", 400, "method=password role=admin")
    assert audit.failures_since(db, "alice", "10.0.0.1", 0) == ([100, 200], [100, 300])
    assert audit.failures_since(db, "alice", "10.0.0.1", 150) == ([200], [300])
    assert [e.event for e in audit.recent(db)] == ["login_ok", "login_failed", "login_failed", "login_failed"]
    assert "board login failed user=alice addr=10.0.0.1 method=password" in caplog.messages


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def test_the_commands_manage_users_and_tokens_and_never_take_a_password_from_the_command_line(store_url) -> None:
    store = ["--db", store_url]
    added = run_cli("board-user", "add", "alice", "--role", "admin", *store, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "board user added user=cli:" in added.stderr and PASSWORD not in added.stderr + added.stdout
    short = run_cli("board-user", "add", "bob", *store, stdin="short\n")
    assert short.returncode == 2 and "10 to 1024 characters" in short.stderr
    argv = run_cli("board-user", "add", "bob", PASSWORD, *store)
    assert argv.returncode == 2 and "unrecognized arguments" in argv.stderr  # no password argument exists
    assert run_cli("board-user", "list", *store).stdout == "alice\tadmin\n"
    made = run_cli("board-token", "add", "prometheus", "--scope", "metrics", *store)
    secret = made.stdout.strip()
    assert made.returncode == 0 and secret.startswith("ebt_") and "not shown again" in made.stderr
    listed = run_cli("board-token", "list", *store).stdout
    assert listed.startswith("prometheus\tmetrics\t") and secret not in listed
    assert run_cli("board-token", "remove", "prometheus", *store).returncode == 0
    assert run_cli("board-token", "remove", "prometheus", *store).returncode == 1
    assert run_cli("board-user", "remove", "alice", *store).returncode == 0
    assert run_cli("board-user", "remove", "alice", *store).returncode == 1
    db = open_store(store_url)
    try:
        assert [e.event for e in audit.recent(db)] == ["user_removed", "token_removed", "token_added", "user_added"]
        assert all(e.username.startswith("cli:") and e.addr == "local" for e in audit.recent(db))
    finally:
        db.close()
