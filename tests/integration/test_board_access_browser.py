"""Logging in to the board in headless Chromium (tests/browser.py): the login form, a wrong
password, a session that expires under an open page, a viewer refused from the admin page, an
admin's page, and the board over HTTPS with a certificate from a test CA. The store holds three
verified nodes (fed through the store directly, tests/fleet_harness.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from board_access import PASSWORD, make_pki
from browser import Browser
from fleet_harness import Clock, Fleet, make_nodes

from agent.fleet.store import open_store
from agent.web.auth import audit, users
from agent.web.board import Board
from agent.web.config import BoardConfig

pytestmark = pytest.mark.integration
ROWS = "document.querySelectorAll('tr.node').length === 3"


def seeded_store(folder: Path) -> str:
    url = str(folder / "fleet.sqlite")
    clock = Clock(time.time())
    trust, nodes = make_nodes(clock, "panel-1", "panel-2", "panel-3")
    fleet = Fleet(url, trust, clock)
    for node in nodes.values():
        fleet.feed([node.status("online"), *node.cycle()])
    fleet.close()
    db = open_store(url)
    users.add(db, "alice", PASSWORD, "admin", 0)
    users.add(db, "vera", PASSWORD, "viewer", 0)
    db.close()
    return url


class MovableClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def log_in(browser: Browser, base: str, username: str, password: str = PASSWORD) -> None:
    browser.open(base + "login", "document.getElementById('login')")
    browser.evaluate(f"document.getElementById('username').value = {json.dumps(username)};"
                     f"document.getElementById('password').value = {json.dumps(password)};"
                     "document.getElementById('login').click()")


@pytest.fixture
def browser(tmp_path: Path):
    opened: list[Browser] = []

    def make(*args: str) -> Browser:
        opened.append(Browser(tmp_path / f"profile-{len(opened)}", extra_args=args))
        return opened[-1]

    yield make
    for one in opened:
        one.close()


def test_login_wrong_password_expiry_and_the_admin_page(tmp_path: Path, browser) -> None:
    clock = MovableClock()
    with Board(None, None, db=seeded_store(tmp_path), listen=("127.0.0.1", 0), clock=clock,
               web=BoardConfig.model_validate({"session": {"lifetime": "10m"}})) as board:
        page = browser()
        page.open(board.url, "document.getElementById('login')")  # a stranger is sent to the login
        log_in(page, board.url, "vera", "not her password")
        dom = page.wait("document.getElementById('notice')")
        assert "Wrong user name or password." in dom and 'id="nodes"' not in dom
        log_in(page, board.url, "vera")
        page.wait(ROWS)
        assert page.wait("document.getElementById('who').textContent") and \
            page.evaluate("document.getElementById('who').textContent") == "vera (viewer)"
        assert page.evaluate("document.getElementById('admin-link').hidden") is True
        assert page.evaluate("document.cookie") == ""  # HttpOnly: the page's script cannot read the session
        refused = page.open(board.url + "admin", "document.getElementById('refusal')")
        assert "admins only" in refused and 'id="users"' not in refused
        clock.now += 601  # the session expires under the open board page
        page.open(board.url, "document.getElementById('login')")
        assert "Your session has ended: log in again." in page.evaluate("document.body.innerText")
        log_in(page, board.url, "alice")
        page.wait(ROWS)
        admin = page.open(board.url + "admin", "document.getElementById('audit')")
        trail = page.evaluate("document.getElementById('audit').innerText")
        assert "login_failed\tvera\t127.0.0.1" in trail and "login_ok\talice\t127.0.0.1" in trail
        assert 'id="users"' in admin and "not her password" not in admin
        page.evaluate("document.querySelector('#logout button').click()")
        page.wait("document.getElementById('login')")
        page.open(board.url, "document.getElementById('login')")  # logged out: the board asks again
        assert [e.event for e in audit.recent(board.db)][:2] == ["logout", "login_ok"]


def test_the_board_over_https_with_a_test_ca(tmp_path: Path, browser) -> None:
    pki = make_pki(tmp_path / "pki")
    web = BoardConfig.model_validate({"tls": {"cert_file": str(pki.cert), "key_file": str(pki.key)}})
    with Board(None, None, db=seeded_store(tmp_path), listen=("127.0.0.1", 0), web=web) as board:
        assert board.url.startswith("https://127.0.0.1:")
        # Chromium accepts the board's certificate because its public key is the one the test made
        # (an SPKI pin); the chain to the test CA and the name are checked by test_board_access_tls.
        page = browser(f"--ignore-certificate-errors-spki-list={pki.leaf_spki_sha256}")
        log_in(page, board.url, "alice")
        page.wait(ROWS)
        assert page.evaluate("location.protocol") == "https:"
        cookies = page.call("Network.getCookies", session=True, urls=[board.url])["cookies"]
        (session,) = [c for c in cookies if c["name"] == "board_session"]
        assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
        other = browser()  # a browser without the pin refuses the test CA's certificate
        with pytest.raises(TimeoutError):
            other.open(board.url + "login", "document.getElementById('login')", timeout=5)
