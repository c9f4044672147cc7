"""Single sign-on over HTTP: the provider as the board talks to it, and two routes.

    GET /login/oidc            a pending sign-in (state, nonce, PKCE verifier kept on the server), a
                               short-lived HttpOnly cookie binding it to this browser, and a redirect
                               to the provider's authorization endpoint
    GET /login/oidc/callback   the provider sends the browser back with ?code&state: the pending
                               sign-in is taken (once), the code exchanged with the PKCE verifier,
                               the ID token checked (agent.web.auth.oidc), the role mapped, and
                               `on_login(username, role, request)` makes the board's session

`oidc_router(config, on_login, on_refused=...)` is all the app needs; a refused sign-in ends on a
page that says why and links to the local login, and is recorded by `on_refused` (by default one
log line). The provider being down costs single sign-on only: the rest of the board never waits on it.
"""

from __future__ import annotations

import html
import inspect
import logging
import re
import ssl
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.jwk import KeySet
from starlette.concurrency import run_in_threadpool

from agent.web.auth import audit
from agent.web.auth.access import Access
from agent.web.auth.oidc import (
    FLOW_LIFETIME_S,
    REFUSALS,
    START_PATH,
    Pending,
    PendingLogins,
    ProviderError,
    Refused,
    Role,
    client_auth_method,
    key_set,
    provider_metadata,
    role_for,
    signing_algorithms,
    username_of,
    verify_id_token,
)
from agent.web.auth.routes import caller_of, complete_login
from agent.web.config import CALLBACK_PATH, OidcConfig

log = logging.getLogger(__name__)

OnLogin = Callable[[str, Role, Request], Response | Awaitable[Response]]
"""Starts the board's session for a proven user and records the login (audit row, log line)."""
OnRefused = Callable[[str, str | None, str, Request], None | Awaitable[None]]
"""Records a refused sign-in: (reason, the user name if the token named one, detail for the log, request)."""

FLOW_COOKIE = "oidc_flow"
CACHE_S = 3600.0  # how long the discovery document and the provider's keys are trusted before asking again
NO_STORE = {"Cache-Control": "no-store"}
LOCAL_LOGIN = "/login"  # the password form, where every refusal page points


class OidcFileError(ValueError):
    """A file the oidc section names cannot be used; the message starts with the field."""


def read_client_secret(config: OidcConfig) -> str:
    path = config.client_secret_file
    try:
        mode = path.stat().st_mode
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OidcFileError(f"oidc.client_secret_file: cannot read {path}: {reason}") from None
    if mode & stat.S_IRWXO:
        raise OidcFileError(f"oidc.client_secret_file: {path} is readable by every user "
                              f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`")
    if not secret:
        raise OidcFileError(f"oidc.client_secret_file: {path} is empty: put the client secret from the provider in it")
    return secret


def provider_tls(config: OidcConfig) -> ssl.SSLContext:
    """How the provider's certificate is checked: against ca_file, or the system's trust store."""
    try:
        return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OidcFileError(f"oidc.ca_file: cannot load {config.ca_file}: {reason}") from None


def log_value(value: object, limit: int = 80) -> str:
    """A value from the outside as one key=value token in a log line."""
    return "-" if value is None else re.sub(r"[\s\x00-\x1f\x7f]+", "_", str(value))[:limit] or "-"


class Provider:
    """The provider as the board sees it: discovery and keys (cached for CACHE_S), the code exchange."""

    def __init__(self, config: OidcConfig, secret: str, tls: ssl.SSLContext) -> None:
        self.config, self._secret, self._verify = config, secret, tls
        self._cache: dict[str, tuple[float, Any]] = {}

    def _oauth(self, metadata: dict[str, Any]) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(self.config.client_id, self._secret, scope=" ".join(self.config.scopes),
                                 redirect_uri=self.config.redirect_url, code_challenge_method="S256",
                                 token_endpoint_auth_method=client_auth_method(metadata),
                                 timeout=self.config.timeout, verify=self._verify)

    async def _get_json(self, url: str, check: Callable[[Any], Any], fresh: bool = False) -> Any:
        """`check(document)` for the JSON at `url`; what passed is kept for CACHE_S."""
        cached = self._cache.get(url)
        if cached and not fresh and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        try:
            async with httpx2.AsyncClient(timeout=self.config.timeout, verify=self._verify) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            raw = response.json()
        except httpx2.HTTPError as exc:
            raise ProviderError(f"{url}: {type(exc).__name__} {exc}") from None
        except ValueError:
            raise ProviderError(f"{url}: the answer is not JSON") from None
        document = check(raw)  # ProviderError for a document the board cannot use
        self._cache[url] = (time.monotonic(), document)
        return document

    async def metadata(self) -> dict[str, Any]:
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        return await self._get_json(url, lambda document: provider_metadata(document, self.config.issuer))

    async def keys(self, metadata: dict[str, Any], fresh: bool = False) -> KeySet:
        return await self._get_json(metadata["jwks_uri"], key_set, fresh)

    async def authorization_url(self, pending: Pending) -> str:
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self._oauth({}) as client:  # builds the URL (with the S256 challenge); sends nothing
            url, _ = client.create_authorization_url(endpoint, state=pending.state, code_verifier=pending.verifier,
                                                     nonce=pending.nonce)
        return url

    async def identity(self, code: str, pending: Pending) -> dict[str, Any]:
        """The verified ID token claims for `code`; Refused or ProviderError."""
        metadata = await self.metadata()
        try:
            async with self._oauth(metadata) as client:
                token = await client.fetch_token(metadata["token_endpoint"], grant_type="authorization_code",
                                                 code=code, code_verifier=pending.verifier)
        except OAuthError as exc:  # the provider answered with an OAuth error: invalid_grant for a used code
            raise Refused("code_refused", f"{exc.error}: {exc.description}") from None
        except httpx2.HTTPError as exc:
            raise ProviderError(f"token endpoint: {type(exc).__name__} {exc}") from None
        except ValueError as exc:
            raise ProviderError(f"token endpoint: {exc}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise Refused("bad_token", "no id_token in the token response")
        check = {"issuer": self.config.issuer, "client_id": self.config.client_id, "nonce": pending.nonce,
                 "algorithms": signing_algorithms(metadata), "access_token": token.get("access_token")}
        try:
            return verify_id_token(id_token, await self.keys(metadata), **check)
        except Refused as exc:
            if exc.detail != "unknown_key":
                raise
        # signed with a key the board has not seen: the provider may have rotated its keys; ask once
        return verify_id_token(id_token, await self.keys(metadata, fresh=True), **check)


def log_refusal(reason: str, username: str | None, detail: str, request: Request) -> None:
    """The default OnRefused: one log line."""
    address = request.client.host if request.client else "-"
    log.warning("oidc login refused reason=%s user=%s address=%s detail=%s", reason, log_value(username), address,
                log_value(detail))


async def _maybe_await(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def page(status: int, title: str, text: str) -> HTMLResponse:
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="/auth.css"></head><body><main class="sign-in"><h1>{html.escape(title)}'
            f'</h1><p>{html.escape(text)}</p><p><a href="{START_PATH}">Try single sign-on again</a> · '
            f'<a href="{LOCAL_LOGIN}">Sign in with a local account</a></p></main></body></html>')
    return HTMLResponse(body, status, headers=NO_STORE)


def oidc_router(config: OidcConfig, on_login: OnLogin, *, on_refused: OnRefused = log_refusal) -> APIRouter:
    """The two routes; reads the client secret and the CA file now (OidcFileError names the field and the fix)."""
    provider = Provider(config, read_client_secret(config), provider_tls(config))
    pending = PendingLogins()
    secure = config.redirect_url.startswith("https://")
    router = APIRouter()

    def unavailable(exc: ProviderError) -> Response:
        log.error("oidc provider unavailable issuer=%s error=%s", config.issuer, log_value(exc, 300))
        return page(502, "Single sign-on is unavailable",
                    f"{config.name} cannot be reached or gave an answer the board cannot use. Sign in with a local "
                    "account, or try again later.")

    @router.get(START_PATH, include_in_schema=False)
    async def start() -> Response:
        flow = pending.begin()
        try:
            url = await provider.authorization_url(flow)
        except ProviderError as exc:
            pending.discard(flow.state)
            return unavailable(exc)
        response = RedirectResponse(url, 303, headers=NO_STORE)
        response.set_cookie(FLOW_COOKIE, flow.browser, max_age=int(FLOW_LIFETIME_S), path=START_PATH,
                            secure=secure, httponly=True, samesite="lax")  # lax: the provider's redirect is cross-site
        return response

    @router.get(CALLBACK_PATH, include_in_schema=False)
    async def callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
        username: str | None = None
        try:
            flow = pending.take(state, request.cookies.get(FLOW_COOKIE))
            if error:
                raise Refused("provider_denied", error)
            if not code:
                raise Refused("code_refused", "no code in the callback")
            claims = await provider.identity(code, flow)
            if (username := username_of(claims, config)) is None:
                raise Refused("no_username", f"no {config.username_claim} claim")
            if (role := role_for(claims, config)) is None:
                raise Refused("no_role", f"{config.groups_claim}={claims.get(config.groups_claim)}")
        except Refused as exc:
            await _maybe_await(on_refused(exc.reason, username, exc.detail, request))
            status, text = REFUSALS[exc.reason]
            response: Response = page(status, "Not signed in", text)
        except ProviderError as exc:
            response = unavailable(exc)
        else:
            response = await _maybe_await(on_login(username, role, request))
        response.delete_cookie(FLOW_COOKIE, path=START_PATH, secure=secure, httponly=True, samesite="lax")
        return response

    return router


def board_router(access: Access) -> APIRouter:
    """The routes on the board: a proven user gets a session as after a password login (its audit row
    and line, method=oidc); a refusal is an `sso_refused` audit row, which the password rate limit
    does not count (anyone can send a browser to the callback with a wrong state)."""
    assert access.config.oidc is not None

    async def on_login(username: str, role: Role, request: Request) -> Response:
        return await complete_login(request, username, role, "oidc")

    async def on_refused(reason: str, username: str | None, detail: str, request: Request) -> None:
        await run_in_threadpool(audit.record, access.db, "sso_refused", username or "", caller_of(request).addr,
                                access.now_ms(), f"method=oidc reason={reason} detail={log_value(detail)}")

    return oidc_router(access.config.oidc, on_login, on_refused=on_refused)
