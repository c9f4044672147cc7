"""Who may use the board, over real sockets (uvicorn, a real SQLite store): the login and its
cookie, a wrong password, the rate limit, logout, an expired session, every route against every
kind of caller, API tokens, cross-site posts, the security headers, the trusted proxy, and the
refusal to listen on a network without HTTPS and users."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from board_access import PASSWORD, Client
from waiting import wait_until

from agent.fleet.store import open_store
from agent.web.auth import audit, rules, tokens, users
from agent.web.board import Board
from agent.web.config import BoardConfig

pytestmark = pytest.mark.integration
PROXY = "127.0.0.2"  # the trusted proxy; plain 127.0.0.1 is an ordinary (untrusted) client


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secured(tmp_path):
    """A web-only board with an admin, a viewer and a token of each scope; a clock the test moves."""
    url = str(tmp_path / "fleet.sqlite")
    db = open_store(url)
    users.add(db, "alice", PASSWORD, "admin", 0)
    users.add(db, "vera", PASSWORD, "viewer", 0)
    secrets = {scope: tokens.add(db, f"{scope}-token", scope, 0) for scope in tokens.SCOPES}
    db.close()
    clock = Clock()
    web = BoardConfig.model_validate({"proxy": {"trusted": [PROXY]}, "session": {"lifetime": "1h"}})
    board = Board(None, None, db=url, listen=("127.0.0.1", 0), web=web, clock=clock).start()
    board.clock_, board.tokens = clock, secrets
    yield board
    board.stop()


def client(board: Board, **kwargs) -> Client:
    return Client(board.http.socket.getsockname()[1], **kwargs)


def test_a_login_sets_an_httponly_samesite_cookie_with_expiry_and_opens_the_board(secured) -> None:
    browser = client(secured)
    assert browser.call("GET", "/").header("location") == "/login"
    reply = browser.login("vera")
    assert reply.status == 303 and reply.header("location") == "/"
    cookie = reply.header("set-cookie")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=3600" in cookie
    assert "Secure" not in cookie  # plain HTTP from an untrusted address: a Secure cookie would not come back
    assert browser.call("GET", "/").status == 200
    assert json.loads(browser.call("GET", "/api/me").body) == {"user": "vera", "role": "viewer", "token": None,
                                                               "open": False}
    assert PASSWORD not in str(reply.headers)


def test_a_wrong_password_is_refused_and_audited_without_the_password(secured) -> None:
    browser = client(secured)
    reply = browser.login("vera", "not her password")
    assert reply.status == 401 and "Wrong user name or password" in reply.text and browser.cookie is None
    unknown = browser.login("nobody", "not her password")
    assert unknown.status == 401 and unknown.text == reply.text  # an unknown name looks the same
    trail = audit.recent(secured.db)
    assert [(e.event, e.username, e.addr) for e in trail[:2]] == [("login_failed", "nobody", "127.0.0.1"),
                                                                   ("login_failed", "vera", "127.0.0.1")]
    assert all("not her password" not in e.detail for e in trail)


def test_five_failures_lock_the_user_name_and_the_address_with_retry_after(secured) -> None:
    browser = client(secured)
    for _ in range(5):
        assert browser.login("vera", "guess").status == 401
    refused = browser.login("vera")  # even the right password now
    assert refused.status == 429 and 1 <= int(refused.header("retry-after")) <= 300
    assert browser.cookie is None
    # Another address (through the trusted proxy) is still refused for that user name ...
    elsewhere = client(secured, source=PROXY, extra={"X-Forwarded-For": "198.51.100.7"})
    assert elsewhere.login("vera").status == 429
    # ... but may log in as someone else; this address's own failures were not its.
    assert elsewhere.login("alice").status == 303
    # From 127.0.0.1, forging X-Forwarded-For does not escape the address limit (it is not a trusted proxy).
    forger = client(secured, extra={"X-Forwarded-For": "203.0.113.99"})
    assert forger.login("alice").status == 429
    secured.clock_.now += 301  # the window passes
    assert client(secured).login("vera").status == 303


def test_logout_ends_the_session_in_the_store(secured) -> None:
    browser = client(secured)
    browser.login("alice")
    token = browser.cookie
    reply = browser.call("POST", "/logout")
    assert reply.status == 303 and reply.header("location") == "/login" and browser.cookie is None
    stale = client(secured, cookie=token)
    assert stale.call("GET", "/api/fleet").status == 401
    with secured.db.transaction(write=False) as tx:
        assert tx.rows("SELECT COUNT(*) FROM board_sessions")[0][0] == 0
    assert [e.event for e in audit.recent(secured.db)[:2]] == ["logout", "login_ok"]


def test_an_expired_session_is_sent_to_the_login_which_says_so(secured) -> None:
    browser = client(secured)
    browser.login("vera")
    secured.clock_.now += 3601
    assert browser.call("GET", "/report").header("location") == "/login"
    page = browser.call("GET", "/login")
    assert "Your session has ended" in page.text and browser.cookie is None  # and the stale cookie is cleared


def test_a_session_outlives_a_board_restart_on_the_same_store(secured, tmp_path) -> None:
    browser = client(secured)
    browser.login("vera")
    secured.stop()  # the process goes; the session is in the store, not in its memory
    restarted = Board(None, None, db=str(tmp_path / "fleet.sqlite"), listen=("127.0.0.1", 0),
                      web=BoardConfig.model_validate({}), clock=secured.clock_).start()
    try:
        browser.port = restarted.http.socket.getsockname()[1]
        assert json.loads(browser.call("GET", "/api/me").body)["user"] == "vera"
        assert client(restarted).call("GET", "/api/fleet").status == 401  # and strangers are still out
    finally:
        restarted.stop()


def test_a_store_that_cannot_be_read_lets_nobody_in_and_says_why(secured, caplog) -> None:
    browser = client(secured)
    browser.login("alice")
    secured.db.close()  # every query of the store now fails, as with a database gone away
    with caplog.at_level("ERROR", logger="agent.web.auth.middleware"):
        api, page = browser.call("GET", "/api/me"), browser.call("GET", "/admin")
        token = client(secured, extra={"Authorization": f"Bearer {secured.tokens['read']}"}).call("GET", "/api/fleet")
    assert (api.status, page.status, token.status) == (503, 503, 503)  # not a 500 with a traceback, nor let in
    assert json.loads(api.body) == {"error": "the fleet store is unavailable; see the board's log"}
    assert "the fleet store is unavailable" in page.text and page.header("content-security-policy")
    assert [r.getMessage().split(" error=")[0] for r in caplog.records] == [
        "fleet store unavailable path=/api/me", "fleet store unavailable path=/admin",
        "fleet store unavailable path=/api/fleet"]


CALLERS = ("nobody", "viewer", "admin", "metrics token", "read token")
ALLOWED = {rules.PUBLIC: set(CALLERS), rules.VIEWER: {"viewer", "admin", "read token"},
           rules.METRICS: {"viewer", "admin", "read token", "metrics token"}, rules.ADMIN: {"admin"}}


def test_every_route_has_a_rule_and_every_lower_caller_is_refused(secured) -> None:
    """Table-driven over the app's own routes: a new route without a rule fails here."""
    routes = [(r.path, m) for r in secured.app.routes for m in sorted(getattr(r, "methods", ()) or ())]
    assert {path for path, _ in routes} <= set(rules.RULES), {p for p, _ in routes} - set(rules.RULES)
    callers = {"nobody": client(secured), "viewer": client(secured), "admin": client(secured),
               "metrics token": client(secured, extra={"Authorization": f"Bearer {secured.tokens['metrics']}"}),
               "read token": client(secured, extra={"Authorization": f"Bearer {secured.tokens['read']}"})}
    callers["viewer"].login("vera")
    callers["admin"].login("alice")
    wrong = []
    for path, method in routes:
        if path in ("/logout", "/login") and method == "POST":
            continue  # these change who is logged in; tested on their own
        rule = rules.RULES[path]
        for name, caller in callers.items():
            reply = caller.call(method, path.replace("{node}", "panel-1"), form={} if method == "POST" else None,
                                stream=path == "/api/events")
            refused = reply.status in (401, 403) or reply.header("location") == "/login"
            if refused == (name in ALLOWED[rule]):
                wrong.append(f"{method} {path} as {name}: {reply.status}")
    assert not wrong, wrong


def test_tokens_go_in_the_authorization_header_only(secured) -> None:
    metrics = client(secured, extra={"Authorization": f"Bearer {secured.tokens['metrics']}"})
    assert metrics.call("GET", "/metrics").status == 200
    assert metrics.call("GET", "/api/fleet").status == 403
    nobody = client(secured)
    assert nobody.call("GET", f"/metrics?token={secured.tokens['metrics']}").status == 401
    reply = client(secured, extra={"Authorization": "Bearer ebt_wrong"}).call("GET", "/metrics")
    assert reply.status == 401 and reply.header("www-authenticate") == 'Bearer realm="edge-board"'
    tokens.remove(secured.db, "metrics-token")
    assert metrics.call("GET", "/metrics").status == 401  # revoked: at once


def test_a_post_from_another_site_or_without_an_origin_is_refused(secured) -> None:
    admin = client(secured)
    admin.login("alice")
    form = {"username": "eve", "password": PASSWORD, "role": "admin"}
    assert admin.call("POST", "/admin/users", form=form, headers={"Origin": "https://evil.example"}).status == 403
    assert admin.call("POST", "/admin/users", form=form, origin=False).status == 403
    assert client(secured).call("POST", "/login", form={"username": "vera", "password": PASSWORD},
                                headers={"Origin": "http://evil.example"}).status == 403
    assert [u.username for u in users.all_users(secured.db)] == ["alice", "vera"]
    added = admin.call("POST", "/admin/users", form=form)
    assert added.status == 200 and "Added eve (admin)" in added.text
    entry = audit.recent(secured.db)[0]
    assert (entry.event, entry.username, entry.detail) == ("user_added", "alice", "target=eve role=admin")


def test_an_admin_makes_a_token_that_is_shown_once(secured) -> None:
    admin = client(secured)
    admin.login("alice")
    page = admin.call("POST", "/admin/tokens", form={"name": "scraper", "scope": "metrics"}).text
    secret = page.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert client(secured, extra={"Authorization": f"Bearer {secret}"}).call("GET", "/metrics").status == 200
    assert secret not in admin.call("GET", "/admin").text


HEADERS = {"content-security-policy", "x-frame-options", "referrer-policy", "x-content-type-options"}


@pytest.mark.parametrize("who, method, path, status", [
    ("nobody", "GET", "/", 303), ("nobody", "GET", "/login", 200), ("nobody", "GET", "/api/fleet", 401),
    ("nobody", "GET", "/auth.css", 200), ("viewer", "GET", "/", 200), ("viewer", "GET", "/board.js", 200),
    ("viewer", "GET", "/api/fleet", 200), ("viewer", "GET", "/nowhere", 404), ("viewer", "GET", "/admin", 403),
    ("admin", "GET", "/admin", 200), ("viewer", "GET", "/report", 200), ("nobody", "POST", "/login", 401),
])
def test_every_response_carries_the_security_headers(secured, who, method, path, status) -> None:
    caller = client(secured)
    if who != "nobody":
        caller.login({"viewer": "vera", "admin": "alice"}[who])
    reply = caller.call(method, path, form={"username": "x", "password": "y"} if method == "POST" else None)
    assert reply.status == status
    names = {k.lower() for k, _ in reply.headers}
    assert HEADERS <= names, HEADERS - names
    assert "unsafe-inline" not in reply.header("content-security-policy")
    assert "strict-transport-security" not in names  # plain HTTP: HSTS would be ignored anyway


def test_https_through_the_trusted_proxy_only_gets_secure_cookies_and_hsts(secured) -> None:
    proxied = client(secured, source=PROXY, extra={"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.1.1"})
    proxied_origin = {"Origin": f"https://127.0.0.1:{proxied.port}"}
    reply = proxied.call("POST", "/login", form={"username": "vera", "password": PASSWORD}, headers=proxied_origin)
    assert reply.status == 303 and "Secure" in reply.header("set-cookie")
    assert reply.header("strict-transport-security")
    assert audit.recent(secured.db)[0].addr == "10.1.1.1"
    forged = client(secured, extra={"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.1.2"})
    reply = forged.login("alice")  # Origin http://...: the header was ignored, so it matches
    assert reply.status == 303 and "Secure" not in reply.header("set-cookie")
    assert reply.header("strict-transport-security") is None
    assert audit.recent(secured.db)[0].addr == "127.0.0.1"


def test_with_no_users_the_board_is_open_on_loopback_until_the_first_user_is_added(tmp_path, caplog) -> None:
    caplog.set_level("WARNING")
    with Board(None, None, db=str(tmp_path / "fleet.sqlite"), listen=("127.0.0.1", 0)) as board:
        assert any("board access open" in m for m in caplog.messages)
        anyone = client(board)
        assert anyone.call("GET", "/api/fleet").status == 200
        assert anyone.call("GET", "/admin").header("location") == "/login"  # admin needs a login, always
        users.add(board.db, "alice", PASSWORD, "admin", 0)
        wait_until(lambda: anyone.call("GET", "/api/fleet").status == 401, "the first user to close the board")


def run_board(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", "board", "--no-ingest", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_the_board_refuses_a_network_address_without_https_and_users(tmp_path) -> None:
    done = run_board("--state-dir", str(tmp_path), "--listen", "0.0.0.0:0")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("edge-agent:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "--listen 0.0.0.0:0 is not a loopback address" in lines[0]
    assert "tls.cert_file" in lines[0] and "board-user add" in lines[0] and "--insecure-listen" in lines[0]


def test_an_insecure_lab_listen_warns_at_every_start(tmp_path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "agent.cli", "board", "--no-ingest", "--state-dir",
                                str(tmp_path), "--listen", "0.0.0.0:0", "--insecure-listen"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("board: http://0.0.0.0:")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert "WARNING: board insecure listen address=0.0.0.0:0 (plain HTTP, no users: no login): for a lab only" in err


def test_a_browser_post_counts_as_same_site_by_its_fetch_metadata(secured) -> None:
    """Under Referrer-Policy no-referrer a browser's own form posts carry `Origin: null`, with
    `Sec-Fetch-Site: same-origin`; another site's carry `cross-site`, whatever their Origin says."""
    same = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    browser = client(secured)
    assert browser.call("POST", "/login", form={"username": "vera", "password": PASSWORD}, headers=same).status == 303
    cross = {"Origin": browser.origin, "Sec-Fetch-Site": "cross-site"}
    assert client(secured).call("POST", "/login", form={"username": "vera", "password": PASSWORD},
                                headers=cross).status == 403
    assert client(secured).call("POST", "/login", form={"username": "vera", "password": PASSWORD},
                                headers={"Origin": "null"}).status == 403


def test_a_live_stream_ends_when_its_user_is_removed(secured, monkeypatch) -> None:
    import http.client

    from agent.web import app

    monkeypatch.setattr(app, "RECHECK_S", 0.2)
    viewer = client(secured)
    viewer.login("vera")
    conn = http.client.HTTPConnection("127.0.0.1", viewer.port, timeout=20)
    conn.request("GET", "/api/events", headers={"Cookie": f"board_session={viewer.cookie}"})
    stream = conn.getresponse()
    assert stream.status == 200 and stream.readline().startswith(b"retry:")
    users.remove(secured.db, "vera")
    while stream.readline():  # deltas until the next check finds the session gone, then the end
        pass
    conn.close()
    assert viewer.call("GET", "/api/events", stream=True).status == 401


def test_a_burst_of_parallel_guesses_gets_no_more_than_the_limit_checked(secured) -> None:
    """Parallel attempts would all pass the limit before any failure was counted; one attempt per
    user name and address is checked at a time, so the failures counted never pass the limit."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda i: client(secured).login("vera", f"guess {i}").status, range(12)))
    assert set(statuses) <= {401, 429} and statuses.count(429) >= 7
    by_user, _ = audit.failures_since(secured.db, "vera", "127.0.0.1", 0)
    assert len(by_user) == statuses.count(401) <= 5
