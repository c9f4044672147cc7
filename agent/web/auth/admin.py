"""The admin page (/admin): users, API tokens and the audit trail; every change is audited.
Each form posts back and gets the page again with a notice (nothing in the URL)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agent.web.auth import audit, pages, tokens, users
from agent.web.auth.routes import access_of, caller_of, form, html_response


async def _page(request: Request, notice: str = "", secret: str = "", status: int = 200) -> Response:
    db = access_of(request).db
    people = await run_in_threadpool(users.all_users, db)
    keys = await run_in_threadpool(tokens.all_tokens, db)
    trail = await run_in_threadpool(audit.recent, db)
    me = caller_of(request).username or ""
    return html_response(pages.admin_page(me, people, keys, trail, notice, secret), status)


def _record(request: Request, event: str, detail: str) -> None:
    access, caller = access_of(request), caller_of(request)
    audit.record(access.db, event, caller.username or "", caller.addr, access.now_ms(), detail)


def admin_routes(app: FastAPI) -> None:
    @app.get("/admin", include_in_schema=False)
    async def admin(request: Request) -> Response:
        return await _page(request)

    @app.post("/admin/users", include_in_schema=False)
    async def add_user(request: Request) -> Response:
        fields = await form(request)
        name, role = fields.get("username", ""), fields.get("role", "")
        try:
            created = await run_in_threadpool(users.add, access_of(request).db, name, fields.get("password", ""),
                                              role, access_of(request).now_ms())
        except ValueError as exc:
            return await _page(request, str(exc), status=400)
        await run_in_threadpool(_record, request, "user_added" if created else "user_changed",
                                f"target={name} role={role}")
        return await _page(request, f"{'Added' if created else 'Changed'} {name} ({role}).")

    @app.post("/admin/users/remove", include_in_schema=False)
    async def remove_user(request: Request) -> Response:
        name = (await form(request)).get("username", "")
        if name == caller_of(request).username:
            return await _page(request, "You cannot remove yourself: another admin can.", status=400)
        if not await run_in_threadpool(users.remove, access_of(request).db, name):
            return await _page(request, f"No user {name}.", status=404)
        await run_in_threadpool(_record, request, "user_removed", f"target={name}")
        return await _page(request, f"Removed {name}; their sessions have ended.")

    @app.post("/admin/tokens", include_in_schema=False)
    async def add_token(request: Request) -> Response:
        fields = await form(request)
        name, scope = fields.get("name", ""), fields.get("scope", "")
        try:
            token = await run_in_threadpool(tokens.add, access_of(request).db, name, scope,
                                            access_of(request).now_ms())
        except ValueError as exc:
            return await _page(request, str(exc), status=400)
        await run_in_threadpool(_record, request, "token_added", f"target={name} scope={scope}")
        return await _page(request, f"Made token {name} ({scope}).", secret=token)

    @app.post("/admin/tokens/remove", include_in_schema=False)
    async def remove_token(request: Request) -> Response:
        name = (await form(request)).get("name", "")
        if not await run_in_threadpool(tokens.remove, access_of(request).db, name):
            return await _page(request, f"No token {name}.", status=404)
        await run_in_threadpool(_record, request, "token_removed", f"target={name}")
        return await _page(request, f"Revoked token {name}.")
