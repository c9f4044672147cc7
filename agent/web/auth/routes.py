"""The login and logout routes (the password form), /api/me, and `complete_login`, where any
login method ends (see the package docstring)."""

from __future__ import annotations

import json
from importlib import resources
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agent.web.auth import audit, pages, ratelimit, sessions, users
from agent.web.auth.access import COOKIE, Access, Caller

MAX_FORM = 8192  # bytes: a login or admin form is far smaller
NO_STORE = {"Cache-Control": "no-store"}
AUTH_CSS = resources.files("agent.web").joinpath("static", "auth.css").read_bytes()


def caller_of(request: Request) -> Caller:
    return request.scope["state"]["caller"]


def access_of(request: Request) -> Access:
    return request.app.state.access


async def form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, first value of each field; bounded."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=16)
    return {name: values[0] for name, values in fields.items()}


def html_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, status, headers={**NO_STORE, **(headers or {})})


async def complete_login(request: Request, username: str, role: str, method: str) -> Response:
    """Start a session for a user a login method has just proved (password, OpenID Connect, ...):
    the store row, the audit row and log line, the cookie, and a redirect to the board."""
    access, caller = access_of(request), caller_of(request)
    token = await run_in_threadpool(sessions.start, access.db, username, role, method, addr=caller.addr,
                                    lifetime_s=access.config.session.lifetime, now_ms=access.now_ms())
    await run_in_threadpool(audit.record, access.db, "login_ok", username, caller.addr, access.now_ms(),
                            f"method={method} role={role}")
    response = RedirectResponse("/", 303, headers=NO_STORE)
    response.set_cookie(COOKIE, token, max_age=int(access.config.session.lifetime), path="/",
                        secure=caller.https, httponly=True, samesite="lax")
    return response


def login_page(request: Request, notice: str = "", *, open_board: bool = False) -> str:
    """The login form; every answer of the login routes is rendered here, so a second login method
    (its button, from the request's board config) is added in this one place."""
    sso = access_of(request).config.oidc
    return pages.login_page(notice, open_board=open_board, sso=None if sso is None else sso.name)


def login_routes(app: FastAPI) -> None:
    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        caller = caller_of(request)
        if caller.role is not None:
            return RedirectResponse("/", 303, headers=NO_STORE)
        notice = "Your session has ended: log in again." if caller.stale_cookie else ""
        response = html_response(login_page(request, notice, open_board=caller.open_board))
        if caller.stale_cookie:
            response.delete_cookie(COOKIE, path="/", secure=caller.https, httponly=True, samesite="lax")
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        access, caller, fields = access_of(request), caller_of(request), await form(request)
        username, password = fields.get("username", "")[:128], fields.get("password", "")
        if not access.begin_login(username, caller.addr):
            return too_many(request, username, caller.addr, 1, "A login for this user or address is being checked")
        try:
            return await _check_login(request, access, caller, username, password)
        finally:
            access.end_login(username, caller.addr)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        access, caller = access_of(request), caller_of(request)
        if caller.session_token is not None:
            ended = await run_in_threadpool(sessions.end, access.db, caller.session_token)
            if ended is not None:
                await run_in_threadpool(audit.record, access.db, "logout", ended.username, caller.addr,
                                        access.now_ms(), f"method={ended.method}")
        response = RedirectResponse("/login", 303, headers=NO_STORE)
        response.delete_cookie(COOKIE, path="/", secure=caller.https, httponly=True, samesite="lax")
        return response

    @app.get("/api/me", include_in_schema=False)
    async def me(request: Request) -> Response:
        caller = caller_of(request)
        return Response(_me_json(caller), media_type="application/json", headers=NO_STORE)

    async def auth_css() -> Response:
        return Response(AUTH_CSS, media_type="text/css; charset=utf-8", headers=NO_STORE)

    app.add_api_route("/auth.css", auth_css, methods=["GET", "HEAD"], include_in_schema=False)


def too_many(request: Request, username: str, addr: str, wait: int, why: str = "Too many failed logins") -> Response:
    audit.log.warning("board login refused user=%s addr=%s retry_after_s=%d", username or "-", addr, wait)
    return html_response(login_page(request, f"{why}: try again in {wait} s."), 429,
                         {"Retry-After": str(wait)})


async def _check_login(request: Request, access: Access, caller: Caller, username: str, password: str) -> Response:
    """The rate limit, then the password; a failure is counted before the attempt is released."""
    limit, now = access.config.login, access.now_ms()
    by_user, by_addr = await run_in_threadpool(audit.failures_since, access.db, username, caller.addr,
                                               now - int(limit.window * 1000))
    wait = ratelimit.login_wait_s(by_user, by_addr, now, failures=limit.failures, window_s=limit.window)
    if wait is not None:
        return too_many(request, username, caller.addr, wait)
    role = await run_in_threadpool(users.verify, access.db, username, password)
    if role is None:
        await run_in_threadpool(audit.record, access.db, "login_failed", username, caller.addr, now,
                                "method=password")
        return html_response(login_page(request, "Wrong user name or password."), 401)
    return await complete_login(request, username, role, "password")


def _me_json(caller: Caller) -> bytes:
    return json.dumps({"user": caller.username, "role": caller.role, "token": caller.token_name,
                       "open": caller.open_board}).encode()
