"""Single sign-on in headless Chromium (tests/browser.py): a board with no local users and an
[oidc] section, and a local OpenID Connect provider (simulators/oidc_provider.py). A stranger is
sent to the login page, follows "Sign in with ...", and lands on the live board as the role the
provider's groups give; a user in no mapped group gets the refusal page; both are in the audit."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Browser
from fleet_harness import Clock, Fleet, make_nodes

from agent.web.auth import audit
from agent.web.board import Board
from agent.web.config import BoardConfig
from simulators.localnet import free_port
from simulators.oidc_provider import OidcProvider, User

pytestmark = pytest.mark.integration
ROWS = "document.querySelectorAll('tr.node').length === 2"
CLIENT, SECRET = "edge-board", "s3cret-from-the-provider"


@pytest.fixture
def sso(tmp_path: Path) -> Iterator[tuple[Board, OidcProvider, Browser]]:
    url = str(tmp_path / "fleet.sqlite")
    clock = Clock(time.time())
    trust, nodes = make_nodes(clock, "panel-1", "panel-2")
    fleet = Fleet(url, trust, clock)
    for node in nodes.values():
        fleet.feed([node.status("online"), *node.cycle()])
    fleet.close()
    secret = tmp_path / "oidc-secret"
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)
    port = free_port()
    callback = f"http://127.0.0.1:{port}/login/oidc/callback"
    with OidcProvider(CLIENT, SECRET, [callback], User(username="olga", groups=["plant-ops"])) as provider:
        web = BoardConfig.model_validate({"oidc": {
            "name": "Plant login", "issuer": provider.issuer, "client_id": CLIENT, "client_secret_file": str(secret),
            "redirect_url": callback, "admin_groups": ["plant-security"], "viewer_groups": ["plant-ops"]}})
        with Board(None, None, db=url, listen=("127.0.0.1", port), web=web) as board:
            page = Browser(tmp_path / "profile")
            try:
                yield board, provider, page
            finally:
                page.close()


def test_single_sign_on_lands_on_the_board_as_the_groups_role(sso) -> None:
    board, provider, page = sso
    login = page.open(board.url, "document.getElementById('sso')")  # no local users, yet not open: SSO is a way in
    assert "Sign in with Plant login" in login and 'id="nodes"' not in login
    page.evaluate("document.getElementById('sso').click()")
    page.wait(ROWS)
    assert page.evaluate("location.href") == board.url  # no code or state left in the address bar
    assert page.wait("document.getElementById('who').textContent") and \
        page.evaluate("document.getElementById('who').textContent") == "olga (viewer)"
    assert page.evaluate("document.cookie") == ""  # the session and the flow cookie are HttpOnly
    refused = page.open(board.url + "admin", "document.getElementById('refusal')")
    assert 'id="users"' not in refused  # a viewer through SSO is still only a viewer
    assert provider.requests.count("POST /token") == 1
    entry = audit.recent(board.db)[0]
    assert (entry.event, entry.username, entry.detail) == ("login_ok", "olga", "method=oidc role=viewer")


def test_a_user_in_no_mapped_group_gets_the_refusal_page_and_an_audit_row(sso) -> None:
    board, provider, page = sso
    provider.user.groups = ["canteen"]
    page.open(board.url + "login", "document.getElementById('sso')")
    page.evaluate("document.getElementById('sso').click()")
    refusal = page.wait("document.querySelector('main.sign-in')")
    assert "not in a group this board admits" in refusal and "Sign in with a local account" in refusal
    page.open(board.url, "document.getElementById('sso')")  # still a stranger: back to the login
    entry = audit.recent(board.db)[0]
    assert (entry.event, entry.username, entry.addr) == ("sso_refused", "olga", "127.0.0.1")
    assert entry.detail.startswith("method=oidc reason=no_role detail=groups=")
