"""The ASGI middleware in front of every route: security headers on every response, the caller
identified (agent.web.auth.access), the route's rule applied (agent.web.auth.rules), and a
state-changing request from another site refused (`same_origin`; SameSite=Lax cookies are the
first guard: a cross-site POST carries no session)."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.fleet.store import StoreError
from agent.web.app import STORE_UNAVAILABLE
from agent.web.auth import proxy, rules
from agent.web.auth.access import COOKIE, Access, Caller
from agent.web.auth.headers import security_headers
from agent.web.auth.pages import refusal_page

log = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def rule_for(router: Router, scope: Scope) -> str | None:
    """The rule of the route that would serve this request (None: a route without a rule)."""
    for route in router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            return rules.RULES.get(getattr(route, "path", ""))
    return rules.UNKNOWN


def same_origin(headers: Headers, https: bool) -> bool:
    """The request comes from the board's own pages. Browsers say so in Sec-Fetch-Site (over HTTPS
    and on loopback); under Referrer-Policy no-referrer their POSTs carry `Origin: null`, so the
    Origin is the answer only where Sec-Fetch-Site is missing (other clients, plain-HTTP labs)."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin, host = headers.get("origin"), headers.get("host")
    return origin is not None and host is not None and origin == f"{'https' if https else 'http'}://{host}"


class AccessMiddleware:
    def __init__(self, app: ASGIApp, access: Access, router: Router) -> None:
        self.app, self.access, self.router = app, access, router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        trusted, names = self.access.trusted, self.access.config.proxy
        peer = (scope.get("client") or ("", 0))[0]
        https = proxy.scheme(peer, scope["scheme"], headers.get(names.proto_header), trusted) == "https"
        addr = proxy.client_addr(peer, headers.get(names.client_header), trusted)
        extra = security_headers(https)

        async def send_secured(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE)
        try:
            caller = await run_in_threadpool(self.access.identify, addr, https, headers.get("authorization"), cookie)
        except StoreError as exc:  # who is asking cannot be known: nobody is let in, and the log says why
            log.error("fleet store unavailable path=%s error=%s", scope["path"], exc)
            await _refuse(send_secured, 503, STORE_UNAVAILABLE, scope["path"])
            return
        scope.setdefault("state", {})["caller"] = caller
        rule = rule_for(self.router, scope)
        path = scope["path"]
        if scope["method"] not in SAFE_METHODS and not same_origin(headers, https):
            await _refuse(send_secured, 403, "a request from another site (or without Origin or Sec-Fetch-Site) is "
                                             "refused", path)
        elif rule is not None and rules.allowed(rule, role=caller.role, scope=caller.scope,
                                                open_board=caller.open_board):
            scope["state"]["still_allowed"] = functools.partial(self.access.still_valid, caller)
            await self.app(scope, receive, send_secured)
        else:
            await _deny(send_secured, rule, caller, path)


async def _deny(send: Send, rule: str | None, caller: Caller, path: str) -> None:
    known = caller.role is not None or caller.scope is not None
    if not known and rules.is_page(path):
        await _send(send, 303, b"", [(b"location", b"/login")])  # the login says when a session has ended
    elif not known:
        await _refuse(send, 401, "log in, or send an API token: Authorization: Bearer TOKEN", path,
                      [(b"www-authenticate", b'Bearer realm="edge-board"')])
    else:
        await _refuse(send, 403, "admins only" if rule == rules.ADMIN else "not allowed for this login or token",
                      path)


async def _refuse(send: Send, status: int, message: str, path: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    if rules.is_page(path):
        body, kind = refusal_page(status, message).encode(), b"text/html; charset=utf-8"
    else:
        body, kind = json.dumps({"error": message}).encode(), b"application/json"
    await _send(send, status, body, [(b"content-type", kind), *(headers or [])])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": body})
