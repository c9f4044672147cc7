"""Single sign-on over the wire: a real HTTP client walks board -> provider -> board between the
board's two routes (on the board's own web server) and a local OpenID Connect provider
(simulators.oidc_provider), keeping cookies and following each redirect by hand; then the
hostile cases: a wrong or replayed state, a replayed code, a callback from another browser, tokens
for another audience or issuer, expired, with a wrong nonce, a forged or unpublished signature, a
provider that refuses, and a provider that is down while the rest of the board keeps serving."""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from certificates import Authority
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from agent.web.auth.oidc_login import FLOW_COOKIE, log_refusal, oidc_router
from agent.web.config import OidcConfig
from agent.web.server import WebServer
from simulators.localnet import free_port
from simulators.oidc_provider import OidcProvider, User

pytestmark = pytest.mark.integration

CLIENT, SECRET = "edge-board", "s3cret-from-the-provider"


@dataclass
class Site:
    url: str
    provider: OidcProvider
    refused: list[tuple[str, str | None]] = field(default_factory=list)

    def client(self) -> httpx2.Client:
        return httpx2.Client(follow_redirects=False, timeout=10)


@contextlib.contextmanager
def running_site(tmp_path: Path, tls: tuple[Path, Path] | None = None, record: bool = True,
                 **settings: Any) -> Iterator[Site]:
    """A board (the two routes, a stand-in local login page and session) and its provider; with
    `record`, refusals are kept in Site.refused besides the default log line."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = tmp_path / "oidc-secret"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    with OidcProvider(CLIENT, SECRET, [f"{url}/login/oidc/callback"], User(groups=["plant-ops"]),
                      tls=tls) as provider:
        config = OidcConfig.model_validate({
            "name": "Plant login", "issuer": provider.issuer, "client_id": CLIENT, "client_secret_file": str(secret),
            "redirect_url": f"{url}/login/oidc/callback", "scopes": ["openid", "profile", "groups"],
            "admin_groups": ["plant-security"], "viewer_groups": ["plant-ops"], **settings})
        refused: list[tuple[str, str | None]] = []

        def on_login(username: str, role: str, request: Request) -> JSONResponse:
            response = JSONResponse({"user": username, "role": role})
            response.set_cookie("session", f"{username}:{role}", httponly=True, samesite="strict")
            return response

        async def on_refused(reason: str, username: str | None, detail: str, request: Request) -> None:  # may be async
            refused.append((reason, username))
            log_refusal(reason, username, detail, request)

        app = FastAPI()
        app.include_router(oidc_router(config, on_login, on_refused=on_refused) if record
                           else oidc_router(config, on_login))
        app.add_api_route("/login", lambda: HTMLResponse("<form>local login</form>"))
        server = WebServer(app, ("127.0.0.1", port)).start()
        try:
            yield Site(url, provider, refused)
        finally:
            server.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_site(tmp_path) as running:
        yield running


def to_provider(site: Site, client: httpx2.Client) -> str:
    """Start a sign-in: the board's redirect to the provider's authorization endpoint."""
    start = client.get(f"{site.url}/login/oidc")
    assert start.status_code == 303, start.text
    return start.headers["location"]


def back_from_provider(client: httpx2.Client, authorize: str) -> str:
    """The provider signs the test user in and sends the browser back: the callback URL."""
    answer = client.get(authorize)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def sign_in(site: Site, client: httpx2.Client) -> httpx2.Response:
    return client.get(back_from_provider(client, to_provider(site, client)))


def test_sign_in_through_the_provider_ends_in_the_boards_session(site: Site) -> None:
    with site.client() as client:
        start = client.get(f"{site.url}/login/oidc")
        authorize = urlsplit(start.headers["location"])
        query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
        assert f"{authorize.scheme}://{authorize.netloc}" == site.provider.issuer
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert query["client_id"] == CLIENT and query["scope"] == "openid profile groups"
        assert query["state"] and query["nonce"] and query["state"] != query["nonce"]
        assert not {"code_verifier", "client_secret"} & set(query)  # only the challenge leaves the board
        flow_cookie = start.headers["set-cookie"]
        assert flow_cookie.startswith(f"{FLOW_COOKIE}=") and "HttpOnly" in flow_cookie
        assert "Path=/login/oidc" in flow_cookie and "SameSite=lax" in flow_cookie and "Max-Age=600" in flow_cookie
        assert start.headers["cache-control"] == "no-store"

        callback = back_from_provider(client, start.headers["location"])
        assert callback.startswith(f"{site.url}/login/oidc/callback?")
        done = client.get(callback)
        assert done.status_code == 200 and done.json() == {"user": "alice", "role": "viewer"}
        assert client.cookies["session"] == "alice:viewer"
        assert any(h.startswith(f"{FLOW_COOKIE}=") and "Max-Age=0" in h for h in done.headers.get_list("set-cookie"))
    assert site.provider.requests.count("POST /token") == 1 and site.refused == []


def test_a_member_of_an_admin_group_signs_in_as_admin(site: Site) -> None:
    site.provider.user.groups = ["plant-ops", "plant-security"]
    with site.client() as client:
        assert sign_in(site, client).json() == {"user": "alice", "role": "admin"}


def test_a_user_in_no_mapped_group_is_refused_with_a_clear_page(site: Site, caplog) -> None:
    site.provider.user.groups = ["canteen"]
    with site.client() as client, caplog.at_level(logging.WARNING):
        answer = sign_in(site, client)
        assert answer.status_code == 403 and "not in a group this board admits" in answer.text
        assert 'href="/login"' in answer.text and "<script" not in answer.text
        assert "session" not in client.cookies
    assert site.refused == [("no_role", "alice")]
    assert "oidc login refused reason=no_role user=alice" in caplog.text and "groups=['canteen']" in caplog.text


def test_a_wrong_state_is_refused(site: Site) -> None:
    with site.client() as client:
        callback = back_from_provider(client, to_provider(site, client))
        answer = client.get(callback.replace("state=", "state=x"))
        assert answer.status_code == 400 and "unknown, already used or expired" in answer.text
    assert site.refused == [("unknown_state", None)] and "POST /token" not in site.provider.requests


def test_by_default_a_refusal_is_one_log_line(tmp_path: Path, caplog) -> None:
    with running_site(tmp_path, record=False) as site, site.client() as client, caplog.at_level(logging.INFO):
        callback = back_from_provider(client, to_provider(site, client))
        assert client.get(callback.replace("state=", "state=x")).status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("agent.web.auth")]
    assert lines == ["oidc login refused reason=unknown_state user=- address=127.0.0.1 detail=-"]


def test_a_replayed_callback_and_a_replayed_code_are_refused(site: Site) -> None:
    with site.client() as client:
        callback = back_from_provider(client, to_provider(site, client))
        assert client.get(callback).status_code == 200
        assert client.get(callback).status_code == 400  # the same callback again: its state is used up
        # The old code under a fresh sign-in of this browser: the provider has seen the code, and its
        # PKCE challenge belongs to the old verifier.
        fresh = back_from_provider(client, to_provider(site, client))
        code = parse_qs(urlsplit(callback).query)["code"][0]
        fresh_code = parse_qs(urlsplit(fresh).query)["code"][0]
        answer = client.get(fresh.replace(fresh_code, code))
        assert answer.status_code == 403 and "refused the sign-in code" in answer.text
    assert site.refused == [("unknown_state", None), ("code_refused", None)]
    assert site.provider.requests.count("POST /token") == 2


def test_a_callback_started_in_another_browser_is_refused(site: Site) -> None:
    """Login CSRF: an attacker's own callback URL, opened by a victim, must not sign the victim in."""
    with site.client() as attacker, site.client() as victim:
        callback = back_from_provider(attacker, to_provider(site, attacker))
        answer = victim.get(callback)
        assert answer.status_code == 400 and "started in another browser" in answer.text
        assert "session" not in victim.cookies
        assert attacker.get(callback).status_code == 400  # and it is used up
    assert site.refused[0] == ("flow_mismatch", None) and "POST /token" not in site.provider.requests


@pytest.mark.parametrize("misbehaviour, logged", [
    ({"audience": "another-app"}, "claim_aud"), ({"issuer": "http://127.0.0.1:1"}, "claim_iss"),
    ({"expires_in": -300}, "detail=expired"), ({"nonce": "someone-elses-nonce"}, "claim_nonce"),
    ({"signing": "forged"}, "detail=bad_signature"), ({"signing": "unpublished"}, "detail=unknown_key"),
])
def test_a_token_that_fails_a_check_is_refused(site: Site, caplog, misbehaviour: dict, logged: str) -> None:
    for name, value in misbehaviour.items():
        setattr(site.provider.misbehaviour, name, value)
    with site.client() as client, caplog.at_level(logging.WARNING):
        answer = sign_in(site, client)
        assert answer.status_code == 403 and "did not pass the board" in answer.text
        assert "session" not in client.cookies
    assert site.refused == [("bad_token", None)]
    assert "oidc login refused reason=bad_token" in caplog.text and logged in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize("methods", [["client_secret_basic"], ["client_secret_post"]])
def test_the_client_secret_goes_the_way_the_provider_takes_it(site: Site, methods: list[str]) -> None:
    site.provider.auth_methods = methods
    with site.client() as client:
        assert sign_in(site, client).json() == {"user": "alice", "role": "viewer"}


def test_a_rotated_provider_key_is_fetched_once(site: Site) -> None:
    with site.client() as client:
        assert sign_in(site, client).status_code == 200
        site.provider.rotate_key()
        assert sign_in(site, client).json()["user"] == "alice"
    assert site.provider.requests.count("GET /jwks") == 2
    assert site.provider.requests.count("GET /.well-known/openid-configuration") == 1  # cached


def test_a_refusal_at_the_provider_is_shown(site: Site) -> None:
    site.provider.misbehaviour.deny = "access_denied"
    with site.client() as client:
        answer = sign_in(site, client)
        assert answer.status_code == 403 and "did not sign you in" in answer.text
    assert site.refused == [("provider_denied", None)]


def test_a_provider_down_at_the_code_exchange_costs_single_sign_on_only(site: Site, caplog) -> None:
    with site.client() as client, caplog.at_level(logging.ERROR):
        callback = back_from_provider(client, to_provider(site, client))
        site.provider.stop()
        answer = client.get(callback)
        assert answer.status_code == 502 and "Plant login cannot be reached" in answer.text
        assert 'href="/login"' in answer.text and "session" not in client.cookies
        assert client.get(f"{site.url}/login").status_code == 200  # the local login is served as before
    assert "oidc provider unavailable issuer=http://127.0.0.1" in caplog.text and "ConnectError" in caplog.text


def test_a_provider_down_from_the_start_sends_nobody_away(site: Site, caplog) -> None:
    site.provider.stop()
    with site.client() as client, caplog.at_level(logging.ERROR):
        answer = client.get(f"{site.url}/login/oidc")
        assert answer.status_code == 502 and "Plant login cannot be reached" in answer.text
        assert FLOW_COOKIE not in client.cookies
        assert client.get(f"{site.url}/login").status_code == 200
    assert "oidc provider unavailable" in caplog.text and "openid-configuration" in caplog.text


def test_a_provider_over_https_is_trusted_through_ca_file_only(tmp_path: Path, caplog) -> None:
    authority = Authority.create("company-ca")
    tls = authority.issue(tmp_path, "login", server=True)
    ca_file = authority.write(tmp_path / "company-ca.pem")
    with running_site(tmp_path, tls=tls, ca_file=str(ca_file)) as site, site.client() as client:
        assert site.provider.issuer.startswith("https://")
        assert client.get(back_from_provider_tls(client, to_provider(site, client), ca_file)).json()["user"] == "alice"
    with running_site(tmp_path, tls=tls) as site, site.client() as client, caplog.at_level(logging.ERROR):
        answer = client.get(f"{site.url}/login/oidc")  # the system's trust store does not know the company CA
        assert answer.status_code == 502 and "Plant login cannot be reached" in answer.text
    assert "oidc provider unavailable" in caplog.text and "CERTIFICATE_VERIFY_FAILED" in caplog.text


def back_from_provider_tls(client: httpx2.Client, authorize: str, ca_file: Path) -> str:
    """`back_from_provider` for a provider whose certificate the browser trusts through `ca_file`."""
    trust = ssl.create_default_context(cafile=str(ca_file))
    with httpx2.Client(verify=trust, follow_redirects=False, timeout=10) as browser:
        browser.cookies = client.cookies
        return back_from_provider(browser, authorize)
